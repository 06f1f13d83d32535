"""The packed stable sort and the bounded read-ahead the catalog build relies on."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from flickr_assets.catalog.grouping import stable_order
from flickr_assets.catalog.sources import read_ahead


@pytest.mark.parametrize("spread", [10, 2**40, 2**62])  # the last does not fit a word with the positions
def test_stable_order_matches_a_stable_argsort(spread):
    rng = np.random.default_rng(spread % 97)
    values = rng.integers(-spread, spread, 50_000, dtype=np.int64)
    values[::7] = values[3]  # many ties: their positions must stay in order
    order, ordered = stable_order(values)
    expected = np.argsort(values, kind="stable")
    assert np.array_equal(order, expected) and np.array_equal(ordered, values[expected])
    empty_order, empty = stable_order(np.empty(0, np.int64))
    assert len(empty_order) == len(empty) == 0


def test_read_ahead_keeps_order_and_stays_bounded():
    def work(item: int) -> int:
        return item * 2

    submitted = []
    with ThreadPoolExecutor(2) as pool:
        results = read_ahead(work, (submitted.append(i) or i for i in range(50)), pool, ahead=3)
        first = next(results)
        assert first == 0 and len(submitted) <= 4  # not every item submitted at once
        assert [first, *results] == [2 * i for i in range(50)]
    assert list(read_ahead(work, range(5), None)) == [0, 2, 4, 6, 8]


def test_read_ahead_raises_the_first_failure():
    def work(item: int) -> int:
        if item == 3:
            raise ValueError("bad file 3")
        return item

    with ThreadPoolExecutor(2) as pool, pytest.raises(ValueError, match="bad file 3"):
        list(read_ahead(work, range(10), pool))
