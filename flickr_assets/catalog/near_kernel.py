"""The compiled inner loop of the near-duplicate search: candidate pairs within one partition bucket.

numpy can only express a pass as whole-array steps (sort the keys, compare neighbours, gather, verify), each
a sweep over millions of hashes through memory. This loop does a pass over one bucket (a few ten thousand
hashes, in cache) in one go: every hash is put in a small hash table keyed by the bits of the bands it
must share, and compared with the earlier hashes of its slot as it goes in. numba compiles it once (the
machine code is cached on disk) and runs it without the GIL, so two threads search the buckets side by side.
"""

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

_FIBONACCI = np.uint64(0x9E3779B97F4A7C15)  # multiplicative hashing: the top bits of key * this spread well


@intrinsic
def _popcount(typingctx, value):
    """The number of set bits of a uint64 (LLVM's ctpop: one instruction)."""
    signature = types.uint64(types.uint64)

    def codegen(context, builder, sig, args):
        return builder.ctpop(args[0])

    return signature, codegen


@njit(nogil=True, cache=True)
def _first_bands(difference: np.uint64, band_masks: np.ndarray, must_match: int) -> np.uint64:
    """The bits of the first ``must_match`` bands on which two hashes differing by ``difference`` agree."""
    chosen = np.uint64(0)
    count = 0
    for mask in band_masks:
        if difference & mask == 0:
            chosen |= mask
            count += 1
            if count == must_match:
                break
    return chosen


@njit(nogil=True, cache=True)
def scan_buckets(
    hashes: np.ndarray,
    positions: np.ndarray,
    bounds: np.ndarray,
    first: int,
    last: int,
    split_shifts: np.ndarray,
    split_bits: np.ndarray,
    mask_bounds: np.ndarray,
    key_masks: np.ndarray,
    band_masks: np.ndarray,
    must_match: int,
    max_distance: int,
) -> np.ndarray:
    """Find the close pairs in buckets ``first``..``last - 1`` of ``hashes`` (bucket b is
    ``hashes[bounds[b]:bounds[b + 1]]``, whose hashes share one band).

    The band combinations come in groups that share a second band: for group q, each bucket is split by
    ``split_bits[q]`` bits of that band (from bit ``split_shifts[q]``), and within each part the hashes are
    compared that agree on the bits of a combination (``key_masks[mask_bounds[q]:mask_bounds[q + 1]]``,
    all its bands). A pair within ``max_distance`` is written (as ``positions``) only for the first
    combination of the bands it agrees on, so every pair comes out once although it agrees on several.
    Returns the pairs, (k, 2) int64.
    """
    longest = 0
    for bucket in range(first, last):
        longest = max(longest, bounds[bucket + 1] - bounds[bucket])
    size = 1
    while size < 2 * longest:
        size <<= 1
    head = np.empty(size, np.int32)
    chain = np.empty(longest, np.int32)
    keys = np.empty(longest, np.uint64)
    part = np.empty(longest, np.uint64)
    part_positions = np.empty(longest, np.int64)
    widest = 1
    for bits in split_bits:
        widest = max(widest, 1 << bits)
    ends = np.empty(widest + 1, np.int64)  # the part of split value v: ends[v]:ends[v + 1]
    limit = np.uint64(max_distance)
    out = np.empty((1024, 2), np.int64)
    found = 0
    for bucket in range(first, last):
        start = bounds[bucket]
        n = bounds[bucket + 1] - start
        if n < 2:
            continue
        for group in range(len(split_bits)):
            # The bucket split by the group's second band: parts small enough to stay in L1.
            values = 1 << split_bits[group]
            _counting_sort(
                hashes[start : start + n],
                positions[start : start + n],
                split_shifts[group],
                split_bits[group],
                part,
                part_positions,
                ends,
            )
            for v in range(values):
                begin = ends[v]
                count = ends[v + 1] - begin
                if count >= 2:
                    slots, bits = 1, 0
                    while slots < 2 * count:
                        slots <<= 1
                        bits += 1
                    slot_shift = np.uint64(64 - bits)
                    for mask in key_masks[mask_bounds[group] : mask_bounds[group + 1]]:
                        head[:slots] = -1
                        for i in range(count):
                            value = part[begin + i]
                            key = value & mask
                            slot = (key * _FIBONACCI) >> slot_shift
                            j = head[slot]
                            while j >= 0:
                                if keys[j] == key:
                                    difference = value ^ part[begin + j]
                                    if _popcount(difference) <= limit and (
                                        _first_bands(difference, band_masks, must_match) == mask
                                    ):
                                        if found == len(out):
                                            grown = np.empty((2 * found, 2), np.int64)
                                            grown[:found] = out
                                            out = grown
                                        out[found, 0] = part_positions[begin + j]
                                        out[found, 1] = part_positions[begin + i]
                                        found += 1
                                j = chain[j]
                            keys[i] = key
                            chain[i] = head[slot]
                            head[slot] = i
    return out[:found]


