"""Exact and near-duplicate groups over millions of images, in flat numpy arrays (no per-image objects).

Exact duplicates share a SHA-256. Near duplicates have 64-bit perceptual hashes within Hamming distance
``r``; they are found with a multi-index (pigeonhole) search and joined with union-find, so a chain of
close images forms one group. Every group is named by its smallest member index; callers pass items
sorted by photo ID, so that is the smallest photo ID.

Pigeonhole: cut the 64 bits into ``m`` bands. Two hashes within distance ``r`` differ in at most ``r``
bands, so they agree exactly on at least ``m - r`` of them. For every choice of ``m - r`` bands, only
hashes that agree on those bands are compared. ``m = r + 1`` (any one band equal) is the textbook scheme,
but its ~9-bit keys put N/512 hashes in each run at r = 6, which is quadratic for millions of hashes;
:func:`plan_bands` picks ``m`` from the work it predicts (hashes keyed per combination against candidate
pairs, the latter counted on a sample of the very hashes, whose bits may be far from uniform), so keys get
about log2(N) bits while recall stays exact. (At 9M random hashes: 9 bands with 3 equal = 84 combinations
of ~21-bit keys, ~1.3e9 candidates; 10 with 4 = 210 of ~26 bits, ~1.7e8.) Combinations are grouped by their
first band: the hashes are partitioned once by it, and the compiled loop of
:mod:`~flickr_assets.catalog.near_kernel` searches every bucket for all of them while it is in cache.
"""

import logging
import math
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import combinations, pairwise

import numpy as np

log = logging.getLogger(__name__)

HASH_BITS = 64
MAX_DISTANCE = 32
# Relative costs in the compiled loop (8-13 ns each): one hash keyed and put in a table for one band
# combination, and one candidate pair (equal key) compared. With these, 9M hashes get 10 bands whether
# uniform (12% faster than 9) or pHash-like (20% faster than 11), as measured; uniform hashes move from 9
# bands to 10 between 8M and 8.5M distinct values (a plan counted on a sample, so the switch is not sharp).
_HASH_COST = 1.0
_PAIR_COST = 1.2
#: Hashes on which :func:`plan_bands` counts the candidate pairs of a plan (when there are more).
PLAN_SAMPLE = 50_000
_PLAN_COMBINATIONS = 12  # combinations counted per plan
#: Bits of a band that split a bucket for the combinations sharing it (a count table in L1).
_SPLIT_BITS = 10
#: Up to this many hashes :func:`search_plan` compares every pair (numpy, under 20 ms): the compiled loop
#: would be as fast, but its first use in an installation compiles it for ~6 s (cached on disk afterwards),
#: which small catalogs (the demo, a first trial) should not pay.
BRUTE_FORCE_HASHES = 1_500


def check_distance(distance: int, name: str = "near-duplicate distance") -> None:
    """Raise ``ValueError`` naming ``name`` unless ``distance`` is a Hamming distance the search takes."""
    if not 0 <= distance <= MAX_DISTANCE:
        raise ValueError(f"{name} must be between 0 and {MAX_DISTANCE} bits, not {distance}")


class SearchCancelled(Exception):
    """A near-duplicate search stopped early because its ``cancel`` event was set."""


@dataclass(frozen=True)
class BandPlan:
    """``bands`` cut of the 64 bits; candidates agree on ``must_match`` of them (0: compare all pairs)."""

    bands: int
    must_match: int
    combinations: int
    estimated_pairs: float

    def __str__(self) -> str:
        if self.must_match == 0:
            return f"every pair compared (~{self.estimated_pairs:,.0f})"
        return (
            f"{self.bands} bands, {self.must_match} equal: {self.combinations} band combinations, "
            f"~{self.estimated_pairs:,.0f} candidate pairs"
        )


