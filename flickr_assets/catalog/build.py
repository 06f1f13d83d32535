"""Build ``catalog/catalog.parquet``: one row per photo over the records and manifests of all keywords.

Three passes, memory bounded by a few flat arrays per photo (never one Python object per row):

1. group the records' ``photo_id``/``first_seen``/``last_seen`` by photo (keyword lists, newest record);
2. pick each photo's image from the manifests; flag exact and near duplicates;
3. stream keyword by keyword: take the newest records' full rows; per row group add the catalog columns
   and hand it to a second thread that writes it while the next keywords are read.

Rows come grouped by the keyword holding their newest record, in that records file's order.
"""

import json
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from flickr_assets.catalog.duplicates import (
    BandPlan,
    NearSearch,
    check_distance,
    distinct,
    exact_duplicate_groups,
    near_duplicate_groups,
    search_near,
)
from flickr_assets.catalog.grouping import RecordGroups, keyword_lists, read_groups, stable_order
from flickr_assets.catalog.images import ImageChoice, bytes_to_sha, choose_images, ok_phashes
from flickr_assets.catalog.sources import CatalogError, InputChanged, SourceFile, Sources, find_sources, read_ahead
from flickr_assets.storage.atomic import atomic_path
from flickr_assets.storage.layout import DataLayout
from flickr_assets.storage.schemas import CATALOG, RECORDS, SchemaMismatch, as_stored, conform
from flickr_assets.wording import counted

#: Key of the catalog file's metadata listing the keywords it was built from (JSON list).
KEYWORDS_METADATA_KEY = b"flickr_assets.keywords"
ROW_GROUP_ROWS = 256_000
#: Threads reading and decoding input files (Parquet decoding and numpy release the GIL).
READERS = 2
PREVIEW_COLUMNS = ("photo_id", "title", "keywords", "image_status", "image_path", "exact_duplicate_of")
#: Record fields taken from each photo's newest record (first and last seen are aggregated instead).
RECORD_COLUMNS = [f.name for f in RECORDS if f.name not in ("keyword", "first_seen", "last_seen")]
# Timestamps as the files hold them (ms): converting them to CATALOG's seconds would only have the Parquet
# writer convert them back.
RECORD_SCHEMA = as_stored(pa.schema([RECORDS.field(name) for name in RECORD_COLUMNS]))
STORED_CATALOG = as_stored(CATALOG)
#: Parquet codec of the catalog file: Parquet's usual default. At 10M rows it builds about as fast as
#: ``none`` (its smaller file costs less to write) and makes the file half as big (1.9 GB instead of 4.1 GB).
DEFAULT_COMPRESSION = "snappy"
#: The codecs a catalog may be written with (those pyarrow's Parquet writer takes, when built in).
PARQUET_CODECS = ("none", "snappy", "zstd", "lz4", "gzip", "brotli")
#: Near-duplicate distance of a build unless told otherwise (bits of the 64-bit perceptual hash).
DEFAULT_NEAR_DISTANCE = 6
# Dictionary encoding pays only for columns of a few distinct values; on unique or varied text (owners,
# keyword lists) it costs write time for ~1% of file size.
DICTIONARY_COLUMNS = ["server", "media", "original_format", "image_status"]
# Min/max statistics only where a reader can prune with them: on long text they cost ~20% of the write.
STATISTICS_COLUMNS = [f.name for f in CATALOG if not (pa.types.is_string(f.type) or pa.types.is_list(f.type))]


@dataclass(frozen=True)
class CatalogProgress:
    """Where a catalog build is: ``stage`` is records, images, duplicates or write."""

    stage: str
    done: int
    total: int

    def __str__(self) -> str:
        return f"catalog {self.stage}: {self.done}/{self.total}"


