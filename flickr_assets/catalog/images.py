"""Pick each photo's stored image from the manifests of its keywords, in flat numpy arrays.

A photo stored under several keywords gets one manifest row: an ``ok`` row first, then the row of the
keyword that holds its newest record, then the alphabetically first keyword. SHA-256 digests are kept
as 32 raw bytes (not 64-character strings); each manifest is read once, its chosen paths kept.
"""

from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from flickr_assets.catalog.grouping import RecordGroups
from flickr_assets.catalog.sources import SourceFile, read_ahead

IMAGE_COLUMNS = ("photo_id", "status", "sha256", "source_sha256", "phash", "stored_width", "stored_height", "path")
OK = "ok"


@dataclass
class ImageChoice:
    """The chosen manifest row of every photo of a :class:`RecordGroups` (same order)."""

    statuses: list[str]  # status code -> name
    file: np.ndarray  # int32: keyword (file) of the chosen manifest row, -1 when none
    row: np.ndarray  # int32: row in that manifest
    status: np.ndarray  # int16: status code, -1 when none
    sha: np.ndarray  # uint8 (U, 32): the stored file's digest
    has_sha: np.ndarray  # bool
    source_sha: np.ndarray  # uint8 (U, 32): the digest of the bytes as served (exact duplicates share it)
    has_source_sha: np.ndarray  # bool
    phash: np.ndarray  # int64
    has_phash: np.ndarray  # bool
    width: np.ndarray  # int32, -1 when unknown
    height: np.ndarray  # int32, -1 when unknown
    orphan_rows: int  # manifest rows whose photo has no record in the keywords read
    paths: pa.Array = field(default_factory=lambda: pa.array([], pa.string()))  # string (U,), null when none

    @property
    def ok(self) -> np.ndarray:
        """Photos whose chosen image is stored (status ``ok``)."""
        if OK not in self.statuses:
            return np.zeros(len(self.status), dtype=bool)
        return self.status == self.statuses.index(OK)


def _pair_tables() -> tuple[np.ndarray, np.ndarray]:
    """Two hex characters read as one little-endian uint16 -> byte value (0xFFFF: not hex), and back."""
    digits = b"0123456789abcdef"
    values = {c: i for i, c in enumerate(digits)} | {c: i for i, c in enumerate(b"ABCDEF", 10)}
    decode = np.full(1 << 16, 0xFFFF, dtype=np.uint16)
    for high, high_value in values.items():
        for low, low_value in values.items():
            decode[high | (low << 8)] = (high_value << 4) | low_value
    encode = np.array([digits[v >> 4] | (digits[v & 15] << 8) for v in range(256)], dtype=np.uint16)
    return decode, encode


_PAIR_VALUES, _PAIR_TEXT = _pair_tables()


def sha_to_bytes(column: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Hex SHA-256 strings as (n, 32) bytes plus a validity mask (null or malformed: invalid)."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    array = array.cast(pa.string())
    n = len(array)
    if array.null_count == n:
        return np.zeros((n, 32), np.uint8), np.zeros(n, bool)
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int32, count=n + 1, offset=4 * array.offset)
    well_formed = np.diff(offsets) == 64
    if array.null_count:
        well_formed &= array.is_valid().to_numpy(zero_copy_only=False)
    if not well_formed.all():  # pad every value to exactly 64 characters
        array = pc.if_else(pa.array(well_formed), array, "0" * 64)
        offsets = np.frombuffer(array.buffers()[1], dtype=np.int32, count=n + 1, offset=4 * array.offset)
    text = np.frombuffer(array.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[0] + 64 * n]
    pairs = _PAIR_VALUES[text.view(np.uint16).reshape(n, 32)]
    valid = well_formed & (pairs != 0xFFFF).all(axis=1)
    digest = pairs.astype(np.uint8)
    digest[~valid] = 0
    return digest, valid


def bytes_to_sha(digest: np.ndarray, valid: np.ndarray) -> pa.Array:
    """Inverse of :func:`sha_to_bytes`: lower-case hex strings, null where not ``valid``."""
    n = len(digest)
    text = _PAIR_TEXT[digest]  # (n, 32) character pairs
    offsets = np.arange(0, 64 * (n + 1), 64, dtype=np.int32)
    validity = pa.py_buffer(np.packbits(valid, bitorder="little"))
    buffers = [validity, pa.py_buffer(offsets), pa.py_buffer(text)]
    return pa.Array.from_buffers(pa.string(), n, buffers, null_count=n - int(np.count_nonzero(valid)))