@njit(nogil=True, cache=True)
def _counting_sort(
    values: np.ndarray,
    value_positions: np.ndarray,
    shift: int,
    bits: int,
    ordered: np.ndarray,
    ordered_positions: np.ndarray,
    bounds: np.ndarray,
) -> None:
    """Stable counting sort of ``values`` (with their positions) by ``bits`` bits from bit ``shift`` into
    ``ordered`` and ``ordered_positions``; value v's run ends up at ``bounds[v]:bounds[v + 1]``."""
    count = 1 << bits
    low, at = np.uint64(count - 1), np.uint64(shift)
    bounds[: count + 1] = 0
    for value in values:
        bounds[((value >> at) & low) + 1] += 1
    for v in range(count):
        bounds[v + 1] += bounds[v]
    for i in range(len(values)):
        value = values[i]
        v = (value >> at) & low
        ordered[bounds[v]] = value
        ordered_positions[bounds[v]] = value_positions[i]
        bounds[v] += 1
    # Each bounds[v] now holds the end of run v, i.e. the start of run v + 1: shift back by one.
    for v in range(count, 0, -1):
        bounds[v] = bounds[v - 1]
    bounds[0] = 0


@njit(nogil=True, cache=True)
def partition(hashes: np.ndarray, shift: int, bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``hashes`` ordered by ``bits`` bits from bit ``shift`` (a counting sort, stable): the ordered hashes,
    their positions in ``hashes``, and the bounds of each value's bucket (``2**bits + 1``)."""
    ordered = np.empty_like(hashes)
    positions = np.empty(len(hashes), np.int64)
    bounds = np.empty((1 << bits) + 1, np.int64)
    _counting_sort(hashes, np.arange(len(hashes)), shift, bits, ordered, positions, bounds)
    return ordered, positions, bounds


@njit(nogil=True, cache=True)
def _root(parent: np.ndarray, item: int) -> int:
    """The root of ``item``'s tree, halving the path on the way (every parent is smaller than its child)."""
    while parent[item] != item:
        parent[item] = parent[parent[item]]
        item = parent[item]
    return item


@njit(nogil=True, cache=True)
def union_roots(count: int, pairs: np.ndarray) -> np.ndarray:
    """Union-find over ``count`` items joined by ``pairs`` ((k, 2) int64): each item's smallest connected
    index. A root is only ever hooked under a smaller one, so every parent stays smaller than its child and
    one pass in index order resolves every item after its parent."""
    parent = np.arange(count)
    for k in range(len(pairs)):
        a = _root(parent, pairs[k, 0])
        b = _root(parent, pairs[k, 1])
        if a < b:
            parent[b] = a
        elif b < a:
            parent[a] = b
    for item in range(count):
        parent[item] = parent[parent[item]]
    return parent
