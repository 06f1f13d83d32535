"""The photo universe: every simulated photo as columns of numpy arrays, built deterministically from a seed.

Row order is upload order (ties in random order), so any sorted array of row indices is also sorted by
upload time. Photo IDs grow with the row for the generated photos; photos added by :meth:`Universe.upload`
get new, larger IDs wherever their upload time falls.
"""

import math
import threading
import time
from dataclasses import dataclass, fields, replace

import numpy as np

from .geometry import (
    BLACK,
    COLOUR,
    LAYERED,
    NO_FRAME,
    ONE_SIDE,
    WHITE,
    content_box,
    final_size,
    is_too_small,
    scaled_dims,
)
from .spec import KEYWORD_PLACES, LARGE_EDGE, MIN_SIDE, START_TS, TEST_PATTERN, TIE_PROFILES, UniverseSpec

FIRST_ID = 2_000_000_000
OWNER_COUNT = 60_000
OWNER_BASE = 10_000_000
OWNER_STEP = 7_919

# Zoo kinds (the "test pattern" keyword): what each serves, and what the downloader should conclude.
ZOO_KINDS: tuple[tuple[str, str], ...] = (
    ("zero_bytes", "invalid"),
    ("bomb", "invalid"),
    ("cmyk", "ok"),
    ("greyscale", "ok"),
    ("png_as_jpg", "ok"),
    ("gif_as_jpg", "ok"),
    ("one_side_frame", "ok"),
    ("tiny", "too_small"),
)
ZOO_SIZE = 40
NORMAL = -1

_LICENSE_WEIGHTS = np.array([84, 2.5, 2, 2, 2.5, 1.5, 1, 1, 0.5, 0.5, 0.5, 0.4, 0.4, 0.3, 0.3, 0.3, 0.3])


@dataclass(frozen=True)
class Columns:
    """One immutable snapshot of every per-photo column (replaced whole on upload)."""

    ids: np.ndarray  # int64 photo ID
    upload: np.ndarray  # int64 unix seconds, non-decreasing
    taken: np.ndarray  # int64 unix seconds (owner's local time read as UTC)
    granularity: np.ndarray  # int8 0/4/6/8
    taken_unknown: np.ndarray  # bool
    kw1: np.ndarray  # int8 keyword index
    kw2: np.ndarray  # int8 second keyword index or -1
    lat: np.ndarray  # float32
    lon: np.ndarray  # float32
    accuracy: np.ndarray  # int8, 0 = not geotagged
    license: np.ndarray  # int8 0..16
    owner: np.ndarray  # int32 owner number
    width: np.ndarray  # int32 original width after orientation
    height: np.ndarray  # int32
    large: np.ndarray  # bool: a Large (_b) exists
    orientation: np.ndarray  # int8 EXIF orientation of the stored original (1, 6, 8)
    frame: np.ndarray  # int8 frame kind (geometry.py)
    frame_fraction: np.ndarray  # float32 total frame thickness / shorter side
    content: np.ndarray  # int32 scene seed (shared by duplicates)
    variant: np.ndarray  # int8 0 = as generated, >0 = a re-encoded near duplicate
    views: np.ndarray  # int32
    interest: np.ndarray  # float32 interestingness score
    zoo: np.ndarray  # int8 ZOO_KINDS index or -1
    deleted: np.ndarray  # bool: the static host answers the placeholder

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, rows: np.ndarray) -> "Columns":
        return Columns(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})


@dataclass(frozen=True)
class Duplicate:
    kind: str  # "exact" or "near"
    ids: tuple[int, ...]


