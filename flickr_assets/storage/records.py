"""The records store of one keyword: ``photos.parquet``, ``_coverage.parquet`` and ``_state.json``.

A harvest streams its rows into a hidden scratch Parquet file (bounded memory, row groups). :meth:`commit`
then merges the scratch file with the existing ``photos.parquet`` batch by batch — one row per photo_id,
``first_seen`` kept from the old row, everything else from the newest — into a temp file that atomically
replaces ``photos.parquet``. Only ID and ``first_seen`` columns are ever held whole in memory, so a
million-photo keyword merges in well under 1 GiB. A crash at any point leaves the previous file intact.
"""

import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from flickr_assets.storage.atomic import TEMP_SUFFIX, atomic_path, make_durable, write_text
from flickr_assets.storage.layout import DataLayout
from flickr_assets.storage.schemas import COVERAGE, RECORDS, SchemaMismatch, conform

ROW_GROUP_SIZE = 50_000
READ_BATCH_SIZE = 50_000
STATE_VERSION = 1


class RecordsFileError(ValueError):
    """The keyword's records file is damaged: the message names it and says what to do."""


def records_file_damage(path: Path) -> str | None:
    """What is wrong with the records file at ``path`` (None when it is absent or its Parquet footer reads)."""
    if not path.exists():
        return None
    try:
        names = pq.ParquetFile(path).schema_arrow.names
    except (OSError, pa.ArrowInvalid) as error:
        return f"records file {path} is not readable Parquet ({' '.join(str(error).split())[:200]})"
    if "photo_id" not in names or "first_seen" not in names:
        return f"records file {path} is not a records table (no photo_id or first_seen column)"
    return None


@dataclass(frozen=True)
class MergeResult:
    """What a commit did: rows in the file now, harvested photos new to the file and already in it, and old
    rows dropped (by a full refresh)."""

    rows: int
    new_rows: int
    updated_rows: int
    dropped_rows: int
    kept_unseen: int = 0  # old rows a full refresh did not find but kept (seen since ``seen_since``)


