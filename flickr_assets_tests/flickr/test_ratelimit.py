"""The shared API budget: burst capacity, refill, rolling-window bound, penalties, and two processes."""

import multiprocessing
import time
from pathlib import Path

import numpy as np
import pytest

from flickr_assets.flickr.ratelimit import ApiBudget


class FakeClock:
    """A clock that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def budget(tmp_path: Path, clock: FakeClock, calls_per_hour: int = 3600) -> ApiBudget:
    return ApiBudget(tmp_path / ".state", calls_per_hour=calls_per_hour, clock=clock, sleep=clock.sleep)


def test_burst_then_steady_rate(tmp_path):
    clock = FakeClock()
    limiter = budget(tmp_path, clock)
    assert limiter.capacity == 60
    for _ in range(60):
        assert limiter.acquire() == 0.0
    waited = limiter.acquire()
    assert waited == pytest.approx(3600 / 3540, rel=1e-6)  # one token at (N - C) / 3600 per second


def test_no_rolling_hour_exceeds_the_budget(tmp_path):
    clock = FakeClock()
    limiter = budget(tmp_path, clock, calls_per_hour=600)
    times = []
    for _ in range(1500):  # 2.5 hours of back-to-back calls
        limiter.acquire()
        times.append(clock.now)
    stamps = np.array(times)
    in_window = np.searchsorted(stamps, stamps + 3600, side="left") - np.arange(len(stamps))
    assert in_window.max() <= 600
    assert in_window[: len(stamps) // 3].max() >= 595  # and the budget is actually used


def test_state_is_shared_by_instances_on_the_same_folder(tmp_path):
    clock = FakeClock()
    one, two = budget(tmp_path, clock, 120), budget(tmp_path, clock, 120)
    assert one.capacity == 2
    one.acquire()
    two.acquire()
    assert one.available() < 1.0
    assert two.acquire() > 0


def test_penalize_blocks_everyone(tmp_path):
    clock = FakeClock()
    one, two = budget(tmp_path, clock), budget(tmp_path, clock)
    one.penalize(7.5)
    assert two.acquire() == pytest.approx(7.5)


def test_damaged_state_file_grants_no_burst(tmp_path):
    clock = FakeClock()
    limiter = budget(tmp_path, clock)
    limiter.acquire()
    (tmp_path / ".state" / "api_budget.json").write_text("garbage")
    assert limiter.acquire() > 0


def test_rejects_a_non_positive_budget(tmp_path):
    with pytest.raises(ValueError, match="calls_per_hour"):
        ApiBudget(tmp_path, calls_per_hour=0)


def _spend(state_dir: str, calls_per_window: int, window: float, seconds: float, out: str) -> None:
    limiter = ApiBudget(Path(state_dir), calls_per_hour=calls_per_window, window_seconds=window)
    stamps = []
    deadline = time.time() + seconds
    while time.time() < deadline:
        limiter.acquire()
        stamps.append(time.time())
    Path(out).write_text("\n".join(map(repr, stamps)))


def test_two_processes_stay_under_one_budget(tmp_path):
    window, budget_calls, seconds = 1.0, 200, 3.0  # 200 calls per rolling second, shared
    context = multiprocessing.get_context("fork")
    outs = [tmp_path / f"p{i}.txt" for i in range(2)]
    procs = [
        context.Process(target=_spend, args=(str(tmp_path / ".state"), budget_calls, window, seconds, str(out)))
        for out in outs
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0
    per_process = [np.array([float(x) for x in out.read_text().split()]) for out in outs]
    stamps = np.sort(np.concatenate(per_process))
    in_window = np.searchsorted(stamps, stamps + window, side="left") - np.arange(len(stamps))
    assert in_window.max() <= budget_calls + 2  # +2: a stamp is taken just after the token
    # Both processes got calls, and together they used most of the budget (3 s ≈ C + 3 × (N − C)).
    assert min(len(p) for p in per_process) > 100
    assert len(stamps) >= 0.8 * (3 + seconds * (budget_calls - 3))