def _int_column(table: pa.Table, name: str, dtype: type, missing: int) -> tuple[np.ndarray, np.ndarray]:
    if name not in table.column_names:
        return np.full(len(table), missing, dtype=dtype), np.zeros(len(table), dtype=bool)
    column = table[name]
    valid = pc.is_valid(column).to_numpy(zero_copy_only=False)
    values = pc.fill_null(column, missing).to_numpy().astype(dtype, copy=False)
    return values, valid


def ok_phashes(manifests: list[SourceFile | None]) -> np.ndarray:
    """The perceptual hash of every ``ok`` row of the manifests (int64; unordered, with repeats).

    A superset of the hashes :func:`choose_images` keeps, so their near-duplicate search can start before
    the records are grouped.
    """
    found = [np.empty(0, np.int64)]
    for source in manifests:
        if source is None:
            continue
        table = source.open(("status", "phash"), required=("photo_id", "status"))
        if "phash" not in table.column_names:
            continue
        keep = pc.and_(pc.equal(table["status"].cast(pa.string()), OK), pc.is_valid(table["phash"]))
        found.append(table["phash"].filter(pc.fill_null(keep, False)).cast(pa.int64()).to_numpy())
    return np.concatenate(found)


@dataclass
class _ManifestPart:
    """One manifest read and decoded (by a worker thread), matched to the photos of the records."""

    photo: np.ndarray  # photo index of every row (valid where ``known``)
    known: np.ndarray
    status_names: list[str]
    status_local: np.ndarray  # index into status_names
    sha: tuple[np.ndarray, np.ndarray] | None
    source_sha: tuple[np.ndarray, np.ndarray] | None
    phash: tuple[np.ndarray, np.ndarray]
    width: np.ndarray
    height: np.ndarray
    path: pa.Array | None
    rows: int = 0  # rows of the manifest (set once its matching arrays are dropped)


