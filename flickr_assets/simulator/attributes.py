"""Generating per-photo attributes: upload times, taken dates, places, sizes, frames, popularity, licences.

Every function draws from the caller's generator in a fixed order, so a universe is the same for a given seed.
"""

import math

import numpy as np

from .columns import OWNER_COUNT, Columns
from .geometry import BLACK, COLOUR, LAYERED, NO_FRAME, WHITE, content_box, final_size, is_too_small, scaled_dims
from .spec import KEYWORD_PLACES, LARGE_EDGE, MIN_SIDE
from .zoo import NORMAL

_LICENSE_WEIGHTS = np.array([84, 2.5, 2, 2, 2.5, 1.5, 1, 1, 0.5, 0.5, 0.5, 0.4, 0.4, 0.3, 0.3, 0.3, 0.3])


def upload_times(rng: np.random.Generator, n: int, start: int, end: int, ties: tuple[float, float]) -> np.ndarray:
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


def photo_attributes(
    rng: np.random.Generator, n: int, upload: np.ndarray, kw1: np.ndarray, names: list[str]
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


def avoid_borderline_sizes(cols: Columns) -> None:
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
