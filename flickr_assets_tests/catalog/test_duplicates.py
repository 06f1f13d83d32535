"""The vectorised duplicate search against brute force, and the digest codec."""

import hashlib
import math
import threading

import numpy as np
import pyarrow as pa
import pytest

from flickr_assets.catalog.duplicates import (
    BRUTE_FORCE_HASHES,
    BandPlan,
    SearchCancelled,
    _interleave,
    connected_roots,
    distinct,
    exact_duplicate_groups,
    near_duplicate_groups,
    near_pairs,
    plan_bands,
    search_near,
    search_plan,
)
from flickr_assets.catalog.images import bytes_to_sha, sha_to_bytes


def clustered_hashes(seed: int, clusters: int, per_cluster: int, max_flips: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hashes = np.repeat(rng.integers(-(2**63), 2**63 - 1, clusters, dtype=np.int64), per_cluster)
    for _ in range(max_flips):
        flip = rng.random(len(hashes)) < 0.6
        hashes[flip] ^= np.left_shift(np.int64(1), rng.integers(0, 64, flip.sum()).astype(np.int64))
    return hashes


def brute_force_pairs(hashes: np.ndarray, distance: int) -> set[tuple[int, int]]:
    bits = np.bitwise_count(hashes.view(np.uint64)[:, None] ^ hashes.view(np.uint64)[None, :])
    a, b = np.nonzero(np.triu(bits <= distance, k=1))
    return set(zip(a.tolist(), b.tolist(), strict=True))


@pytest.mark.parametrize("distance", [1, 3, 6, 10, 24])
def test_multi_index_finds_exactly_the_brute_force_pairs(distance):
    hashes = np.unique(clustered_hashes(distance, clusters=150, per_cluster=8, max_flips=distance))
    plan = plan_bands(len(hashes), distance)  # banded up to distance 10 (search_plan: every pair at this size)
    found = {tuple(p) for p in near_pairs(hashes, distance, plan=plan).tolist()}
    assert len(found) > 100
    assert found == brute_force_pairs(hashes, distance)
    assert {tuple(p) for p in near_pairs(hashes, distance).tolist()} == found


def test_a_cancelled_search_stops_and_an_unset_event_changes_nothing():
    hashes = np.unique(clustered_hashes(6, clusters=150, per_cluster=8, max_flips=6))
    plan = plan_bands(len(hashes), 6)
    cancel = threading.Event()
    assert np.array_equal(near_pairs(hashes, 6, plan=plan, cancel=cancel), near_pairs(hashes, 6, plan=plan))
    cancel.set()
    with pytest.raises(SearchCancelled):
        near_pairs(hashes, 6, plan=plan, cancel=cancel)


def test_small_searches_compare_every_pair_and_larger_ones_use_bands():
    rng = np.random.default_rng(5)
    small = distinct(rng.integers(-(2**63), 2**63 - 1, BRUTE_FORCE_HASHES, dtype=np.int64))
    larger = distinct(rng.integers(-(2**63), 2**63 - 1, BRUTE_FORCE_HASHES + 1, dtype=np.int64))
    assert search_plan(small, 6).must_match == 0
    assert search_plan(larger, 6).must_match >= 1


def test_plan_uses_more_bands_as_hashes_grow():
    small, large = plan_bands(1_000, 6), plan_bands(10_000_000, 6)
    assert (small.bands, small.must_match) == (7, 1)  # the textbook pigeonhole: any one band of 7 equal
    assert large.must_match >= 3 and large.estimated_pairs < 200 * 10_000_000


def test_near_pairs_at_scale_match_brute_force_around_planted_pairs():
    # 200k random hashes (the banded plan, not brute force) plus planted neighbours at distances 0..8.
    rng = np.random.default_rng(11)
    base = np.unique(rng.integers(-(2**63), 2**63 - 1, 200_000, dtype=np.int64))
    planted = base[:9].copy()
    for distance, value in enumerate(planted):
        bits = rng.choice(64, distance, replace=False)
        planted[distance] = value ^ np.bitwise_or.reduce(np.left_shift(np.int64(1), bits.astype(np.int64)), initial=0)
    hashes = np.concatenate([base, planted[1:]])  # distance 0 would be an equal hash, not allowed
    assert plan_bands(len(hashes), 6).must_match >= 1
    found = {tuple(p) for p in near_pairs(hashes, 6).tolist()}
    expected = {(i, len(base) + i - 1) for i in range(1, 7)}
    assert expected <= found
    assert all(np.bitwise_count(hashes[a] ^ hashes[b]) <= 6 for a, b in found)
    with pytest.raises(ValueError, match="distinct"):
        near_pairs(np.array([5, 9, 5], dtype=np.int64), 6)


def test_union_find_joins_chains_under_the_smallest_index():
    pairs = np.array([[5, 9], [1, 5], [3, 4], [8, 9]])
    assert connected_roots(10, pairs).tolist() == [0, 1, 2, 3, 3, 1, 6, 7, 1, 1]


def test_union_find_matches_a_plain_flood_fill_on_random_graphs():
    rng = np.random.default_rng(11)
    for _ in range(100):
        count = int(rng.integers(1, 80))
        pairs = rng.integers(0, count, (int(rng.integers(0, 120)), 2))  # self-loops and repeats included
        neighbours: dict[int, set[int]] = {i: set() for i in range(count)}
        for a, b in pairs.tolist():
            neighbours[a].add(b)
            neighbours[b].add(a)
        expected = list(range(count))
        for start in range(count):
            if expected[start] != start:
                continue  # already reached from a smaller index
            stack = [start]
            while stack:
                for other in neighbours[stack.pop()]:
                    if other > start and expected[other] == other:
                        expected[other] = start
                        stack.append(other)
        assert connected_roots(count, pairs).tolist() == expected


def test_near_groups_chain_and_identical_hashes():
    base = 0x1234_5678_9ABC_DEF0
    hashes = np.array([base ^ 0b1, 77, base, base ^ 0b1, base ^ 0b111_1110, -5], dtype=np.int64)
    labels, _ = near_duplicate_groups(hashes, 6)
    assert labels.tolist() == [0, -1, 0, 0, 0, -1]
    labels, _ = near_duplicate_groups(hashes, 0)
    assert labels.tolist() == [0, -1, -1, 0, -1, -1]
    with pytest.raises(ValueError, match="between 0 and 32"):
        near_duplicate_groups(hashes, 40)


def test_exact_groups_compare_whole_digests():
    digests = np.random.default_rng(3).integers(0, 256, (8, 32), dtype=np.uint8)
    digests[5] = digests[2]
    digests[7] = digests[2]
    digests[6, :8] = digests[0, :8]  # same first 8 bytes, different digest
    assert exact_duplicate_groups(digests).tolist() == [-1, -1, 2, -1, -1, 2, -1, 2]


def test_sha_codec_round_trips_and_rejects_malformed_values():
    digests = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(3)]
    column = pa.array([digests[0], None, digests[1].upper(), "xyz", "g" * 64, digests[2]]).slice(0)
    raw, valid = sha_to_bytes(column)
    assert valid.tolist() == [True, False, True, False, False, True]
    assert bytes(raw[0]) == bytes.fromhex(digests[0])
    back = bytes_to_sha(raw, valid).to_pylist()
    assert back == [digests[0], None, digests[1], None, None, digests[2]]
    sliced_raw, _ = sha_to_bytes(pa.array(digests).slice(1, 2))
    assert [bytes(r).hex() for r in sliced_raw] == digests[1:]