def _band_ranges(bands: int) -> list[tuple[int, int]]:
    widths = [HASH_BITS // bands + (1 if i < HASH_BITS % bands else 0) for i in range(bands)]
    starts = np.cumsum([0, *widths[:-1]])
    return [(int(s), w) for s, w in zip(starts, widths, strict=True)]


def _band_masks(bands: int) -> np.ndarray:
    return np.array([((1 << width) - 1) << start for start, width in _band_ranges(bands)], dtype=np.uint64)


def _sampled_pairs(sample: np.ndarray, count: int, bands: int, must: int) -> float:
    """Candidate pairs of a plan over ``count`` hashes, counted on ``sample`` (distinct hashes) for a few
    combinations and scaled (pairs grow with the square of the hashes)."""
    masks = _band_masks(bands)
    keyed = _interleave(sample, bands)
    chosen = list(combinations(range(bands), must))
    picks = np.random.default_rng(0).choice(len(chosen), min(_PLAN_COMBINATIONS, len(chosen)), replace=False)
    pairs = 0.0
    for pick in picks.tolist():
        keys = np.sort(keyed & np.bitwise_or.reduce(masks[list(chosen[pick])]))
        runs = np.diff(np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1], [True]))))
        pairs += float((runs * (runs - 1) // 2).sum())
    scale = (count / len(sample)) ** 2
    return pairs / len(picks) * len(chosen) * scale


def plan_bands(count: int, max_distance: int, sample: np.ndarray | None = None) -> BandPlan:
    """The band count with the least predicted work for ``count`` hashes (exact recall in every plan).

    Candidate pairs are counted on ``sample`` (distinct uint64 hashes drawn from those searched) when given,
    else predicted for uniform random bits.
    """
    all_pairs = count * (count - 1) / 2
    best = BandPlan(1, 0, 1, all_pairs)
    best_cost = all_pairs * _PAIR_COST
    for bands in range(max_distance + 1, HASH_BITS + 1):
        must = bands - max_distance
        combos = math.comb(bands, must)
        if combos > 5000:
            break
        if combos * count * _HASH_COST >= best_cost:
            continue  # keying alone costs more than the best plan so far
        if sample is not None and len(sample) > 1:
            pairs = _sampled_pairs(sample, count, bands, must)
        else:
            pairs = combos * all_pairs * 2.0 ** -(must * HASH_BITS / bands)
        cost = combos * count * _HASH_COST + pairs * _PAIR_COST
        if cost < best_cost:
            best, best_cost = BandPlan(bands, must, combos, pairs), cost
    return best


def _interleave(hashes: np.ndarray, bands: int) -> np.ndarray:
    """The hashes with their bits dealt round-robin into the bands (bit i into band i mod ``bands``).

    Hamming distances are unchanged by any fixed bit permutation. Real perceptual hashes have biased
    low-frequency bits and correlated neighbours (bit i with i+1 and i+8 on the 8x8 DCT grid); contiguous
    bands would gather them, giving bands far fewer distinct values and buckets far more candidates.
    One table lookup per byte moves all its bits at once.
    """
    target = np.empty(HASH_BITS, dtype=np.int64)
    for band, (start, width) in enumerate(_band_ranges(bands)):
        members = range(band, HASH_BITS, bands)
        assert len(members) == width
        target[list(members)] = start + np.arange(width)
    values = np.arange(256, dtype=np.uint64)
    out = np.zeros(len(hashes), dtype=np.uint64)
    data = np.ascontiguousarray(hashes, dtype="<u8").view(np.uint8).reshape(-1, 8)
    for byte in range(8):
        table = np.zeros(256, dtype=np.uint64)
        for bit in range(8):
            table |= ((values >> np.uint64(bit)) & np.uint64(1)) << np.uint64(target[8 * byte + bit])
        out |= table[data[:, byte]]
    return out


def _all_close_pairs(hashes: np.ndarray, max_distance: int, chunk: int = 2048) -> np.ndarray:
    """Brute force for small inputs or large distances: every pair, in blocks."""
    found = []
    for start in range(0, len(hashes), chunk):
        block = hashes[start : start + chunk]
        distance = np.bitwise_count(block[:, None] ^ hashes[None, :])
        a, b = np.nonzero(distance <= max_distance)
        a = a + start
        keep = a < b
        found.append(np.stack([a[keep], b[keep]], axis=1))
    return np.concatenate(found) if found else np.empty((0, 2), np.int64)


@dataclass(frozen=True)
class _Pass:
    """The band combinations whose first band is ``first``, as :func:`scan_buckets` takes them."""

    first: int
    split_shifts: np.ndarray  # per group of combinations sharing a second band: where its split bits start
    split_bits: np.ndarray
    mask_bounds: np.ndarray  # group g's combinations are key_masks[mask_bounds[g]:mask_bounds[g + 1]]
    key_masks: np.ndarray  # the bits of every band of each combination


def _passes(plan: BandPlan) -> list[_Pass]:
    ranges, masks = _band_ranges(plan.bands), _band_masks(plan.bands)
    passes = []
    for first in range(plan.bands - plan.must_match + 1):
        rests = list(combinations(range(first + 1, plan.bands), plan.must_match - 1))
        seconds = sorted({rest[0] for rest in rests}) if plan.must_match > 1 else [None]
        shifts, bits, bounds, keys = [], [], [0], []
        for second in seconds:
            if second is None:  # one band must match: the bucket itself is the candidate set
                shifts.append(0)
                bits.append(0)
                group = rests
            else:
                start, width = ranges[second]
                split = min(width, _SPLIT_BITS)
                shifts.append(start + width - split)
                bits.append(split)
                group = [rest for rest in rests if rest[0] == second]
            keys += [np.bitwise_or.reduce(masks[[first, *rest]]) for rest in group]
            bounds.append(len(keys))
        passes.append(
            _Pass(
                first,
                np.array(shifts, np.uint64),
                np.array(bits, np.int64),
                np.array(bounds, np.int64),
                np.array(keys, np.uint64),
            )
        )
    return passes


def _spans(bounds: np.ndarray, pieces: int) -> list[tuple[int, int]]:
    """Runs of buckets with about equal work (it grows with the square of a bucket's size)."""
    work = np.cumsum(np.diff(bounds).astype(np.float64) ** 2)
    if not len(work) or work[-1] == 0:
        return [(0, len(bounds) - 1)]
    cuts = np.searchsorted(work, np.linspace(0, work[-1], pieces + 1)[1:-1], side="right")
    edges = np.unique(np.concatenate(([0], cuts, [len(bounds) - 1])))
    return [(int(a), int(b)) for a, b in pairwise(edges)]


def near_pairs(
    hashes: np.ndarray, max_distance: int, plan: BandPlan | None = None, cancel: threading.Event | None = None
) -> np.ndarray:
    """Every pair (i < j) of positions whose distinct hashes are within ``max_distance`` bits, sorted.

    ``plan``: the bands to search with (default: :func:`search_plan`'s). ``cancel``: once set, the banded
    search stops before its next run of buckets and raises :class:`SearchCancelled` (a build that failed
    elsewhere need not wait for a search of millions of hashes).
    """
    check_distance(max_distance)
    hashes = np.ascontiguousarray(hashes).view(np.uint64)
    if len(hashes) < 2:
        return np.empty((0, 2), np.int64)
    signed = hashes.view(np.int64)
    if not bool((signed[1:] > signed[:-1]).all()) and not bool((np.diff(np.sort(signed)) != 0).all()):
        raise ValueError("near_pairs needs distinct hashes (near_duplicate_groups merges equal ones first)")
    plan = plan or search_plan(hashes, max_distance)
    if plan.must_match == 0:
        return _all_close_pairs(hashes, max_distance)
    # Imported here: numba costs a fifth of a second to import, which every Dagster process loading the
    # definitions would pay otherwise.
    from flickr_assets.catalog.near_kernel import partition, scan_buckets

    ranges, band_masks = _band_ranges(plan.bands), _band_masks(plan.bands)
    keyed = _interleave(hashes, plan.bands)  # positions stay, so the pairs found need no mapping back
    workers = min(2, os.cpu_count() or 1)
    found = [np.empty((0, 2), np.int64)]

    def scan(span: tuple[int, int], buckets: tuple, groups: tuple) -> np.ndarray:
        if cancel is not None and cancel.is_set():
            raise SearchCancelled("near-duplicate search cancelled")
        return scan_buckets(*buckets, *span, *groups, plan.must_match, max_distance)

    with ThreadPoolExecutor(max_workers=workers) as pool:  # the compiled loop runs without the GIL
        for step in _passes(plan):
            start, width = ranges[step.first]
            bits = min(width, 16)  # buckets on at most 16 bits of the band (all of it is in every key)
            buckets = partition(keyed, start + width - bits, bits)
            groups = (step.split_shifts, step.split_bits, step.mask_bounds, step.key_masks, band_masks)
            found += pool.map(lambda span, b=buckets, g=groups: scan(span, b, g), _spans(buckets[2], 8 * workers))
            del buckets
    pairs = np.concatenate(found)
    pairs.sort(axis=1)  # each pair comes out once: for the first combination of bands it agrees on
    return pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))]