class RecordsWriter:
    """Collects one harvest's rows for ``keyword`` and merges them into its ``photos.parquet``.

    Use as a context manager: leaving the block without :meth:`commit` (or with an exception) discards the
    scratch file and leaves ``photos.parquet`` as it was. Rows kept by :meth:`checkpoint` stay in part files
    (``parts``), which a later writer is given back to go on.
    """

    def __init__(
        self, layout: DataLayout, keyword: str, row_group_size: int = ROW_GROUP_SIZE, parts: Sequence[Path] = ()
    ) -> None:
        self.layout = layout
        self.keyword = keyword
        self.final = layout.records_file(keyword)
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.row_group_size = row_group_size
        self.parts = list(parts)
        self._open_scratch()

    def _open_scratch(self) -> None:
        fd, name = tempfile.mkstemp(prefix=".harvest.", suffix=TEMP_SUFFIX, dir=self.final.parent)
        os.close(fd)
        self.scratch = Path(name)
        self._writer: pq.ParquetWriter | None = pq.ParquetWriter(self.scratch, RECORDS)
        self._pending: list[dict[str, Any]] = []

    def checkpoint(self) -> list[Path]:
        """Make the rows added so far durable in a new part file; return every part file."""
        if self._pending:
            self._write(self._pending)
        assert self._writer is not None, "checkpoint after commit"
        self._writer.close()
        part = self.layout.harvest_part_file(self.keyword, len(self.parts) + 1)
        os.replace(self.scratch, part)
        make_durable(part.parent, [part])
        self.parts.append(part)
        self._open_scratch()
        return list(self.parts)

    def __enter__(self) -> "RecordsWriter":
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.discard()

    def add(self, rows: Iterable[dict[str, Any]]) -> None:
        """Buffer rows (``RECORDS`` fields); full row groups go to the scratch file."""
        self._pending.extend(rows)
        while len(self._pending) >= self.row_group_size:
            self._write(self._pending[: self.row_group_size])
            del self._pending[: self.row_group_size]

    def commit(self, replace: bool = False, seen_since: datetime | None = None) -> MergeResult:
        """Merge the harvested rows into ``photos.parquet`` and replace it atomically.

        ``replace=True`` (a full refresh) drops old rows the harvest did not find again, but for those last seen
        at or after ``seen_since`` (found by the previous full walk: one walk's miss is not proof that a photo
        is gone); otherwise they stay. A damaged old file (:func:`records_file_damage`) is then replaced as if
        absent; otherwise it raises :class:`RecordsFileError`.
        """
        damage = records_file_damage(self.final)
        if damage and not replace:
            raise RecordsFileError(damage)
        old = None if damage or not self.final.exists() else self.final
        if self._pending:
            self._write(self._pending)
            self._pending = []
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        harvested_files = [*self.parts, self.scratch]
        new_ids = np.concatenate([_column(path, "photo_id") for path in harvested_files])
        keep = _last_occurrence(new_ids)
        harvested = np.sort(new_ids[keep])
        old_ids, old_first = _old_first_seen(old)
        found_old = _member(harvested, old_ids)
        updated = int(found_old.sum())

        written = dropped = kept = 0
        with atomic_path(self.final) as tmp, pq.ParquetWriter(tmp, RECORDS) as out:
            if old is not None:
                for batch in pq.ParquetFile(old).iter_batches(READ_BATCH_SIZE, use_threads=False):
                    ids = batch.column("photo_id").to_numpy()
                    stays = ~_member(ids, harvested)
                    unseen = int(stays.sum())
                    if replace and (seen_since is None or not unseen):
                        dropped += unseen
                        continue
                    table = _conform(batch, old)
                    if replace:
                        stays &= _seconds(table.column("last_seen")) >= int(seen_since.timestamp())
                        kept += int(stays.sum())
                        dropped += unseen - int(stays.sum())
                    table = table.filter(pa.array(stays))
                    if table.num_rows:
                        out.write_table(table, row_group_size=self.row_group_size)
                        written += table.num_rows
            offset = 0
            for path in harvested_files:
                for batch in pq.ParquetFile(path).iter_batches(READ_BATCH_SIZE, use_threads=False):
                    mask = keep[offset : offset + batch.num_rows]
                    offset += batch.num_rows
                    table = _conform(batch, path).filter(pa.array(mask))
                    table = _with_old_first_seen(table, old_ids, old_first)
                    if table.num_rows:
                        out.write_table(table, row_group_size=self.row_group_size)
                        written += table.num_rows
        self.discard()
        for part in self.parts:  # merged into photos.parquet now
            part.unlink(missing_ok=True)
        self.parts = []
        return MergeResult(
            rows=written,
            new_rows=len(harvested) - updated,
            updated_rows=updated,
            dropped_rows=dropped,
            kept_unseen=kept,
        )

    def discard(self) -> None:
        """Forget the harvested rows (remove the scratch file)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._pending = []
        self.scratch.unlink(missing_ok=True)

    def _write(self, rows: list[dict[str, Any]]) -> None:
        assert self._writer is not None, "rows added after commit"
        self._writer.write_table(records_table(rows), row_group_size=self.row_group_size)


def records_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Row dicts -> a ``RECORDS`` table, column by column (several times faster than ``from_pylist``)."""
    columns = [pa.array([row.get(field.name) for row in rows], type=field.type) for field in RECORDS]
    return pa.Table.from_arrays(columns, schema=RECORDS)


def append_coverage(layout: DataLayout, keyword: str, rows: list[dict[str, Any]]) -> int:
    """Append window rows (``COVERAGE`` fields) to the keyword's coverage table; return its length."""
    path = layout.coverage_file(keyword)
    new = pa.Table.from_pylist(rows, schema=COVERAGE)
    table = pa.concat_tables([pq.read_table(path, schema=COVERAGE), new]) if path.exists() else new
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return table.num_rows


def read_state(layout: DataLayout, keyword: str) -> dict[str, Any] | None:
    """The keyword's harvest state (watermark, query fingerprint), or None if absent or unreadable."""
    path = layout.harvest_state_file(keyword)
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None  # a damaged state only costs a full harvest
    return state if isinstance(state, dict) and state.get("version") == STATE_VERSION else None