def test_pairs_searched_on_a_superset_give_the_same_groups():
    hashes = clustered_hashes(4, clusters=60, per_cluster=5, max_flips=4)
    chosen = hashes[::2]
    expected, _ = near_duplicate_groups(chosen, 6)
    # A superset with extra hashes that would chain otherwise separate groups: their pairs must not count.
    bridges = chosen[:40] ^ np.int64(0b111)
    searched = search_near(np.concatenate([hashes, bridges, hashes[:10]]), 6)
    labels, plan = near_duplicate_groups(chosen, 6, searched)
    assert labels.tolist() == expected.tolist() and plan == searched.plan
    assert (expected >= 0).sum() > 50
    # Not a superset: searched again, same answer.
    labels, _ = near_duplicate_groups(chosen, 6, search_near(hashes[:7], 6))
    assert labels.tolist() == expected.tolist()


def test_interleaved_bands_are_a_bit_permutation_keeping_distances():
    hashes = np.random.default_rng(8).integers(-(2**63), 2**63 - 1, 1000, dtype=np.int64).view(np.uint64)
    single_bits = np.left_shift(np.uint64(1), np.arange(64, dtype=np.uint64))
    for bands in (7, 9, 10):
        moved = _interleave(single_bits, bands)
        assert (np.bitwise_count(moved) == 1).all() and np.bitwise_or.reduce(moved) == np.uint64(2**64 - 1)
        mixed = _interleave(hashes, bands)
        assert np.array_equal(np.bitwise_count(mixed[1:] ^ mixed[:-1]), np.bitwise_count(hashes[1:] ^ hashes[:-1]))
    # Bit 9 (on the 8x8 grid, below bit 1) joins band 0 with bit 0 when there are 9 bands.
    assert _interleave(np.array([1 << 9], dtype=np.uint64), 9)[0] == 2


