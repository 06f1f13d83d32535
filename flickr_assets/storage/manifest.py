"""The per-keyword download manifest: ``manifest.parquet`` plus a crash-safe journal beside it.

While a download runs, every finished row is appended as one JSON line to ``_journal.jsonl`` in the
manifest folder (a name dataset readers ignore), written straight to the file so a SIGKILL loses at most
the line being written, and fsync'd in batches. At the end :func:`merge_journal` folds the journal into
``manifest.parquet`` (atomic rename) and only then deletes the journal, so a crash between the two just
replays rows already merged. :func:`load_rows` gives the current truth: the Parquet rows overlaid by the
journal, the latest row per photo winning.

The manifest holds one row per record. A photo that leaves the keyword's records (a full refresh after its
query changed, a photo deleted on Flickr) keeps its row in ``_retired.parquet`` and its file on disk: if it
comes back, it is not fetched again. A photo stored again under a new name (Flickr changed its secret or
server, so its record names another file) has its old file removed once the manifest names the new one.
"""

import datetime as dt
import json
import logging
import os
import time
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from flickr_assets.storage.atomic import atomic_path
from flickr_assets.storage.layout import DataLayout
from flickr_assets.storage.schemas import MANIFEST, STATUSES, SchemaMismatch, conform

log = logging.getLogger(__name__)

JOURNAL_NAME = "_journal.jsonl"
_REQUIRED = [field.name for field in MANIFEST if not field.nullable]
_FIELDS = frozenset(MANIFEST.names)


class ManifestError(ValueError):
    """A manifest row or file that cannot be used, with what is wrong and where."""


def journal_file(layout: DataLayout, keyword: str) -> Path:
    """The journal of unmerged rows of ``keyword``."""
    return layout.manifest_dir(keyword) / JOURNAL_NAME


def check_row(row: dict, where: str = "manifest row") -> dict:
    """Return ``row`` if it fits the MANIFEST schema's rules, else raise :class:`ManifestError`."""
    unknown = set(row) - _FIELDS
    if unknown:
        raise ManifestError(f"{where}: unknown columns {sorted(unknown)}")
    missing = [name for name in _REQUIRED if row.get(name) is None]
    if missing:
        raise ManifestError(f"{where}: missing required {', '.join(missing)}")
    if row["status"] not in STATUSES:
        raise ManifestError(f"{where}: status {row['status']!r} is not one of {', '.join(STATUSES)}")
    if row["status"] == "ok" and not (row.get("path") and row.get("sha256")):
        raise ManifestError(f"{where}: an ok row needs path and sha256 (photo {row['photo_id']})")
    return row


def read_manifest(layout: DataLayout, keyword: str) -> pa.Table:
    """The merged manifest of ``keyword`` (an empty table with the schema if there is none yet)."""
    return _read_rows_file(layout.manifest_file(keyword), "manifest")


def merged_rows(layout: DataLayout, keyword: str) -> dict[int, dict]:
    """Every merged row of ``keyword`` by photo ID: the manifest's, and the retired rows of photos no longer
    in its records (a manifest row wins)."""
    return _merged_and_retired(layout, keyword)[0]


def _merged_and_retired(layout: DataLayout, keyword: str) -> tuple[dict[int, dict], set[int]]:
    """:func:`merged_rows`, and the photo IDs that are only in the retired rows."""
    retired = _read_rows_file(layout.retired_rows_file(keyword), "retired rows").to_pylist()
    rows = {row["photo_id"]: row for row in retired}
    manifest = read_manifest(layout, keyword).to_pylist()
    rows.update((row["photo_id"], row) for row in manifest)
    return rows, set(rows) - {row["photo_id"] for row in manifest}


def _read_rows_file(path: Path, what: str) -> pa.Table:
    if not path.exists():
        return MANIFEST.empty_table()
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as error:
        raise ManifestError(f"{path}: unreadable {what} ({error})") from None
    try:
        return conform(table, MANIFEST)  # a file of another version: a column added since is filled with nulls
    except SchemaMismatch as error:
        raise ManifestError(f"{path}: {what} {error}") from None


def read_journal(path: Path) -> Iterator[dict]:
    """Rows of a journal in write order. A torn last line (a crash mid-write) is dropped silently; a bad
    line elsewhere is skipped with a warning (its photo is simply tried again)."""
    if not path.exists():
        return
    lines = path.read_bytes().split(b"\n")
    last = len(lines) - 1
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = _decode(json.loads(line))
            yield check_row(row, f"{path}:{number}")
        except (ValueError, TypeError, KeyError) as error:
            if number - 1 != last:
                log.warning("%s:%d: skipping unreadable journal line (%s)", path, number, error)


def load_rows(layout: DataLayout, keyword: str, merged: dict[int, dict] | None = None) -> dict[int, dict]:
    """Current row per photo ID: the merged manifest (read, or ``merged`` if given) overlaid by the journal."""
    if merged is None:
        merged = {row["photo_id"]: row for row in read_manifest(layout, keyword).to_pylist()}
    rows = dict(merged)
    for row in read_journal(journal_file(layout, keyword)):
        rows[row["photo_id"]] = row
    return rows


def manifest_table(rows: Iterable[dict]) -> pa.Table:
    """Rows as a MANIFEST table sorted by photo ID (so equal content gives equal files)."""
    ordered = sorted(rows, key=lambda row: row["photo_id"])
    return pa.Table.from_pylist(ordered, schema=MANIFEST)


