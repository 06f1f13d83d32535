"""The per-keyword input files of the catalog: which keywords, which files, and that they hold still."""

import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pyarrow as pa
import pyarrow.parquet as pq

from flickr_assets.storage.keys import KeywordError, decode_keyword, validate_keyword
from flickr_assets.storage.layout import DataLayout

PARTITION_PREFIX = "keyword="
Item = TypeVar("Item")
Result = TypeVar("Result")
#: Files read ahead of the one being consumed: enough to keep the workers busy, few enough to bound memory.
READ_AHEAD = 4


class CatalogError(ValueError):
    """Input the catalog cannot be built from (a bad file, a bad keyword folder, a file that changed)."""


class InputChanged(CatalogError):
    """An input file changed, went away or could not be read while the catalog was being built: building
    again may do (the asset's retry policy does)."""


@dataclass
class SourceFile:
    """One Parquet input, remembered by identity so a second read can prove it is the same file."""

    path: Path
    _stamp: tuple[int, int, int] | None = field(default=None, repr=False)
    _metadata: pq.FileMetaData | None = field(default=None, repr=False)  # footer, parsed once

    def open(self, columns: Sequence[str], required: Sequence[str] = ()) -> pa.Table:
        """Read ``columns`` (those present) from the file; the first read fixes its identity."""
        stamp = self._current_stamp()
        if self._stamp is None:
            self._stamp = stamp
        elif stamp != self._stamp:
            raise InputChanged(f"{self.path}: the file changed while the catalog was being built; run it again")
        try:
            with pq.ParquetFile(self.path, metadata=self._metadata) as parquet:
                self._metadata = parquet.metadata
                names = parquet.schema_arrow.names
                missing = [name for name in required if name not in names]
                if missing:
                    raise CatalogError(f"{self.path}: missing column(s) {', '.join(missing)}")
                # Files read by worker threads decode on that thread: pyarrow's own pool on top would only
                # oversubscribe the cores.
                in_main = threading.current_thread() is threading.main_thread()
                return parquet.read(columns=[c for c in columns if c in names], use_threads=in_main)
        except pa.ArrowInvalid as error:  # the bytes are not Parquet: the same on every try
            raise CatalogError(f"{self.path}: not a readable Parquet file ({error})") from error
        except OSError as error:  # gone, replaced, or a passing I/O failure: building again may do
            raise InputChanged(f"{self.path}: cannot be read now ({error}); run it again") from error

    def _current_stamp(self) -> tuple[int, int, int]:
        try:
            stat = self.path.stat()
        except OSError as error:
            raise InputChanged(f"{self.path}: cannot be read now ({error.strerror}); run it again") from error
        return (stat.st_ino, stat.st_size, stat.st_mtime_ns)


@dataclass
class Sources:
    """The keywords that will be read (sorted, so a keyword's index orders it) and their files."""

    keywords: list[str]
    records: list[SourceFile]
    manifests: list[SourceFile | None]  # None: the keyword has no manifest yet
    missing: list[str]  # requested keywords without a records file


def discover_keywords(layout: DataLayout) -> list[str]:
    """Keywords that have a records folder under the data folder."""
    root = layout.records_root
    if not root.is_dir():
        return []
    keywords = []
    for entry in os.scandir(root):
        if not entry.is_dir() or not entry.name.startswith(PARTITION_PREFIX):
            continue
        keyword = decode_keyword(entry.name[len(PARTITION_PREFIX) :])
        try:
            validate_keyword(keyword)
        except KeywordError as error:
            raise CatalogError(f"{entry.path}: folder does not hold a valid keyword ({error})") from error
        keywords.append(keyword)
    return keywords


def find_sources(layout: DataLayout, keywords: Sequence[str] | None = None) -> Sources:
    """Resolve ``keywords`` (default: every keyword on disk) to files; missing records are tolerated."""
    wanted = discover_keywords(layout) if keywords is None else list(keywords)
    present, records, manifests, missing = [], [], [], []
    for keyword in sorted(set(wanted)):
        records_file = layout.records_file(keyword)  # raises KeywordError for an unusable keyword
        if not records_file.is_file():
            missing.append(keyword)
            continue
        manifest_file = layout.manifest_file(keyword)
        present.append(keyword)
        records.append(SourceFile(records_file))
        manifests.append(SourceFile(manifest_file) if manifest_file.is_file() else None)
    return Sources(present, records, manifests, missing)


def read_ahead(
    work: Callable[[Item], Result], items: Iterable[Item], pool: Executor | None, ahead: int = READ_AHEAD
) -> Iterator[Result]:
    """``map(work, items)`` in order, run by ``pool`` at most ``ahead`` items ahead of the consumer.

    (``Executor.map`` would submit every file at once and hold all results the consumer has not reached.)
    """
    if pool is None:
        yield from map(work, items)
        return
    source = iter(items)
    pending: deque[Future[Result]] = deque(
        pool.submit(work, item) for _, item in zip(range(ahead), source, strict=False)
    )
    try:
        while pending:
            result = pending.popleft().result()
            for item in source:
                pending.append(pool.submit(work, item))
                break
            yield result
    finally:
        for future in pending:
            future.cancel()