@dataclass
class CatalogResult:
    """What a build wrote and found."""

    rows: int
    records_read: int
    multi_keyword_photos: int
    photos_with_images: int
    exact_duplicate_groups: int
    exact_duplicate_photos: int
    near_duplicate_groups: int
    near_duplicate_photos: int
    keywords_read: list[str]
    missing_keywords: list[str]
    keywords_without_manifest: list[str]
    orphan_manifest_rows: int
    elapsed_s: float
    near_distance: int = DEFAULT_NEAR_DISTANCE
    stage_seconds: dict[str, float] = field(default_factory=dict)
    near_plan: BandPlan | None = None
    preview: pa.Table = field(default_factory=lambda: pa.table({}))

    def __str__(self) -> str:
        return (
            f"{self.rows} photos from {self.records_read} records of {counted(len(self.keywords_read), 'keyword')} "
            f"({len(self.missing_keywords)} not materialised); {self.multi_keyword_photos} in several keywords; "
            f"{self.exact_duplicate_groups} exact and {self.near_duplicate_groups} near duplicate groups; "
            f"{self.elapsed_s:.1f} s"
        )


def _catalog_schema(keywords: Sequence[str]) -> pa.Schema:
    return STORED_CATALOG.with_metadata({KEYWORDS_METADATA_KEY: json.dumps(list(keywords)).encode()})


def _nullable(values: np.ndarray, valid: np.ndarray, type_: pa.DataType) -> pa.Array:
    return pa.array(values, type=type_, mask=~valid)


class _Writer:
    """Writes tables to a Parquet file from a background thread (bounded queue, errors re-raised)."""

    def __init__(self, path: Path, schema: pa.Schema, compression: str) -> None:
        self._queue: queue.Queue[pa.Table | None] = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._writer = pq.ParquetWriter(
            str(path),
            schema,
            compression=compression,
            use_dictionary=DICTIONARY_COLUMNS,
            write_statistics=STATISTICS_COLUMNS,
        )
        self._thread = threading.Thread(target=self._run, name="catalog-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (table := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
                except BaseException as error:  # handed to the producing thread
                    self._error = error

    def put(self, table: pa.Table) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(table)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        self._writer.close()
        if self._error is not None:
            raise self._error


def check_options(near_distance: int, compression: str) -> None:
    """Raise ``ValueError`` naming the option if ``near_distance`` or ``compression`` cannot be used."""
    check_distance(near_distance, "near_distance")
    codec = compression.lower()
    if codec not in PARQUET_CODECS or (codec != "none" and not pa.Codec.is_available(codec)):
        raise ValueError(f"compression must be one of {', '.join(PARQUET_CODECS)}, not {compression!r}")


def build_catalog(
    layout: DataLayout,
    keywords: Sequence[str] | None = None,
    near_distance: int = DEFAULT_NEAR_DISTANCE,
    on_progress: Callable[[CatalogProgress], None] | None = None,
    compression: str = DEFAULT_COMPRESSION,
) -> CatalogResult:
    """Merge the records and manifests of ``keywords`` (default: all on disk) into the catalog file.

    ``near_distance`` is the largest Hamming distance between the perceptual hashes of near duplicates;
    ``compression`` is the Parquet codec of the catalog file (``none``, ``snappy``, ``zstd``, ...).

    Keywords never materialised are skipped and listed in ``missing_keywords``. Raises ``ValueError`` on
    bad options (before reading anything) and :class:`~flickr_assets.catalog.sources.CatalogError` on
    unreadable input, naming the file.
    """
    check_options(near_distance, compression)
    started = time.perf_counter()
    stages: dict[str, float] = {}
    sources = find_sources(layout, keywords)
    total = len(sources.keywords)

    def progress(stage: str) -> Callable[[int], None] | None:
        return (lambda done: on_progress(CatalogProgress(stage, done, total))) if on_progress else None

    with (
        ThreadPoolExecutor(max_workers=READERS, thread_name_prefix="catalog-read") as pool,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="catalog-near") as background,
    ):
        # The near-duplicate search needs only the manifests' ok hashes: it runs while the records are
        # grouped and the images chosen. If the build fails meanwhile, it is cancelled rather than waited for.
        cancel = threading.Event()

        def search() -> NearSearch:
            begun = time.perf_counter()
            found = search_near(ok_phashes(sources.manifests), near_distance, cancel)
            stages["near_search"] = time.perf_counter() - begun  # in the background: overlaps records, images
            return found

        near_search = background.submit(search)
        try:
            mark = time.perf_counter()
            groups = read_groups(sources.records, progress("records"), pool)
            stages["records"] = time.perf_counter() - mark
            pa.default_memory_pool().release_unused()  # hand the read buffers back before the next stage

            mark = time.perf_counter()
            choice = choose_images(sources.manifests, groups, progress("images"), pool)
            stages["images"] = time.perf_counter() - mark
            pa.default_memory_pool().release_unused()  # hand the read buffers back before the next stage

            mark = time.perf_counter()
            exact_of, near_group, plan = _duplicates(groups, choice, near_distance, near_search, pool)
            if on_progress:
                on_progress(CatalogProgress("duplicates", 1, 1))
            stages["duplicates"] = time.perf_counter() - mark

            mark = time.perf_counter()
            preview = _write(
                layout, sources, groups, choice, exact_of, near_group, compression, progress("write"), pool
            )
            stages["write"] = time.perf_counter() - mark
        except BaseException:
            cancel.set()
            raise

    num_keywords = groups.num_keywords
    exact_roots, near_roots = exact_of[exact_of >= 0], near_group[near_group >= 0]
    return CatalogResult(
        rows=len(groups),
        records_read=groups.rows_read,
        multi_keyword_photos=int((num_keywords > 1).sum()),
        photos_with_images=int(choice.ok.sum()),
        exact_duplicate_groups=len(distinct(exact_roots)),
        exact_duplicate_photos=len(exact_roots),
        near_duplicate_groups=len(distinct(near_roots)),
        near_duplicate_photos=len(near_roots),
        keywords_read=sources.keywords,
        missing_keywords=sources.missing,
        keywords_without_manifest=[k for k, m in zip(sources.keywords, sources.manifests, strict=True) if m is None],
        orphan_manifest_rows=choice.orphan_rows,
        elapsed_s=time.perf_counter() - started,
        near_distance=near_distance,
        stage_seconds=stages,
        near_plan=plan,
        preview=preview,
    )