def search_plan(hashes: np.ndarray, max_distance: int) -> BandPlan:
    """The plan for searching ``hashes`` (distinct), its candidate pairs counted on a sample of them; every
    pair for up to :data:`BRUTE_FORCE_HASHES` hashes."""
    count = len(hashes)
    if count <= BRUTE_FORCE_HASHES:
        return BandPlan(1, 0, 1, count * (count - 1) / 2)
    hashes = np.ascontiguousarray(hashes).view(np.uint64)
    sample = hashes
    if len(hashes) > PLAN_SAMPLE:
        sample = hashes[np.random.default_rng(0).choice(len(hashes), PLAN_SAMPLE, replace=False)]
    return plan_bands(len(hashes), max_distance, sample)


def connected_roots(count: int, pairs: np.ndarray) -> np.ndarray:
    """Union-find over ``count`` items: each item's smallest connected index (itself when alone)."""
    if not len(pairs):
        return np.arange(count, dtype=np.int64)
    from flickr_assets.catalog.near_kernel import union_roots  # numba: imported on use (see near_pairs)

    return union_roots(count, np.ascontiguousarray(pairs, dtype=np.int64))


def group_labels(roots: np.ndarray) -> np.ndarray:
    """Each item's group root, or -1 for an item alone in its group."""
    sizes = np.bincount(roots, minlength=len(roots))
    return np.where(sizes[roots] > 1, roots, -1)