class Universe:
    """The photos of one simulator. Built once per (seed, spec) and forked per simulator for uploads/deletes."""

    def __init__(self, seed: int, spec: UniverseSpec, columns: Columns, duplicates: list[Duplicate], now: int):
        self.seed = seed
        self.spec = spec
        self.now = now
        self.keyword_names: list[str] = [*spec.keywords, *([TEST_PATTERN] if spec.test_pattern else [])]
        self.keyword_index = {name: i for i, name in enumerate(self.keyword_names)}
        self.duplicates = duplicates
        self._base_ids = columns.ids
        self._base_zoo = columns.zoo
        self._lock = threading.Lock()
        self._set(columns)

    def _set(self, columns: Columns) -> None:
        self.cols = columns
        self._id_order = np.argsort(columns.ids, kind="stable")
        self._sorted_ids = columns.ids[self._id_order]
        self._keyword_rows = [
            np.flatnonzero((columns.kw1 == k) | (columns.kw2 == k)) for k in range(len(self.keyword_names))
        ]

    def fork(self) -> "Universe":
        """A copy sharing the (immutable) columns, with its own uploads and deletions."""
        forked = Universe(
            self.seed, self.spec, replace(self.cols, deleted=self.cols.deleted.copy()), self.duplicates, self.now
        )
        forked._base_ids, forked._base_zoo = self._base_ids, self._base_zoo
        return forked

    # -- lookups -------------------------------------------------------------------------------------------
    def row_of(self, photo_id: int) -> int | None:
        """Row index of a photo ID, or None when there is no such photo."""
        pos = int(np.searchsorted(self._sorted_ids, photo_id))
        if pos < len(self._sorted_ids) and self._sorted_ids[pos] == photo_id:
            return int(self._id_order[pos])
        return None

    def rows_of(self, photo_ids: np.ndarray) -> np.ndarray:
        """Sorted rows of known photo IDs (unknown IDs are dropped)."""
        pos = np.minimum(np.searchsorted(self._sorted_ids, photo_ids), len(self._sorted_ids) - 1)
        pos = pos[self._sorted_ids[pos] == photo_ids]
        return np.sort(self._id_order[pos])

    def keyword_rows(self, name: str) -> np.ndarray | None:
        """Sorted rows of the photos matching a universe keyword, or None if ``name`` is not one."""
        k = self.keyword_index.get(name)
        return None if k is None else self._keyword_rows[k]

    def pseudo_rows(self, query: str) -> np.ndarray:
        """Rows of the small deterministic photo set an arbitrary query matches (a few dozen to a few hundred)."""
        digest = int.from_bytes(_blake(f"{self.seed}/{query}"), "little")
        rng = np.random.default_rng(digest)
        count = 30 + digest % 271
        picks = np.unique(rng.integers(0, len(self._base_ids), count * 2))
        picks = picks[self._base_zoo[picks] == NORMAL]
        picks = np.sort(rng.permutation(picks)[:count])
        return self.rows_of(self._base_ids[picks])

    # -- mutations -----------------------------------------------------------------------------------------
    def delete(self, photo_id: int) -> None:
        """Make a photo unavailable on the static host (it stays in search results, as on Flickr)."""
        row = self.row_of(photo_id)
        if row is None:
            raise KeyError(f"no photo {photo_id} in the simulated universe")
        self.cols.deleted[row] = True

    def upload(self, keyword: str, count: int, when: int) -> list[int]:
        """Add ``count`` new photos matching ``keyword`` uploaded at ``when``; return their IDs."""
        with self._lock:
            cols = self.cols
            new = _new_photos(self, keyword, count, when, int(cols.ids.max()) + 1)
            merged = Columns(
                **{f.name: np.concatenate([getattr(cols, f.name), getattr(new, f.name)]) for f in fields(cols)}
            )
            self._set(merged.take(np.argsort(merged.upload, kind="stable")))
            return [int(i) for i in new.ids]


_ID_STEP = 2
_CACHE: dict[tuple, Universe] = {}
_CACHE_LOCK = threading.Lock()


def _blake(text: str) -> bytes:
    import hashlib

    return hashlib.blake2b(text.encode(), digest_size=8).digest()