def _digests(table: pa.Table, name: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The decoded digests of column ``name``; None when it is absent or empty (saves 32 bytes a row)."""
    if name not in table.column_names or table[name].null_count == len(table):
        return None
    return sha_to_bytes(table[name])


def _read_manifest(source: SourceFile, index: int, groups: RecordGroups) -> _ManifestPart:
    table = source.open(IMAGE_COLUMNS, required=("photo_id", "status"))
    u = len(groups)
    ids = pc.fill_null(table["photo_id"], -1).cast(pa.int64()).to_numpy()
    photo = groups.photos_of_file(index)
    if len(photo) == len(ids) and np.array_equal(groups.photo_ids[photo], ids):
        known = np.ones(len(ids), bool)  # the manifest lists the records in their order: no search
    else:
        photo = np.minimum(np.searchsorted(groups.photo_ids, ids), max(u - 1, 0))
        known = (groups.photo_ids[photo] == ids) if u else np.zeros(len(ids), bool)
    status = pc.dictionary_encode(pc.fill_null(table["status"].cast(pa.string()), "")).combine_chunks()
    return _ManifestPart(
        photo=photo,
        known=known,
        status_names=status.dictionary.to_pylist(),
        status_local=status.indices.to_numpy(zero_copy_only=False).astype(np.int16),
        sha=_digests(table, "sha256"),
        source_sha=_digests(table, "source_sha256"),
        phash=_int_column(table, "phash", np.int64, 0),
        width=_int_column(table, "stored_width", np.int32, -1)[0],
        height=_int_column(table, "stored_height", np.int32, -1)[0],
        path=table["path"].cast(pa.string()).combine_chunks() if "path" in table.column_names else None,
    )


def choose_images(
    manifests: list[SourceFile | None],
    groups: RecordGroups,
    on_file: Callable[[int], None] | None = None,
    pool: Executor | None = None,
) -> ImageChoice:
    """Read the manifests (index = keyword order, None = no manifest) and pick one row per photo.

    ``pool`` reads and decodes the files in parallel; the choice itself runs file by file in keyword
    order here (a few vectorised operations per file).
    """
    u = len(groups)
    statuses: list[str] = []
    file = np.full(u, -1, np.int32)
    row = np.zeros(u, np.int32)
    status = np.full(u, -1, np.int16)
    best = np.full(u, -1, np.int8)
    # Each photo points at its chosen row among the kept rows of all manifests (-1: none). A file's rows
    # are kept whole when nearly all are chosen (no copy), else only the chosen ones.
    at = np.full(u, -1, np.int64)
    kept: list[tuple[_ManifestPart, np.ndarray | None]] = []
    kept_rows = 0
    orphan_rows = 0
    present = [(index, source) for index, source in enumerate(manifests) if source is not None]

    def read(item: tuple[int, SourceFile]) -> _ManifestPart:
        return _read_manifest(item[1], item[0], groups)

    for (index, _), part in zip(present, read_ahead(read, present, pool), strict=True):
        orphan_rows += int(len(part.known) - np.count_nonzero(part.known))
        for name in part.status_names:
            if name not in statuses:
                statuses.append(name)
        local_to_global = np.array([statuses.index(n) for n in part.status_names] or [0], np.int16)
        codes = local_to_global[part.status_local]
        ok_code = statuses.index(OK) if OK in statuses else -2
        photo = part.photo
        score = 2 * (codes == ok_code) + (groups.record_file[photo] == index)
        better = part.known & (score > best[photo])
        rows = np.flatnonzero(better)
        target = photo[rows]
        best[target] = score[rows]
        file[target] = index
        row[target] = rows
        status[target] = codes[rows]
        # The matching arrays are spent: only the kept columns stay (memory is the limit at 10M rows).
        part.photo, part.known, part.status_local = photo[:0], part.known[:0], part.status_local[:0]
        part.rows = len(photo)
        if len(rows) >= 0.9 * len(photo):
            kept.append((part, None))
            at[target] = kept_rows + rows
            kept_rows += len(photo)
        else:
            kept.append((part, rows))
            at[target] = kept_rows + np.arange(len(rows))
            kept_rows += len(rows)
        if on_file:
            on_file(index + 1)
    return _gather(kept, at, statuses, file, row, status, orphan_rows)


def _gather(
    kept: list[tuple[_ManifestPart, np.ndarray | None]],
    at: np.ndarray,
    statuses: list[str],
    file: np.ndarray,
    row: np.ndarray,
    status: np.ndarray,
    orphan_rows: int,
) -> ImageChoice:
    """Each photo's chosen values out of the kept manifest rows, in one gather per column."""
    has = at >= 0
    index = np.where(has, at, 0)

    def column(
        get: Callable[[_ManifestPart], np.ndarray | None], missing: int, dtype: type, shape: tuple[int, ...] = ()
    ) -> np.ndarray:
        pieces = []
        for part, rows in kept:
            values = get(part)
            if values is None:
                values = np.full((part.rows if rows is None else len(rows), *shape), missing, dtype)
            pieces.append(values if rows is None or len(values) != part.rows else values[rows])
        if not pieces:
            return np.full((len(at), *shape), missing, dtype)
        values = np.concatenate(pieces)
        del pieces
        values = values[index].astype(dtype, copy=False)
        values[~has] = missing
        return values

    def digest(name: str, which: int) -> Callable[[_ManifestPart], np.ndarray | None]:
        return lambda part: None if getattr(part, name) is None else getattr(part, name)[which]

    paths = [part.path if part.path is not None else pa.nulls(part.rows, pa.string()) for part, _ in kept]
    paths = [p if rows is None else p.take(pa.array(rows)) for p, (_, rows) in zip(paths, kept, strict=True)]
    path_array = pa.concat_arrays([pa.array([], pa.string()), *paths])
    return ImageChoice(
        statuses=statuses,
        file=file,
        row=row,
        status=status,
        sha=column(digest("sha", 0), 0, np.uint8, (32,)),
        has_sha=column(digest("sha", 1), 0, np.bool_),
        source_sha=column(digest("source_sha", 0), 0, np.uint8, (32,)),
        has_source_sha=column(digest("source_sha", 1), 0, np.bool_),
        phash=column(lambda part: part.phash[0], 0, np.int64),
        has_phash=column(lambda part: part.phash[1], 0, np.bool_),
        width=column(lambda part: part.width, -1, np.int32),
        height=column(lambda part: part.height, -1, np.int32),
        orphan_rows=orphan_rows,
        paths=path_array.take(pa.array(at, mask=~has)),
    )
