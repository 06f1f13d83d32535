"""Fixtures of the simulator tests."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from flickr_assets.simulator import Simulator


@pytest.fixture
def private_sim(simulator_cache: Path) -> Iterator[Simulator]:
    """A simulator of its own (same seed and image cache as the shared one) for tests that change the world."""
    with Simulator(seed=7, cache_dir=simulator_cache) as sim:
        yield sim
