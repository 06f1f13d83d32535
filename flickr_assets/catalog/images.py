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
_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_HEX_VALUES = np.full(256, 255, dtype=np.uint8)
_HEX_VALUES[np.frombuffer(b"0123456789", np.uint8)] = np.arange(10)
_HEX_VALUES[np.frombuffer(b"abcdef", np.uint8)] = np.arange(10, 16)
_HEX_VALUES[np.frombuffer(b"ABCDEF", np.uint8)] = np.arange(10, 16)


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


def sha_to_bytes(column: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Hex SHA-256 strings as (n, 32) bytes plus a validity mask (null or malformed: invalid)."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    array = array.cast(pa.string())
    n = len(array)
    well_formed = pc.fill_null(pc.equal(pc.utf8_length(array), 64), False)
    padded = pc.if_else(well_formed, array, "0" * 64)  # every value now exactly 64 bytes
    offsets = np.frombuffer(padded.buffers()[1], dtype=np.int32, count=n + 1, offset=4 * padded.offset)
    text = np.frombuffer(padded.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[0] + 64 * n]
    nibbles = _HEX_VALUES[text.reshape(n, 64)]
    valid = well_formed.to_numpy(zero_copy_only=False) & (nibbles != 255).all(axis=1)
    digest = (nibbles[:, 0::2] << 4) | (nibbles[:, 1::2] & 15)
    digest[~valid] = 0
    return digest.astype(np.uint8), valid


def bytes_to_sha(digest: np.ndarray, valid: np.ndarray) -> pa.Array:
    """Inverse of :func:`sha_to_bytes`: lower-case hex strings, null where not ``valid``."""
    n = len(digest)
    text = np.empty((n, 64), dtype=np.uint8)
    text[:, 0::2] = _HEX_DIGITS[digest >> 4]
    text[:, 1::2] = _HEX_DIGITS[digest & 15]
    offsets = np.arange(0, 64 * (n + 1), 64, dtype=np.int32)
    strings = pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(text)])
    return pc.if_else(pa.array(valid, type=pa.bool_()), strings, pa.scalar(None, pa.string()))


def _int_column(table: pa.Table, name: str, dtype: type, missing: int) -> tuple[np.ndarray, np.ndarray]:
    if name not in table.column_names:
        return np.full(len(table), missing, dtype=dtype), np.zeros(len(table), dtype=bool)
    column = table[name]
    valid = pc.is_valid(column).to_numpy(zero_copy_only=False)
    values = pc.fill_null(column, missing).to_numpy().astype(dtype, copy=False)
    return values, valid


@dataclass
class _ManifestPart:
    """One manifest read and decoded (by a worker thread), matched to the photos of the records."""

    photo: np.ndarray  # photo index of every row (valid where ``known``)
    known: np.ndarray
    status_names: list[str]
    status_local: np.ndarray  # index into status_names
    sha: tuple[np.ndarray, np.ndarray]
    source_sha: tuple[np.ndarray, np.ndarray]
    phash: tuple[np.ndarray, np.ndarray]
    width: np.ndarray
    height: np.ndarray
    path: pa.Array | None


def _digests(table: pa.Table, name: str) -> tuple[np.ndarray, np.ndarray]:
    if name in table.column_names:
        return sha_to_bytes(table[name])
    return np.zeros((len(table), 32), np.uint8), np.zeros(len(table), bool)


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
    choice = ImageChoice(
        statuses=[],
        file=np.full(u, -1, np.int32),
        row=np.zeros(u, np.int32),
        status=np.full(u, -1, np.int16),
        sha=np.zeros((u, 32), np.uint8),
        has_sha=np.zeros(u, bool),
        source_sha=np.zeros((u, 32), np.uint8),
        has_source_sha=np.zeros(u, bool),
        phash=np.zeros(u, np.int64),
        has_phash=np.zeros(u, bool),
        width=np.full(u, -1, np.int32),
        height=np.full(u, -1, np.int32),
        orphan_rows=0,
    )
    best = np.full(u, -1, np.int8)
    # Chosen paths of every manifest in turn; a photo's latest choice wins (its position is kept).
    path_pieces: list[pa.Array] = []
    path_at = np.full(u, -1, np.int64)
    path_count = 0
    present = [(index, source) for index, source in enumerate(manifests) if source is not None]

    def read(item: tuple[int, SourceFile]) -> _ManifestPart:
        return _read_manifest(item[1], item[0], groups)

    parts = read_ahead(read, present, pool)
    for (index, _), part in zip(present, parts, strict=True):
        choice.orphan_rows += int((~part.known).sum())
        for name in part.status_names:
            if name not in choice.statuses:
                choice.statuses.append(name)
        local_to_global = np.array([choice.statuses.index(n) for n in part.status_names] or [0], np.int16)
        codes = local_to_global[part.status_local]
        ok_code = choice.statuses.index(OK) if OK in choice.statuses else -2
        photo = part.photo
        score = 2 * (codes == ok_code) + (groups.record_file[photo] == index)
        better = part.known & (score > best[photo])
        rows = np.flatnonzero(better)
        target = photo[rows]
        best[target] = score[rows]
        choice.file[target] = index
        choice.row[target] = rows
        choice.status[target] = codes[rows]
        for (values, valid), digests, has in (
            (part.sha, choice.sha, choice.has_sha),
            (part.source_sha, choice.source_sha, choice.has_source_sha),
        ):
            digests[target], has[target] = values[rows], valid[rows]
        if part.path is not None:
            path_pieces.append(part.path.take(pa.array(rows)))
            path_at[target] = path_count + np.arange(len(rows))
            path_count += len(rows)
        else:
            path_at[target] = -1
        choice.phash[target] = part.phash[0][rows]
        choice.has_phash[target] = part.phash[1][rows]
        choice.width[target] = part.width[rows]
        choice.height[target] = part.height[rows]
        if on_file:
            on_file(index + 1)
    paths = pa.concat_arrays([pa.array([], pa.string()), *path_pieces])
    del path_pieces
    choice.paths = paths.take(pa.array(path_at, mask=path_at < 0))
    return choice