def _duplicates(
    groups: RecordGroups,
    choice: ImageChoice,
    near_distance: int,
    searched: Future[NearSearch],
    pool: Executor,
) -> tuple[np.ndarray, np.ndarray, BandPlan]:
    """Per photo: photo ID of its exact group and of its near group (-1 when none). The exact groups are made
    on ``pool`` beside the near groups' inputs (both mostly numpy sorts, which release the GIL); the near
    search of ``searched``, if still running, is waited for last."""
    exact = pool.submit(_exact_of, groups, choice)
    near_group = np.full(len(groups), -1, dtype=np.int64)
    values = choice.values
    members = np.flatnonzero(choice.ok & values["has_phash"])
    roots, plan = near_duplicate_groups(values["phash"][members], near_distance, searched)
    near_group[members[roots >= 0]] = groups.photo_ids[members[roots[roots >= 0]]]
    return exact.result(), near_group, plan


def _exact_of(groups: RecordGroups, choice: ImageChoice) -> np.ndarray:
    """Per photo: photo ID of its exact duplicate group (-1 when none)."""
    exact_of = np.full(len(groups), -1, dtype=np.int64)
    # Each stored file embeds its own record, so byte-identical uploads differ once stored: compare the bytes
    # as served (manifests without that column fall back to the stored file's digest).
    values = choice.values
    members = np.flatnonzero(choice.ok & (values["has_source_sha"] | values["has_sha"]))
    digests = values["sha"][members]
    served = values["has_source_sha"][members]
    if choice.source_sha is not None:
        digests[served] = choice.source_sha[members[served]]
    roots = exact_duplicate_groups(digests)
    exact_of[members[roots >= 0]] = groups.photo_ids[members[roots[roots >= 0]]]
    return exact_of


