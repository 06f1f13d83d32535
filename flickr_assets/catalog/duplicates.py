"""Exact and near-duplicate groups over millions of images, vectorised with numpy.

Exact duplicates share a SHA-256. Near duplicates have 64-bit perceptual hashes within Hamming distance
``r``; they are found with a multi-index (pigeonhole) search and joined with union-find, so a chain of
close images forms one group. Every group is named by its smallest member index; callers pass items
sorted by photo ID, so that is the smallest photo ID.

Pigeonhole: cut the 64 bits into ``m`` bands. Two hashes within distance ``r`` differ in at most ``r``
bands, so they agree exactly on at least ``m - r`` of them. For every choice of ``m - r`` bands the
hashes are sorted by those bands' bits; only hashes in the same run are compared. ``m = r + 1`` (any one
band equal) is the textbook scheme, but its ~9-bit keys put N/512 hashes in each run at r = 6, which is
quadratic for millions of hashes; :func:`plan_bands` picks ``m`` from an estimate of sort work against
candidate pairs, so keys get about log2(N) bits while recall stays exact. (At 9M random hashes: 8 bands
with 2 equal = 28 passes but 16-bit keys, ~1.7e10 candidates; 9 with 3 = 84 passes, ~1.3e9; 10 with 4 =
210 passes, ~1.7e8.) Combinations are grouped by their first band: the hashes are partitioned once by it
and every bucket is ordered on its own by the other chosen bands, a small key sorted in cache.
"""

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import combinations

import numpy as np

HASH_BITS = 64
MAX_DISTANCE = 32
# Relative costs per hash sorted and per candidate pair compared (measured orders of magnitude).
_SORT_COST = 3.0  # one bucketed key sort + sweep per hash and combination (~65 ns at 9M hashes)
_PAIR_COST = 1.0  # one contiguous comparison (~20 ns)


@dataclass(frozen=True)
class BandPlan:
    """``bands`` cut of the 64 bits; candidates agree on ``must_match`` of them (0: compare all pairs)."""

    bands: int
    must_match: int
    combinations: int
    estimated_pairs: float