def universe_for(seed: int, spec: UniverseSpec) -> Universe:
    """The universe of (seed, spec), built once per process and forked for each caller."""
    key = (seed, spec.key())
    with _CACHE_LOCK:
        base = _CACHE.get(key)
        if base is None:
            base = _CACHE[key] = build_universe(seed, spec, now=int(time.time()) // 86_400 * 86_400)
    return base.fork()


def build_universe(seed: int, spec: UniverseSpec, now: int) -> Universe:
    """Generate every photo of the universe (vectorised; ~1 s for the default 1.3 M photos)."""
    rng = np.random.default_rng([seed, 20040201])
    names = list(spec.keywords)
    counts = np.array([spec.keywords[n] for n in names], dtype=np.int64)
    n_kw = len(names)

    # Photos matching two keywords: every keyword but the biggest shares 5-10 % of its photos with others,
    # partners chosen in proportion to their size (so "sunset" mostly receives and "colosseum" rarely does).
    shared = np.zeros((n_kw, n_kw), dtype=np.int64)
    if n_kw > 1:
        biggest = int(np.argmax(counts))
        for j in range(n_kw):
            if j == biggest:
                continue
            weights = counts.astype(float)
            weights[j] = 0
            shared[j] = rng.multinomial(round(counts[j] * rng.uniform(0.05, 0.10)), weights / weights.sum())
    for (first, second), count in spec.overlaps.items():
        if first in names and second in names and first != second:
            shared[names.index(first), names.index(second)] += count
    primary = counts - shared.sum(axis=0)
    if (primary < shared.sum(axis=1)).any():
        raise ValueError("UniverseSpec: keyword volumes too uneven to plant overlaps; use fewer tiny keywords")

    blocks_kw1, blocks_kw2, blocks_upload = [], [], []
    for j in range(n_kw):
        n = int(primary[j])
        blocks_upload.append(_upload_times(rng, n, START_TS, now, TIE_PROFILES[spec.ties]))
        blocks_kw1.append(np.full(n, j, dtype=np.int8))
        kw2 = np.full(n, -1, dtype=np.int8)
        partners = np.repeat(np.arange(n_kw, dtype=np.int8), shared[j])
        kw2[rng.choice(n, len(partners), replace=False)] = partners
        blocks_kw2.append(kw2)
    zoo = np.full(sum(len(b) for b in blocks_kw1), NORMAL, dtype=np.int8)
    if spec.test_pattern:
        blocks_upload.append(np.sort(rng.integers(now - 3 * 365 * 86_400, now, ZOO_SIZE)))
        blocks_kw1.append(np.full(ZOO_SIZE, n_kw, dtype=np.int8))
        blocks_kw2.append(np.full(ZOO_SIZE, -1, dtype=np.int8))
        zoo_kinds = np.full(ZOO_SIZE, NORMAL, dtype=np.int8)
        zoo_kinds[: len(ZOO_KINDS)] = np.arange(len(ZOO_KINDS))
        zoo = np.concatenate([zoo, rng.permutation(zoo_kinds)])
    upload = np.concatenate(blocks_upload)
    order = np.lexsort((rng.random(len(upload)), upload))
    n = len(upload)
    upload = upload[order]
    kw1 = np.concatenate(blocks_kw1)[order]
    cols = _attributes(rng, n, upload, kw1, names, now)
    cols = replace(
        cols,
        ids=FIRST_ID + np.arange(n, dtype=np.int64) * _ID_STEP + rng.integers(0, _ID_STEP, n),
        kw2=np.concatenate(blocks_kw2)[order],
        zoo=zoo[order],
    )
    cols, duplicates = _plant_duplicates(rng, cols, n_kw)
    _configure_zoo(cols)
    _avoid_borderline_sizes(cols)
    return Universe(seed, spec, cols, duplicates, now)


def _upload_times(rng: np.random.Generator, n: int, start: int, end: int, ties: tuple[float, float]) -> np.ndarray:
    """Upload times for ``n`` photos: volume growing over the years, bursts, batches sharing one second
    (``ties``: cumulative shares of upload groups of 1 and of at most 4 photos, see ``spec.TIE_PROFILES``)."""
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    single, at_most_four = ties
    kind = rng.random(n)
    sizes = np.where(kind < single, 1, np.where(kind < at_most_four, rng.integers(2, 5, n), 0))
    big = sizes == 0
    sizes[big] = np.exp(rng.uniform(math.log(5), math.log(300), int(big.sum()))).astype(np.int64)
    if n > 50_000:  # a few uploads of more than one page of photos in a single second
        sizes[:3] = rng.integers(600, 1_200, 3)
    ends = np.cumsum(sizes)
    groups = int(np.searchsorted(ends, n)) + 1
    sizes = sizes[:groups].copy()
    sizes[-1] -= ends[groups - 1] - n
    span = end - 3_600 - start
    times = start + span * rng.random(groups) ** (1 / 2.2)  # density grows like t^1.2
    in_burst = rng.random(groups) < 0.25
    events = start + span * rng.random(max(2, groups // 400)) ** (1 / 2.2)
    times[in_burst] = rng.choice(events, int(in_burst.sum())) + rng.exponential(3 * 3_600, int(in_burst.sum()))
    times = np.minimum(times, end - 1).astype(np.int64)
    return np.repeat(times, sizes)


def _attributes(
    rng: np.random.Generator, n: int, upload: np.ndarray, kw1: np.ndarray, names: list[str], now: int
) -> Columns:
    """Every per-photo attribute except IDs, second keyword, duplicates and zoo kinds."""
    # Taken: usually days before upload, sometimes years; granularity 0 (most), 4 month, 6 year, 8 circa.
    delay = np.where(rng.random(n) < 0.8, rng.exponential(20 * 86_400, n), rng.exponential(3 * 365 * 86_400, n))
    taken = np.maximum(upload - delay.astype(np.int64), 631_152_000)  # not before 1990
    gran_pick = rng.random(n)
    granularity = np.select([gran_pick < 0.04, gran_pick < 0.08, gran_pick < 0.09], [4, 6, 8], 0).astype(np.int8)
    as_dt = taken.astype("datetime64[s]")
    month_start = as_dt.astype("datetime64[M]").astype("datetime64[s]").astype(np.int64)
    year_start = as_dt.astype("datetime64[Y]").astype("datetime64[s]").astype(np.int64)
    taken = np.where(granularity == 4, month_start, np.where(granularity >= 6, year_start, taken))
    taken_unknown = rng.random(n) < 0.03
    taken = np.where(taken_unknown, upload, taken)
    granularity[taken_unknown] = 0

    # Geo: ~60 % geotagged, around the keyword's place (or anywhere).
    geotagged = rng.random(n) < 0.6
    lat = rng.uniform(-60, 70, n).astype(np.float32)
    lon = rng.uniform(-180, 180, n).astype(np.float32)
    for k, name in enumerate(names):
        place = KEYWORD_PLACES.get(name)
        if place is None:
            continue
        rows = np.flatnonzero(kw1 == k)
        near = rows[rng.random(len(rows)) < 0.9]
        lat[near] = place[0] + rng.normal(0, place[2], len(near))
        lon[near] = place[1] + rng.normal(0, place[2], len(near))
    accuracy = rng.choice(np.array([16, 15, 14, 11, 6, 3], dtype=np.int8), n, p=[0.6, 0.15, 0.1, 0.08, 0.05, 0.02])
    accuracy[~geotagged] = 0
    lat[~geotagged] = 0
    lon[~geotagged] = 0
    lat = np.round(lat, 6)
    lon = np.round(lon, 6)

    # Sizes: originals from under 500 px to 6000 px (most 2000-4000), usual aspect ratios and some panoramas.
    longest = np.select(
        [(pick := rng.random(n)) < 0.03, pick < 0.13, pick < 0.28, pick < 0.88],
        [
            rng.integers(160, 500, n),
            rng.integers(500, 1025, n),
            rng.integers(1025, 2000, n),
            rng.integers(2000, 4001, n),
        ],
        rng.integers(4001, 6001, n),
    )
    aspect = rng.choice(np.array([4 / 3, 3 / 2, 1.0, 16 / 9, 2.5, 3.5]), n, p=[0.5, 0.28, 0.05, 0.1, 0.04, 0.03])
    shortest = np.maximum(1, np.round(longest / aspect)).astype(np.int64)
    portrait = (rng.random(n) < 0.25) & (aspect < 2)
    width = np.where(portrait, shortest, longest).astype(np.int32)
    height = np.where(portrait, longest, shortest).astype(np.int32)
    large = (longest > LARGE_EDGE) & (rng.random(n) >= 0.10)
    orientation = np.where(rng.random(n) < 0.05, rng.choice(np.array([6, 8], dtype=np.int8), n), 1).astype(np.int8)

    frame_pick = rng.random(n)
    frame = np.select(
        [frame_pick < 0.02, frame_pick < 0.035, frame_pick < 0.045, frame_pick < 0.06],
        [BLACK, WHITE, COLOUR, LAYERED],
        NO_FRAME,
    ).astype(np.int8)
    frame_fraction = np.where(frame == NO_FRAME, 0, rng.uniform(0.025, 0.08, n)).astype(np.float32)

    views = np.minimum(rng.lognormal(3.5, 1.8, n), 2e9).astype(np.int32)
    interest = (np.log1p(views) + rng.normal(0, 1, n)).astype(np.float32)
    owner = np.minimum(OWNER_COUNT * rng.random(n) ** 3, OWNER_COUNT - 1).astype(np.int32)
    license = rng.choice(np.arange(17, dtype=np.int8), n, p=_LICENSE_WEIGHTS / _LICENSE_WEIGHTS.sum())
    deleted = rng.random(n) < 0.01
    return Columns(
        ids=np.zeros(n, dtype=np.int64),
        upload=upload.astype(np.int64),
        taken=taken.astype(np.int64),
        granularity=granularity,
        taken_unknown=taken_unknown,
        kw1=kw1,
        kw2=np.full(n, -1, dtype=np.int8),
        lat=lat,
        lon=lon,
        accuracy=accuracy,
        license=license,
        owner=owner,
        width=width,
        height=height,
        large=large,
        orientation=orientation,
        frame=frame,
        frame_fraction=frame_fraction,
        content=np.arange(n, dtype=np.int32),
        variant=np.zeros(n, dtype=np.int8),
        views=views,
        interest=interest,
        zoo=np.full(n, NORMAL, dtype=np.int8),
        deleted=deleted,
    )


def _plant_duplicates(rng: np.random.Generator, cols: Columns, n_kw: int) -> tuple[Columns, list[Duplicate]]:
    """Make some later photos exact re-uploads (same bytes) or near duplicates (same scene) of earlier ones."""
    duplicates: list[Duplicate] = []
    for k in range(n_kw):
        rows = np.flatnonzero((cols.kw1 == k) & (cols.zoo == NORMAL) & ~cols.deleted)
        pairs = max(1, round(len(rows) * 0.004)) if len(rows) >= 20 else 0
        chosen = rng.choice(rows, 4 * pairs, replace=False).reshape(-1, 2)
        chosen.sort(axis=1)
        for i, (a, b) in enumerate(chosen):
            near = i % 2 == 1
            for name in ("width", "height", "large", "orientation", "frame", "frame_fraction", "content"):
                getattr(cols, name)[b] = getattr(cols, name)[a]
            if near:  # re-encoded, and sometimes at a lower resolution
                cols.variant[b] = 1
                if cols.width[a] > 2 * LARGE_EDGE and cols.height[a] > 2 * LARGE_EDGE:
                    cols.width[b], cols.height[b] = cols.width[a] * 3 // 4, cols.height[a] * 3 // 4
            duplicates.append(Duplicate("near" if near else "exact", (int(cols.ids[a]), int(cols.ids[b]))))
    return cols, duplicates


def _configure_zoo(cols: Columns) -> None:
    """Give the bad-input zoo photos predictable sizes: a Large for all but the tiny one."""
    for row in np.flatnonzero(cols.zoo != NORMAL):
        kind = ZOO_KINDS[cols.zoo[row]][0]
        cols.deleted[row] = False
        cols.orientation[row] = 1
        cols.frame[row], cols.frame_fraction[row] = (ONE_SIDE, 0.08) if kind == "one_side_frame" else (NO_FRAME, 0)
        cols.width[row], cols.height[row], cols.large[row] = (320, 240, False) if kind == "tiny" else (1600, 1200, True)


def _avoid_borderline_sizes(cols: Columns) -> None:
    """Nudge photos whose stored size would land within a few px of the 500 px rule (rounding would decide)."""
    w, h = cols.width.astype(np.float64), cols.height.astype(np.float64)
    scale = np.where(cols.large, np.minimum(1.0, LARGE_EDGE / np.maximum(w, h)), 1.0)
    sw, sh = w * scale, h * scale
    inset = 2 * cols.frame_fraction * np.minimum(sw, sh)
    cw, ch = sw - inset, sh - inset
    final_min = np.minimum(cw, ch) * np.minimum(1.0, LARGE_EDGE / np.maximum(cw, ch))
    for row in np.flatnonzero(np.abs(final_min - MIN_SIDE) < 40):
        for _ in range(6):
            if not _borderline(cols, row):
                break
            if cols.width[row] <= cols.height[row]:
                cols.width[row] += 40
            else:
                cols.height[row] += 40


def _borderline(cols: Columns, row: int) -> bool:
    w, h = int(cols.width[row]), int(cols.height[row])
    sw, sh = scaled_dims(w, h, LARGE_EDGE) if cols.large[row] else (w, h)
    box = content_box(int(cols.frame[row]), float(cols.frame_fraction[row]), int(cols.content[row]), sw, sh)
    if box is None:
        return abs(min(final_size(sw, sh, None)) - MIN_SIDE) <= 3
    return is_too_small(sw, sh, _grow(box, 12)) != is_too_small(sw, sh, _grow(box, -12))


def _grow(box: tuple[int, int, int, int], px: int) -> tuple[int, int, int, int]:
    return box[0] - px, box[1] - px, box[2] + px, box[3] + px


def _new_photos(universe: Universe, keyword: str, count: int, when: int, first_id: int) -> Columns:
    """Columns for ``count`` fresh photos of a universe keyword, all uploaded in the second ``when``."""
    k = universe.keyword_index.get(keyword)
    if k is None or keyword == TEST_PATTERN:
        raise ValueError(f"upload: {keyword!r} is not a keyword of the simulated universe ({universe.keyword_names})")
    if count < 1:
        raise ValueError(f"upload: count must be positive, got {count}")
    rng = np.random.default_rng([universe.seed, first_id])
    upload = np.full(count, when, dtype=np.int64)
    cols = _attributes(rng, count, upload, np.full(count, k, dtype=np.int8), universe.keyword_names, universe.now)
    ids = first_id + np.arange(count, dtype=np.int64)
    cols = replace(cols, ids=ids, content=(ids % 2**31).astype(np.int32), deleted=np.zeros(count, dtype=bool))
    _avoid_borderline_sizes(cols)
    return cols