def test_biased_correlated_hashes_match_brute_force():
    # Low bits nearly always set and neighbours copied: contiguous bands would hold few distinct values.
    rng = np.random.default_rng(21)
    base = rng.integers(0, 2**63 - 1, 3000, dtype=np.int64)
    base |= 0b1011  # biased bits
    base ^= (base & 0x5555_5555_5555_5555) << 1  # correlated neighbours
    hashes = np.unique(np.concatenate([base, base[:300] ^ np.int64(0b1_0000_0001_0000)]))
    found = {tuple(p) for p in near_pairs(hashes, 6).tolist()}
    assert len(found) >= 300
    assert found == brute_force_pairs(hashes, 6)


@pytest.mark.parametrize("bands,must_match", [(9, 3), (10, 4), (8, 2)])
def test_every_banded_plan_reports_each_close_pair_once(bands, must_match):
    # Thousands of close pairs (the compiled loop grows its output many times), every one agreeing on several
    # band combinations: each must come out exactly once, and none may be missed.
    hashes = np.unique(clustered_hashes(5, clusters=300, per_cluster=12, max_flips=3))
    combos = math.comb(bands, must_match)
    pairs = near_pairs(hashes, 6, plan=BandPlan(bands, must_match, combos, 0.0))
    assert len(pairs) > 5000
    assert len(np.unique(pairs, axis=0)) == len(pairs)
    assert {tuple(p) for p in pairs.tolist()} == brute_force_pairs(hashes, 6)


def test_plan_counts_candidates_on_the_hashes_themselves():
    # Correlated hashes (half the bits copies of their neighbours) have far more candidates than uniform
    # ones: the sampled plan must see that and key on more bands than the uniform estimate would.
    rng = np.random.default_rng(2)
    uniform = distinct(rng.integers(-(2**63), 2**63 - 1, 200_000, dtype=np.int64))
    correlated = uniform & np.int64(0x5555_5555_5555_5555)
    correlated = distinct(correlated | (correlated << 1))
    plain, skewed = search_plan(uniform, 6), search_plan(correlated, 6)
    assert plain.bands == plan_bands(len(uniform), 6).bands  # the sample agrees with the uniform estimate
    assert skewed.bands > plain.bands


def test_distinct_is_sorted_unique():
    values = np.array([5, -3, 5, 9, -3, 0], dtype=np.int64)
    assert distinct(values).tolist() == [-3, 0, 5, 9]
    assert distinct(np.empty(0, np.int64)).tolist() == []