def _band_ranges(bands: int) -> list[tuple[int, int]]:
    widths = [HASH_BITS // bands + (1 if i < HASH_BITS % bands else 0) for i in range(bands)]
    starts = np.cumsum([0, *widths[:-1]])
    return [(int(s), w) for s, w in zip(starts, widths, strict=True)]


def plan_bands(count: int, max_distance: int) -> BandPlan:
    """The band count with the least estimated work for ``count`` uniform hashes (exact recall)."""
    all_pairs = count * (count - 1) / 2
    best = BandPlan(1, 0, 1, all_pairs)
    best_cost = all_pairs * _PAIR_COST
    for bands in range(max_distance + 1, HASH_BITS + 1):
        must = bands - max_distance
        combos = math.comb(bands, must)
        if combos > 5000:
            break
        key_bits = must * HASH_BITS / bands
        pairs = combos * all_pairs * 2.0**-key_bits
        cost = combos * count * _SORT_COST + pairs * _PAIR_COST
        if cost < best_cost:
            best, best_cost = BandPlan(bands, must, combos, pairs), cost
    return best


def _interleave(hashes: np.ndarray, bands: int, inverse: bool = False) -> np.ndarray:
    """The hashes with their bits dealt round-robin into the bands (bit i into band i mod ``bands``).

    Hamming distances are unchanged by any fixed bit permutation. Real perceptual hashes have biased
    low-frequency bits and correlated neighbours (bit i with i+1 and i+8 on the 8x8 DCT grid); contiguous
    bands would gather them, giving bands far fewer distinct values and buckets far more candidates.
    One table lookup per byte moves all its bits at once. ``inverse`` undoes it.
    """
    target = np.empty(HASH_BITS, dtype=np.int64)
    for band, (start, width) in enumerate(_band_ranges(bands)):
        members = range(band, HASH_BITS, bands)
        assert len(members) == width
        target[list(members)] = start + np.arange(width)
    if inverse:
        target = np.argsort(target)
    values = np.arange(256, dtype=np.uint64)
    out = np.zeros(len(hashes), dtype=np.uint64)
    data = np.ascontiguousarray(hashes, dtype="<u8").view(np.uint8).reshape(-1, 8)
    for byte in range(8):
        table = np.zeros(256, dtype=np.uint64)
        for bit in range(8):
            table |= ((values >> np.uint64(bit)) & np.uint64(1)) << np.uint64(target[8 * byte + bit])
        out |= table[data[:, byte]]
    return out


@dataclass(frozen=True)
class _Partition:
    """The hashes ordered by one band's value, with a flag on the first hash of every bucket."""

    hashes: np.ndarray
    bounds: np.ndarray
    bucket_start: np.ndarray
    # The value of every later band (by its (start, width)) in this order, extracted once for all combinations.
    bands: dict[tuple[int, int], np.ndarray]


def _band_values(hashes: np.ndarray, start: int, width: int) -> np.ndarray:
    dtype = np.uint8 if width <= 8 else np.uint16 if width <= 16 else np.uint32 if width <= 32 else np.uint64
    return ((hashes >> np.uint64(start)) & np.uint64((1 << width) - 1)).astype(dtype)


def _partition(hashes: np.ndarray, band: tuple[int, int], later: list[tuple[int, int]]) -> _Partition:
    value = _band_values(hashes, *band).astype(np.uint16)
    order = np.argsort(value, kind="stable")  # radix sort on a 16-bit key: linear
    bounds = np.concatenate([[0], np.cumsum(np.bincount(value, minlength=1 << band[1]))])
    bucket_start = np.zeros(len(hashes) + 1, dtype=bool)
    bucket_start[bounds[1:-1]] = True
    ordered = hashes[order]
    return _Partition(ordered, bounds, bucket_start[:-1], {b: _band_values(ordered, *b) for b in later})


def _close_pairs(part: _Partition, max_distance: int, rest: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """Hash pairs in one bucket of ``part`` that also agree on the ``rest`` bands and are within the distance.

    Each bucket (~N/2**8 hashes) is ordered on its own by the rest bands' bits: a small key, sorted in
    cache (radix sort when it fits 16 bits), so a pass costs a few linear sweeps instead of a full sort.
    """
    hashes = part.hashes
    n = len(hashes)
    if rest:
        key_bits = sum(width for _, width in rest)
        key = np.zeros(n, dtype=np.uint16 if key_bits <= 16 else np.uint32 if key_bits <= 32 else np.uint64)
        for band in rest:
            key <<= key.dtype.type(band[1])
            key |= part.bands[band]
        order = np.empty(n, dtype=np.int64)
        kind = "stable" if key_bits <= 16 else None
        for lo, hi in zip(part.bounds[:-1].tolist(), part.bounds[1:].tolist(), strict=True):
            if hi - lo > 1:
                order[lo:hi] = np.argsort(key[lo:hi], kind=kind) + lo
            elif hi > lo:
                order[lo] = lo
        key = key[order]
        hashes = hashes[order]
        same_next = key[1:] == key[:-1]
        same_next &= ~part.bucket_start[1:]
    else:
        same_next = ~part.bucket_start[1:]
    return _verify(hashes, same_next, max_distance)


def _verify(hashes: np.ndarray, same_next: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray]:
    """The pairs (i, j > i) of ``hashes`` within ``max_distance`` whose keys are equal from i to j.

    ``same_next[i]``: hashes i and i + 1 share the key. The first steps (i, i + 1), (i, i + 2), ... cover
    most candidates and run dense: contiguous XOR, popcount and masks over whole arrays, no gathers. Once
    few positions still span a run, the rest gathers just those.
    """
    left, right = [], []
    together, step = same_next, 1  # together[i]: i and i + step share the key
    scratch = np.empty(len(same_next), np.uint64)
    counts = np.empty(len(same_next), np.uint8)
    while together.size and 8 * np.count_nonzero(together) >= together.size:
        m = len(together)
        a, b = hashes[:m], hashes[step : step + m]
        np.bitwise_count(np.bitwise_xor(a, b, out=scratch[:m]), out=counts[:m])
        close = np.flatnonzero((counts[:m] <= max_distance) & together)
        if close.size:
            left.append(a[close])
            right.append(b[close])
        together = together[:-1] & same_next[step:]
        step += 1
    current = np.flatnonzero(together)
    while current.size:
        a, b = hashes[current], hashes[current + step]
        close = np.bitwise_count(a ^ b) <= max_distance
        if close.any():
            left.append(a[close])
            right.append(b[close])
        current = current[current + step < len(same_next)]
        current = current[same_next[current + step]]
        step += 1
    if not left:
        empty = np.empty(0, np.uint64)
        return empty, empty
    return np.concatenate(left), np.concatenate(right)


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


def near_pairs(hashes: np.ndarray, max_distance: int, workers: int | None = None) -> np.ndarray:
    """Every pair (i < j) of positions whose distinct hashes are within ``max_distance`` bits."""
    if not 0 <= max_distance <= MAX_DISTANCE:
        raise ValueError(f"near-duplicate distance must be between 0 and {MAX_DISTANCE}, not {max_distance}")
    hashes = np.ascontiguousarray(hashes).view(np.uint64)
    plan = plan_bands(len(hashes), max_distance)
    if len(hashes) < 2:
        return np.empty((0, 2), np.int64)
    signed = hashes.view(np.int64)
    if bool((signed[1:] > signed[:-1]).all()):  # already sorted (np.unique's output): no sort
        order, ordered = np.arange(len(signed)), signed
    else:
        order = np.argsort(signed)
        ordered = signed[order]
    if (ordered[1:] == ordered[:-1]).any():
        raise ValueError("near_pairs needs distinct hashes (near_duplicate_groups merges equal ones first)")
    if plan.must_match == 0:
        return _all_close_pairs(hashes, max_distance)
    ranges = _band_ranges(plan.bands)
    hashes = _interleave(hashes, plan.bands)  # positions stay, so the pairs found need no mapping back
    workers = workers or min(2, os.cpu_count() or 1)
    found = []
    with ThreadPoolExecutor(max_workers=workers) as pool:  # numpy sorts and ufuncs release the GIL
        # Combinations are grouped by their first band: one partition by it serves all of them.
        for first in range(plan.bands - plan.must_match + 1):
            start, width = ranges[first]
            # Buckets on at most 16 bits of the band (a bounded count table); its other bits join the key.
            extra = [(start, width - 16)] if width > 16 else []
            part = _partition(hashes, (start + max(0, width - 16), min(width, 16)), extra + ranges[first + 1 :])
            rests = [
                extra + [ranges[i] for i in combo]
                for combo in combinations(range(first + 1, plan.bands), plan.must_match - 1)
            ]
            found += pool.map(lambda rest, part=part: _close_pairs(part, max_distance, rest), rests)
            del part
    left = _interleave(np.concatenate([a for a, _ in found]), plan.bands, inverse=True).view(np.int64)
    right = _interleave(np.concatenate([b for _, b in found]), plan.bands, inverse=True).view(np.int64)
    # Back from values to positions: only the (few) close pairs are looked up.
    pairs = np.stack([order[np.searchsorted(ordered, left)], order[np.searchsorted(ordered, right)]], axis=1)
    pairs = pairs.astype(np.int64)
    pairs.sort(axis=1)
    return np.unique(pairs, axis=0) if len(pairs) else pairs


def connected_roots(count: int, pairs: np.ndarray) -> np.ndarray:
    """Union-find over ``count`` items: each item's smallest connected index (itself when alone)."""
    roots = np.arange(count, dtype=np.int64)
    if not len(pairs):
        return roots
    nodes, local = np.unique(pairs, return_inverse=True)
    local = local.reshape(pairs.shape)
    parent = np.arange(len(nodes), dtype=np.int64)
    a, b = local[:, 0], local[:, 1]
    while True:
        ra, rb = parent[a], parent[b]
        differ = ra != rb
        if not differ.any():
            break
        # Hook the larger root under the smaller one, then compress paths by pointer jumping.
        np.minimum.at(parent, np.maximum(ra, rb)[differ], np.minimum(ra, rb)[differ])
        while True:
            jumped = parent[parent]
            if np.array_equal(jumped, parent):
                break
            parent = jumped
    roots[nodes] = nodes[parent]
    return roots


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


def search_near(hashes: np.ndarray, max_distance: int) -> NearSearch:
    """The close pairs among the distinct values of ``hashes``."""
    values = np.unique(np.ascontiguousarray(hashes, dtype=np.int64))
    return NearSearch(values, near_pairs(values, max_distance), plan_bands(len(values), max_distance))


def _restricted_pairs(search: NearSearch, distinct: np.ndarray) -> np.ndarray | None:
    """The pairs of ``search`` between members of ``distinct`` (as positions in it); None if not a subset."""
    at = np.minimum(np.searchsorted(search.values, distinct), max(len(search.values) - 1, 0))
    if len(distinct) and (not len(search.values) or not np.array_equal(search.values[at], distinct)):
        return None
    position = np.full(len(search.values), -1, dtype=np.int64)
    position[at] = np.arange(len(distinct))
    pairs = position[search.pairs]
    return pairs[(pairs >= 0).all(axis=1)]


def near_duplicate_groups(
    hashes: np.ndarray, max_distance: int, searched: NearSearch | None = None
) -> tuple[np.ndarray, BandPlan]:
    """Group root per hash (-1 when alone) for hashes within ``max_distance``, chained transitively.

    ``searched``: pairs already found among a superset of the hashes at the same distance (pairs of a
    superset restricted to the set are exactly the set's pairs); searched again when it is not a superset.
    """
    hashes = np.ascontiguousarray(hashes, dtype=np.int64)
    # Equal hashes are the same node: search only distinct values, so a thousand copies of one image
    # cost one comparison instead of half a million.
    distinct, inverse = np.unique(hashes, return_inverse=True)
    pairs = _restricted_pairs(searched, distinct) if searched is not None else None
    plan = searched.plan if pairs is not None else plan_bands(len(distinct), max_distance)
    if pairs is None:
        pairs = near_pairs(distinct, max_distance)
    distinct_roots = connected_roots(len(distinct), pairs)
    component = distinct_roots[inverse]
    first_member = np.full(len(distinct), len(hashes), dtype=np.int64)
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