def _write(
    layout: DataLayout,
    sources: Sources,
    groups: RecordGroups,
    choice: ImageChoice,
    exact_of: np.ndarray,
    near_group: np.ndarray,
    compression: str,
    on_file: Callable[[int], None] | None,
    pool: Executor,
) -> pa.Table:
    """Stream the catalog rows into the catalog file atomically; return the first rows as a preview.

    Each records file contributes a ``take`` of its newest rows; the catalog columns are added once per
    row group (not per file), so the per-file work is one read and one take.
    """
    schema = _catalog_schema(sources.keywords)
    keyword_names = pa.array(sources.keywords, type=pa.string())
    statuses = pa.array(choice.statuses, type=pa.string())
    # Photos by the keyword of their newest record, in each file's row order (one sequential take).
    by_file, _ = stable_order(groups.file_offsets[groups.record_file] + groups.record_row)  # by record index
    bounds = np.searchsorted(groups.record_file[by_file], np.arange(len(sources.records) + 1))
    preview = schema.empty_table()
    pending: list[pa.Table] = []
    pending_rows = 0

    def newest_rows(index: int) -> pa.Table | None:
        if bounds[index + 1] == bounds[index]:
            return None
        return _rows(sources.records[index], by_file[bounds[index] : bounds[index + 1]], groups)

    with atomic_path(layout.catalog_file) as tmp:
        writer = _Writer(tmp, schema, compression)
        try:
            tables = read_ahead(newest_rows, range(len(sources.records)), pool)
            for index, table in enumerate(tables):
                if table is not None:
                    pending.append(table)
                    pending_rows += len(table)
                last = index == len(sources.records) - 1
                if pending and (pending_rows >= ROW_GROUP_ROWS or last):
                    photos = by_file[bounds[index + 1] - pending_rows : bounds[index + 1]]
                    batch = _add_catalog_columns(
                        pa.concat_tables(pending), photos, groups, choice, keyword_names, statuses, exact_of, near_group
                    ).cast(schema)
                    if not len(preview):
                        preview = batch.slice(0, 10)
                    writer.put(batch)
                    pending, pending_rows = [], 0
                if on_file:
                    on_file(index + 1)
        finally:
            writer.close()
    return preview.select(list(PREVIEW_COLUMNS))


def _rows(source: SourceFile, photos: np.ndarray, groups: RecordGroups) -> pa.Table:
    """The newest record rows of ``photos`` from ``source``, as :data:`RECORD_SCHEMA` (missing: nulls)."""
    table = source.open(RECORD_COLUMNS)
    rows = groups.record_row[photos]  # ascending: each photo has one newest record
    if len(rows) < len(table):
        table = table.take(pa.array(rows))  # 0.3 us per row on records files, a mask filter 0.4-0.5
    if not np.array_equal(table["photo_id"].to_numpy(), groups.photo_ids[photos]):
        raise InputChanged(f"{source.path}: rows moved while the catalog was being built; run it again")
    try:
        return conform(table, RECORD_SCHEMA)
    except SchemaMismatch as error:
        raise CatalogError(f"records file {source.path} {error}") from None


def _add_catalog_columns(
    table: pa.Table,
    photos: np.ndarray,
    groups: RecordGroups,
    choice: ImageChoice,
    keyword_names: pa.Array,
    statuses: pa.Array,
    exact_of: np.ndarray,
    near_group: np.ndarray,
) -> pa.Table:
    """Replace the aggregated columns and add the keyword, image and duplicate columns."""
    timestamp = STORED_CATALOG.field("first_seen").type  # seconds are kept as ms (see RECORD_SCHEMA)
    chosen = choice.rows(photos)
    status = chosen["status"].astype(np.int64)
    has_image = status >= 0
    width, height = chosen["width"], chosen["height"]
    columns = {
        "first_seen": pa.array(groups.first_seen[photos] * 1000, type=timestamp),
        "last_seen": pa.array(groups.last_seen[photos] * 1000, type=timestamp),
        "keywords": keyword_lists(groups, photos, keyword_names),
        "num_keywords": pa.array(groups.keyword_offsets[photos + 1] - groups.keyword_offsets[photos], pa.int32()),
        "image_status": statuses.take(_nullable(status, has_image, pa.int64())),
        "image_path": choice.paths(chosen),
        "image_sha256": bytes_to_sha(chosen["sha"], chosen["has_sha"]),
        "image_width": _nullable(width, width >= 0, pa.int32()),
        "image_height": _nullable(height, height >= 0, pa.int32()),
        "image_phash": _nullable(chosen["phash"], chosen["has_phash"], pa.int64()),
        "exact_duplicate_of": _nullable(exact_of[photos], exact_of[photos] >= 0, pa.int64()),
        "near_duplicate_group": _nullable(near_group[photos], near_group[photos] >= 0, pa.int64()),
    }
    for name, column in columns.items():
        if name in table.column_names:
            table = table.set_column(table.column_names.index(name), name, column)
        else:
            table = table.append_column(name, column)
    return table.select([f.name for f in CATALOG])
