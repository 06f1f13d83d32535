"""What a run has to do: read the records, skip what is final, pick each photo's source and shard.

Shards are assigned deterministically in record order from the merged manifest, so a run killed and started
again plans exactly what the first run planned: photos already holding a path keep it (a path in an
interrupted run's journal included, its place reserved); new photos are appended to the last shard that has
room. No shard ever gets more than ``files_per_shard`` photos, even when the records were reordered between.
"""

import re
from collections import Counter
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from flickr_assets.download.options import DownloadOptions
from flickr_assets.imaging.metadata import metadata_digest, without_host
from flickr_assets.storage.layout import DataLayout, shard_name
from flickr_assets.storage.schemas import FINAL_STATUSES

#: Record columns the planner needs to choose and name the image (it reads whole rows: a stored photo's
#: embedded metadata is compared with its record).
PLAN_COLUMNS = ("photo_id", "secret", "server", "owner", "url_l", "width_l", "height_l", "url_o", "width_o", "height_o")

# A stored file embeds the photo's facts, not which keyword's search found it or when: the same photo stored
# for two keywords is the same bytes (and a file linked from another keyword is true for this one).
NOT_EMBEDDED = frozenset({"keyword", "first_seen", "last_seen"})

_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9@._-]")
_BATCH_ROWS = 2048


class RecordsError(ValueError):
    """Records that cannot be downloaded from, with what is wrong and where."""


@dataclass(frozen=True)
class ImageSource:
    """The image to fetch for a record and the size the record says it has."""

    kind: str  # "large" or "original"
    url: str
    width: int | None
    height: int | None


@dataclass
class Task:
    """One photo this run must handle."""

    photo_id: int
    source: ImageSource | None  # None: the record names no usable image URL
    shard: int
    file_name: str
    record: dict | None = None  # the full record (filled in while streaming)
    # A stored photo whose record changed since its file was written: only the file's metadata is rewritten.
    restamp: dict | None = None  # its current manifest row
    digest: str | None = None  # metadata_digest of its record now


@dataclass
class Plan:
    """The outcome of planning one run."""

    records: int  # records read
    tasks: dict[int, Task]  # photos to handle, in record order
    skipped: int  # photos already final (or ok with their file present and their record unchanged)
    record_ids: AbstractSet[int] = frozenset()  # every photo of the records (the manifest keeps their rows)


def open_records(records: pa.Table | str | Path) -> pa.Table | pq.ParquetFile:
    """The records as a table or an open Parquet file, checked for the columns the download needs."""
    if isinstance(records, pa.Table):
        names, where = records.column_names, "records table"
        source: pa.Table | pq.ParquetFile = records
    else:
        path = Path(records)
        if not path.exists():
            raise RecordsError(f"records file {path} does not exist")
        try:
            source = pq.ParquetFile(path)
        except (OSError, pa.ArrowInvalid) as error:
            raise RecordsError(f"records file {path} is not readable Parquet ({error})") from None
        names, where = source.schema_arrow.names, f"records file {path}"
    missing = [name for name in PLAN_COLUMNS if name not in names]
    if missing:
        raise RecordsError(f"{where} lacks columns {', '.join(missing)}")
    return source


def iter_record_batches(source: pa.Table | pq.ParquetFile, columns: list[str] | None = None) -> Iterator[list[dict]]:
    """Records as lists of row dicts, a bounded batch at a time."""
    if isinstance(source, pa.Table):
        table = source.select(columns) if columns else source
        batches = table.to_batches(max_chunksize=_BATCH_ROWS)
    else:
        batches = source.iter_batches(batch_size=_BATCH_ROWS, columns=columns)
    for batch in batches:
        yield batch.to_pylist()


def embedded_metadata(record: dict) -> dict:
    """What a stored file embeds of ``record``."""
    return {k: v for k, v in record.items() if k not in NOT_EMBEDDED}


def image_file_name(record: dict) -> str:
    """``<photo_id>_<secret>_<server>_<owner>.jpg``, with any unsafe character percent-encoded."""
    parts = [str(record["photo_id"]), record["secret"], record["server"], record["owner"]]
    safe = [_UNSAFE_NAME_CHARS.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), str(p)) for p in parts]
    return "_".join(safe).lstrip(".") + ".jpg"


def choose_source(record: dict) -> ImageSource | None:
    """The Large (1024) image when the record has one, else the Original, else None."""
    if record.get("url_l"):
        return ImageSource("large", record["url_l"], record.get("width_l"), record.get("height_l"))
    if record.get("url_o"):
        return ImageSource("original", record["url_o"], record.get("width_o"), record.get("height_o"))
    return None


def known_too_small(source: ImageSource, options: DownloadOptions) -> bool:
    """True when the record's own size already says a side of the stored image would be under ``min_side``
    once the longest side is scaled down to ``max_side`` (the imaging step's header rule), so fetching it
    would be wasted."""
    width, height = source.width, source.height
    if not width or not height or width <= 0 or height <= 0:
        return False
    factor = min(1.0, options.max_side / max(width, height))
    return min(max(1, round(width * factor)), max(1, round(height * factor))) < options.min_side


