"""Stored files whose record changed since they were written: their metadata rewritten, the image untouched.

The plan compares each stored photo's record with the ``metadata_sha256`` of its manifest row (a digest of
the record the file embeds); a photo whose record differs is not fetched again: its Exif, XMP and comment
segments are rebuilt from the record now and spliced into the stored bytes (tables and scans copied byte for
byte, so the pixels stay the same), written atomically (a temp file renamed over the old name: a hard-linked
copy in another keyword keeps its inode and its content). A row without a digest (a manifest from before it
existed) has its file's embedded record read back once: rewritten only if it differs.
"""

import hashlib
import logging
import time
from pathlib import Path

from flickr_assets.download.photo import disk_full, finish_row
from flickr_assets.download.plan import ImagePaths, Task, embedded_metadata
from flickr_assets.imaging import InvalidImage
from flickr_assets.imaging.metadata import embedded_record, metadata_digest, restamp
from flickr_assets.storage.atomic import write_bytes

log = logging.getLogger(__name__)

#: Bytes read to find a stored file's embedded record (the header comes first; more is read if it is longer).
HEADER_BYTES = 256 * 1024
RESTAMPED_REASON = "metadata rewritten: the record changed"


def embedded_digest(path: Path, data: bytes | None = None) -> str | None:
    """``metadata_digest`` of the record embedded in the file at ``path`` (or in its bytes ``data``); None
    when it holds none. Reads only the file's header. Raises InvalidImage for a broken header."""
    if data is not None:
        record = embedded_record(data)
    else:
        with open(path, "rb") as handle:
            head = handle.read(HEADER_BYTES)
            try:
                record = embedded_record(head)
            except InvalidImage:  # a header longer than what was read (a long comment), or a broken one
                record = embedded_record(head + handle.read())
    return None if record is None else metadata_digest(record)


def restamp_file(destination: Path, data: bytes, metadata: dict) -> str:
    """Write ``data`` (a stored JPEG) to ``destination`` atomically and durably with its metadata rebuilt
    from ``metadata``; return the sha256 of what was written."""
    stamped = restamp(data, metadata)
    try:
        write_bytes(destination, stamped)
    except OSError as error:
        if (full := disk_full(error, destination.parent)) is not None:  # as for a fetched photo: the run stops
            raise full from None
        raise
    return hashlib.sha256(stamped).hexdigest()


def restamp_outcome(paths: ImagePaths, task: Task) -> tuple[dict | None, str]:
    """Bring a stored photo's file up to date with its record: its new row and what was done ("restamped",
    or "checked": a file without a digest found up to date). (None, reason) when the file cannot be
    rewritten (gone, or not a JPEG we can parse): the photo is then fetched again."""
    assert task.restamp is not None and task.record is not None
    started = time.monotonic()
    row, digest = task.restamp, task.digest
    path = paths.file(task.shard, task.file_name)
    try:
        if row.get("metadata_sha256") is None and embedded_digest(path) == digest:
            return finish_row(dict(row) | {"metadata_sha256": digest, "bytes_fetched": 0}, started), "checked"
        sha256 = restamp_file(path, path.read_bytes(), embedded_metadata(task.record))
    except (InvalidImage, FileNotFoundError) as error:
        log.warning("photo %s: cannot rewrite the metadata of %s (%s); fetching it again", task.photo_id, path, error)
        return None, str(error)
    values = {"sha256": sha256, "metadata_sha256": digest, "reason": RESTAMPED_REASON, "bytes_fetched": 0}
    return finish_row(dict(row) | values, started), "restamped"