def write_manifest(layout: DataLayout, keyword: str, rows: Iterable[dict]) -> pa.Table:
    """Write ``rows`` as the keyword's manifest atomically; return the table written."""
    return _write_rows_file(layout.manifest_file(keyword), rows)


def _write_rows_file(path: Path, rows: Iterable[dict]) -> pa.Table:
    table = manifest_table(rows)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return table


def merge_journal(layout: DataLayout, keyword: str, record_ids: Collection[int]) -> pa.Table:
    """Fold the journal into ``manifest.parquet`` (atomically), then delete the journal; return the manifest.

    The manifest keeps the rows of the photos of the keyword's records (``record_ids``): rows of photos no
    longer among them move to the retired rows, and retired photos that are among them again come back.
    Every row is in one of the two files at every moment (a crash between the writes loses none)."""
    retired_file = layout.retired_rows_file(keyword)
    merged, before = _merged_and_retired(layout, keyword)
    rows = load_rows(layout, keyword, merged)
    kept = [row for photo_id, row in rows.items() if photo_id in record_ids]
    retired = [row for photo_id, row in rows.items() if photo_id not in record_ids]
    returning = [row for row in kept if row["photo_id"] in before]
    moved = {row["photo_id"] for row in retired} != before
    if moved:  # first the rows leaving, the returning ones still kept here too
        _write_rows_file(retired_file, retired + returning)
    table = write_manifest(layout, keyword, kept)
    if returning and retired:
        _write_rows_file(retired_file, retired)
    elif moved and not retired:
        retired_file.unlink(missing_ok=True)
    _remove_superseded_files(layout, keyword, rows)
    journal_file(layout, keyword).unlink(missing_ok=True)
    return table


def _remove_superseded_files(layout: DataLayout, keyword: str, rows: dict[int, dict]) -> None:
    """Delete the keyword's image files of photos whose ``ok`` row names another file: the photo was fetched again
    under the new name its record gives (Flickr changed its secret or server), or a run ended between storing it
    and recording it. No table refers to such a file, it would count against its folder's limit, and it may show
    an older picture. The folders are looked through (not only the rows that changed in this run), so a file
    left by a run killed before it removed it goes at the next run. Only files named as this project names
    them are touched, and only for photos with an ``ok`` row."""
    stored = {photo_id: row["path"] for photo_id, row in rows.items() if row["status"] == "ok" and row.get("path")}
    named = {row["path"] for row in rows.values() if row.get("path")}
    images = layout.images_dir(keyword)
    if not stored or not images.is_dir():
        return
    prefix = images.relative_to(layout.root).as_posix()
    for shard in os.scandir(images):
        if not shard.name.isdecimal() or not shard.is_dir(follow_symlinks=False):
            continue
        for entry in os.scandir(shard.path):
            photo_id, underscore, _ = entry.name.partition("_")
            if not underscore or not photo_id.isdecimal() or not entry.name.endswith(".jpg"):
                continue
            relative = f"{prefix}/{shard.name}/{entry.name}"
            current = stored.get(int(photo_id))
            if current is None or relative in named:
                continue
            try:
                os.unlink(entry.path)
            except OSError as error:  # not removable: left where it is
                log.warning("photo %s: could not remove %s, superseded by %s (%s)", photo_id, relative, current, error)


class ManifestJournal:
    """Append-only journal of finished rows; use as a context manager.

    Each row is one ``write`` of one line to an ``O_APPEND`` file (it survives a SIGKILL of the writer);
    ``fsync`` runs every ``sync_every`` rows or ``sync_seconds`` seconds and on close (for power loss).
    """

    def __init__(self, path: Path, sync_every: int = 64, sync_seconds: float = 1.0) -> None:
        self.path = path
        self._sync_every = sync_every
        self._sync_seconds = sync_seconds
        self._unsynced = 0
        self._last_sync = time.monotonic()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        # A torn last line from a crash must not swallow the next row: start on a fresh line.
        if os.fstat(self._fd).st_size and not _ends_with_newline(path):
            os.write(self._fd, b"\n")

    def append(self, row: dict) -> None:
        """Record one finished row."""
        check_row(row, f"row for {self.path}")
        os.write(self._fd, json.dumps(_encode(row), separators=(",", ":")).encode("utf-8") + b"\n")
        self._unsynced += 1
        if self._unsynced >= self._sync_every or time.monotonic() - self._last_sync >= self._sync_seconds:
            self.sync()

    def sync(self) -> None:
        """Flush appended rows to stable storage."""
        if self._unsynced:
            os.fsync(self._fd)
        self._unsynced = 0
        self._last_sync = time.monotonic()

    def close(self) -> None:
        """Sync and close the journal file."""
        if self._fd >= 0:
            self.sync()
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "ManifestJournal":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def _encode(row: dict) -> dict:
    out = dict(row)
    stamp = out.get("updated_at")
    if isinstance(stamp, dt.datetime):
        out["updated_at"] = stamp.timestamp()
    return out


def _decode(raw: dict) -> dict:
    if not isinstance(raw, dict):
        raise ValueError("not a JSON object")
    row = dict.fromkeys(MANIFEST.names) | raw
    stamp = row.get("updated_at")
    if isinstance(stamp, (int, float)):
        row["updated_at"] = dt.datetime.fromtimestamp(int(stamp), tz=dt.UTC)
    return row