class ImagePaths:
    """Where one keyword's images go. Each shard folder is resolved and checked through ``DataLayout`` once,
    not for every photo: resolving a path costs a system call per component, which added up to a large part
    of the download process's CPU (and of a resumed run's planning)."""

    def __init__(self, layout: DataLayout, keyword: str) -> None:
        self.layout = layout
        self.keyword = keyword
        self.images_prefix = layout.relative(layout.images_dir(keyword)) + "/"
        self._folders: dict[int, Path] = {}

    def file(self, shard: int, name: str) -> Path:
        """``DataLayout.image_file(keyword, shard, name)`` for a name from :func:`image_file_name`."""
        folder = self._folders.get(shard)
        if folder is not None and "/" not in name and not name.startswith("."):
            return folder / name
        path = self.layout.image_file(self.keyword, shard, name)
        if path.parent == self.layout.images_dir(self.keyword) / shard_name(shard):
            self._folders[shard] = path.parent
        return path

    def relative(self, path: Path) -> str:
        """``DataLayout.relative`` of a path given by :meth:`file` (already resolved)."""
        return path.relative_to(self.layout.root).as_posix()

    def shard_of(self, relative: str | None) -> int | None:
        """The shard number of a stored path of this keyword (None if it lies elsewhere or looks wrong)."""
        if not relative or not relative.startswith(self.images_prefix):
            return None
        folder, slash, name = relative[len(self.images_prefix) :].partition("/")
        if not slash or not folder.isdecimal() or not name or "/" in name or name.startswith("."):
            return None
        return int(folder)


def names_other_image(row: dict, record: dict) -> bool:
    """Whether ``record`` now names image URLs, none of them the one ``row``'s outcome was decided on: Flickr
    changed the photo's secret or server, so that URL answers the placeholder while the new ones may not.
    URLs are compared without their host, which Flickr (and a restarted simulator) may change alone."""
    urls = {without_host(url) for url in (record.get("url_l"), record.get("url_o")) if url}
    return bool(urls and row.get("url")) and without_host(row["url"]) not in urls


def needs_work(
    row: dict | None, task_path: Path, paths: ImagePaths, options: DownloadOptions, record: dict | None = None
) -> bool:
    """Whether a photo with manifest row ``row`` (and ``record``, when given) must be handled again by this run."""
    if row is None:
        return True
    status = row["status"]
    if status == "ok":
        return row.get("path") != paths.relative(task_path) or not task_path.exists()
    if status in FINAL_STATUSES:
        return record is not None and names_other_image(row, record)
    return options.retry_failed


def plan_run(
    layout: DataLayout,
    keyword: str,
    source: pa.Table | pq.ParquetFile,
    merged: dict[int, dict],
    current: dict[int, dict],
    options: DownloadOptions,
) -> Plan:
    """Plan a run. ``merged`` are the merged rows (``manifest.parquet`` and retired rows), ``current`` those
    overlaid by the journal of an interrupted run; shards come from ``merged`` so re-planning gives the same
    answer."""
    paths = ImagePaths(layout, keyword)
    counts: Counter[int] = Counter()
    assigned: dict[int, int] = {}
    for photo_id, row in merged.items():
        shard = paths.shard_of(row.get("path"))
        if shard is not None:
            assigned[photo_id] = shard
            counts[shard] += 1
    last = max(counts) if counts else 0
    # Photos an interrupted run gave a folder (in its journal only) keep it, and their places there stay
    # reserved until they come up, so photos planned before them (records may have been reordered by a
    # harvest in between) never fill that folder past its limit. In unchanged records the plan is the same.
    held: dict[int, int] = {}
    for photo_id, row in current.items():
        shard = paths.shard_of(row.get("path")) if photo_id not in assigned else None
        if shard is not None:
            held[photo_id] = shard
    reserved = Counter(held.values())

    tasks: dict[int, Task] = {}
    seen: set[int] = set()
    skipped = 0
    for batch in iter_record_batches(source):
        for record in batch:
            photo_id = record["photo_id"]
            if photo_id is None or photo_id in seen:
                continue
            seen.add(photo_id)
            base = merged.get(photo_id)
            final = base is not None and base["status"] in FINAL_STATUSES and base["status"] != "ok"
            if final and not names_other_image(base, record):
                skipped += 1
                continue
            chosen = choose_source(record)
            shard = assigned.get(photo_id)
            if shard is None and photo_id in held:
                shard = assigned[photo_id] = held[photo_id]
                reserved[shard] -= 1
                counts[shard] += 1
            elif shard is None:
                while counts[last] + reserved[last] >= options.files_per_shard:
                    last += 1
                shard = assigned[photo_id] = last
                counts[last] += 1
            name = image_file_name(record)
            task_path = paths.file(shard, name)
            row = current.get(photo_id)
            if not needs_work(row, task_path, paths, options, record):
                assert row is not None
                digest = metadata_digest(embedded_metadata(record)) if _may_differ(row, record) else None
                if digest is None or row.get("metadata_sha256") == digest:
                    skipped += 1
                    continue
                tasks[photo_id] = Task(photo_id, chosen, shard, name, restamp=row, digest=digest)
                continue
            tasks[photo_id] = Task(photo_id, chosen, shard, name)
    return Plan(records=len(seen), tasks=tasks, skipped=skipped, record_ids=seen)


def _may_differ(row: dict, record: dict) -> bool:
    """Whether the stored file of an ``ok`` row may embed another version of ``record``. A harvest rewrites a
    record only when it finds the photo again, and then stamps its ``last_seen``: a record last seen before its
    row was written is the one the file embeds (most of them, but on the nights a keyword is walked in full),
    and its digest need not be computed. Rows without a digest (older manifests) are checked once."""
    if row["status"] != "ok":
        return False
    if not row.get("metadata_sha256"):
        return True
    seen, written = record.get("last_seen"), row.get("updated_at")
    return seen is None or written is None or seen >= written


def iter_tasks(source: pa.Table | pq.ParquetFile, tasks: dict[int, Task]) -> Iterator[Task]:
    """The planned tasks in record order, each with its full record attached (streamed batch by batch).
    Tasks are taken out of ``tasks`` as they are yielded, so finished work does not stay in memory."""
    for batch in iter_record_batches(source):
        for record in batch:
            task = tasks.pop(record["photo_id"], None)
            if task is not None:
                task.record = record
                yield task