def read_resume(layout: DataLayout, keyword: str) -> tuple[dict[str, Any], list[Path]] | None:
    """An unfinished harvest's checkpoint and its part files, or None (none, unreadable, or a part missing)."""
    try:
        resume = json.loads(layout.harvest_resume_file(keyword).read_text(encoding="utf-8"))
        parts = [layout.harvest_part_file(keyword, number) for number in range(1, int(resume["parts"]) + 1)]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(resume, dict) or resume.get("version") != STATE_VERSION or not all(p.exists() for p in parts):
        return None
    return resume, parts


def write_resume(layout: DataLayout, keyword: str, resume: dict[str, Any]) -> None:
    """Record how far a harvest got (after its part files are durable)."""
    write_text(layout.harvest_resume_file(keyword), json.dumps({"version": STATE_VERSION, **resume}))


def drop_resume(layout: DataLayout, keyword: str) -> None:
    """Forget an unfinished harvest: its checkpoint first, then its part files."""
    layout.harvest_resume_file(keyword).unlink(missing_ok=True)
    for part in layout.records_dir(keyword).glob("_part-*.parquet"):
        part.unlink(missing_ok=True)


def write_state(layout: DataLayout, keyword: str, state: dict[str, Any]) -> None:
    """Write the keyword's harvest state atomically."""
    write_text(layout.harvest_state_file(keyword), json.dumps({"version": STATE_VERSION, **state}, indent=2))


def _conform(batch: pa.RecordBatch, path: Path) -> pa.Table:
    """A batch read back from ``path``, in the exact ``RECORDS`` columns and types (Parquet stores seconds as
    ms; a file of an earlier version may lack a newer column)."""
    try:
        return conform(pa.Table.from_batches([batch]), RECORDS)
    except SchemaMismatch as error:
        raise SchemaMismatch(
            f"records file {path} {error}: materialise the keyword with full_refresh to write it anew"
        ) from None


def _seconds(column: pa.ChunkedArray) -> np.ndarray:
    return column.cast(pa.timestamp("s", tz="UTC")).cast(pa.int64()).to_numpy()


def _column(path: Path, name: str) -> np.ndarray:
    return pq.read_table(path, columns=[name]).column(name).to_numpy()


def _last_occurrence(ids: np.ndarray) -> np.ndarray:
    """Boolean mask selecting the last row of each photo_id (the newest copy wins)."""
    mask = np.zeros(len(ids), dtype=bool)
    if not len(ids):
        return mask
    reversed_ids = ids[::-1]
    _, first_in_reversed = np.unique(reversed_ids, return_index=True)
    mask[len(ids) - 1 - first_in_reversed] = True
    return mask


def _member(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """``values ∈ sorted_set`` element-wise (``sorted_set`` sorted ascending)."""
    if not len(sorted_set):
        return np.zeros(len(values), dtype=bool)
    index = np.searchsorted(sorted_set, values).clip(max=len(sorted_set) - 1)
    return sorted_set[index] == values


def _old_first_seen(path: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """IDs (sorted) and their first_seen (unix seconds) in the current file (none without one)."""
    if path is None:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    table = pq.read_table(path, columns=["photo_id", "first_seen"])
    ids = table.column("photo_id").to_numpy()
    first = _seconds(table.column("first_seen"))
    order = np.argsort(ids, kind="stable")
    return ids[order], first[order]


def _with_old_first_seen(table: pa.Table, old_ids: np.ndarray, old_first: np.ndarray) -> pa.Table:
    if not len(old_ids) or not table.num_rows:
        return table
    ids = table.column("photo_id").to_numpy()
    index = np.searchsorted(old_ids, ids).clip(max=len(old_ids) - 1)
    found = old_ids[index] == ids
    if not found.any():
        return table
    current = _seconds(table.column("first_seen"))
    first = np.where(found, np.minimum(old_first[index], current), current)
    position = table.schema.get_field_index("first_seen")
    return table.set_column(
        position, RECORDS.field("first_seen"), pa.array(first, pa.int64()).cast(RECORDS.field("first_seen").type)
    )