@dataclass(frozen=True)
class NearSearch:
    """Close pairs among a set of distinct hashes, searched ahead of time (e.g. all ``ok`` hashes on disk)."""

    values: np.ndarray  # int64, sorted, distinct
    pairs: np.ndarray  # (k, 2) positions into values
    plan: BandPlan


def distinct(values: np.ndarray) -> np.ndarray:
    """The distinct values of an integer array, sorted: ``np.unique`` without the hash table numpy 2.4 builds
    for a plain call, which takes ~20x as long as a sort on millions of distinct values."""
    ordered = np.sort(values)
    keep = np.ones(len(ordered), dtype=bool)
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


def search_near(hashes: np.ndarray, max_distance: int, cancel: threading.Event | None = None) -> NearSearch:
    """The close pairs among the distinct values of ``hashes`` (``cancel``: see :func:`near_pairs`)."""
    values = distinct(np.ascontiguousarray(hashes, dtype=np.int64))
    plan = search_plan(values, max_distance)
    log.info("near-duplicate search over %d distinct hashes within %d bits: %s", len(values), max_distance, plan)
    return NearSearch(values, near_pairs(values, max_distance, plan=plan, cancel=cancel), plan)


def _restricted_pairs(search: NearSearch, values: np.ndarray) -> np.ndarray | None:
    """The pairs of ``search`` between members of ``values`` (sorted, distinct; as positions in it); None if
    not a subset."""
    at = np.minimum(np.searchsorted(search.values, values), max(len(search.values) - 1, 0))
    if len(values) and (not len(search.values) or not np.array_equal(search.values[at], values)):
        return None
    position = np.full(len(search.values), -1, dtype=np.int64)
    position[at] = np.arange(len(values))
    pairs = position[search.pairs]
    return pairs[(pairs >= 0).all(axis=1)]


def near_duplicate_groups(
    hashes: np.ndarray, max_distance: int, searched: NearSearch | Future[NearSearch] | None = None
) -> tuple[np.ndarray, BandPlan]:
    """Group root per hash (-1 when alone) for hashes within ``max_distance``, chained transitively.

    ``searched``: pairs already found among a superset of the hashes at the same distance (pairs of a
    superset restricted to the set are exactly the set's pairs); searched again when it is not a superset.
    A search still running is waited for only once the hashes are prepared.
    """
    hashes = np.ascontiguousarray(hashes, dtype=np.int64)
    # Equal hashes are the same node: search only distinct values, so a thousand copies of one image
    # cost one comparison instead of half a million.
    values, inverse = np.unique(hashes, return_inverse=True)
    if isinstance(searched, Future):
        searched = searched.result()
    pairs = _restricted_pairs(searched, values) if searched is not None else None
    if pairs is not None:
        plan = searched.plan
    else:
        plan = search_plan(values, max_distance)
        pairs = near_pairs(values, max_distance, plan=plan)
    component = connected_roots(len(values), pairs)[inverse]
    first_member = np.full(len(values), len(hashes), dtype=np.int64)
    np.minimum.at(first_member, component, np.arange(len(hashes), dtype=np.int64))
    return group_labels(first_member[component]), plan


def exact_duplicate_groups(digests: np.ndarray) -> np.ndarray:
    """Group root per (n, k >= 8) byte digest row (-1 when unique)."""
    n = len(digests)
    labels = np.full(n, -1, dtype=np.int64)
    if n < 2:
        return labels
    # Sort by the first 8 bytes only; rows sharing them (almost always true duplicates) are then
    # compared in full.
    prefix = np.ascontiguousarray(digests[:, :8]).view(np.uint64).ravel()
    order = np.argsort(prefix, kind="stable")
    ordered = prefix[order]
    same = ordered[1:] == ordered[:-1]
    shared = np.zeros(n, dtype=bool)
    shared[1:] |= same
    shared[:-1] |= same
    candidates = np.sort(order[shared])
    if not len(candidates):
        return labels
    rows = np.ascontiguousarray(digests[candidates]).view(np.dtype((np.void, digests.shape[1]))).ravel()
    _, inverse = np.unique(rows, return_inverse=True)
    first_member = np.full(inverse.max() + 1, n, dtype=np.int64)
    np.minimum.at(first_member, inverse, candidates)
    roots = first_member[inverse]
    sizes = np.bincount(inverse)
    labels[candidates] = np.where(sizes[inverse] > 1, roots, -1)
    return labels
