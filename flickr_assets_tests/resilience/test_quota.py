"""Quota safety: two partitions at once never push the key over Flickr's budget, and an expired key stops
every run at once (one call, no retries) with a clear message."""

import time

import dagster as dg
import pyarrow.parquet as pq
import pytest

from flickr_assets.simulator import DEMO_API_KEY, Budget
from flickr_assets.simulator.faults import BudgetTracker
from flickr_assets.storage.layout import DataLayout
from flickr_assets_tests.resilience import pipeline_process

# The pipeline's budget: FLICKR_API_CALLS_PER_HOUR=30 applied to a 10 s window (the runner's --budget-window),
# so any 10 s sees at most C + (N - C) = 30 calls. Flickr's (the simulator's) allows 32 per 10 s and expires
# the key at the first call over it.
PIPELINE_CALLS, WINDOW = 30, 10.0
FLICKR_BUDGET = Budget(calls=32, window_seconds=WINDOW, expire_after=1)
EXPIRED = "Flickr rejected FLICKR_API_KEY: Invalid API Key (Key has expired)"


@pytest.fixture
def budget_sim(sim):
    """The session simulator with a per-key budget for this test."""
    saved = sim.budget
    sim.budget = BudgetTracker(FLICKR_BUDGET)
    yield sim
    sim.budget = saved


def _env(pipeline_env: dict, tmp_path, keywords: list[str]) -> dict[str, str]:
    keywords_file = tmp_path / "keywords.txt"
    keywords_file.write_text("".join(f"{keyword}\n" for keyword in keywords))
    base = {
        **pipeline_env,
        "FLICKR_KEYWORDS_FILE": str(keywords_file),
        "FLICKR_API_CALLS_PER_HOUR": str(PIPELINE_CALLS),
    }
    env = pipeline_process.pipeline_env(base, tmp_path / "data", tmp_path / "dagster_home")
    # Let both partitions' harvests run at the same time (the shipped instance allows one per pool), so only
    # the shared API budget stands between them and Flickr's limit.
    yaml = tmp_path / "dagster_home" / "dagster.yaml"
    yaml.write_text(yaml.read_text().replace("default_limit: 1", "default_limit: 4"))
    # Create the instance's SQLite storage once: two processes opening a fresh DAGSTER_HOME at the same moment
    # race in Dagster's schema migration ("table alembic_version already exists").
    dg.DagsterInstance.from_config(str(tmp_path / "dagster_home")).dispose()
    return env


def _start(env: dict, keyword: str, log) -> object:
    args = ("--keyword", keyword, "--records-only", "--no-catalog", "--budget-window", str(WINDOW))
    return pipeline_process.start(env, *args, log=log)


@pytest.mark.slow
def test_two_partitions_at_once_stay_under_the_key_budget(budget_sim, pipeline_env, tmp_path):
    sim = budget_sim
    keywords = ["eiffel tower", "mount fuji"]
    env = _env(pipeline_env, tmp_path, keywords)
    started = time.monotonic()
    processes = [_start(env, keyword, tmp_path / f"{keyword}.log") for keyword in keywords]
    results = [pipeline_process.finish(p, tmp_path / f"{k}.log", 240) for p, k in zip(processes, keywords, strict=True)]
    elapsed = time.monotonic() - started

    for keyword, result in zip(keywords, results, strict=True):
        assert result.returncode == 0, result.output[-3000:]
        ids = pq.read_table(DataLayout.at(env["FLICKR_DATA_DIR"]).records_file(keyword), columns=["photo_id"])
        assert sorted(ids["photo_id"].to_pylist()) == sorted(sim.truth.search_ids(text=keyword, has_geo=True))
    stats = sim.stats.snapshot()
    calls = stats["rest_calls"]
    assert calls > PIPELINE_CALLS + 5, f"only {calls} calls: the budget was never under pressure"
    # The limiter held both processes to N calls per window: it had to wait, and Flickr never said no.
    assert elapsed > (calls - PIPELINE_CALLS) / (PIPELINE_CALLS / WINDOW) * 0.8
    assert stats["budget_rejections"] == 0 and stats["responses_by_status"].get(429, 0) == 0
    assert DEMO_API_KEY not in sim.budget.expired


@pytest.mark.slow
def test_an_expired_key_stops_running_and_next_runs_at_once(budget_sim, pipeline_env, tmp_path):
    sim = budget_sim
    keywords = ["new york", "mount fuji"]
    env = _env(pipeline_env, tmp_path, keywords)
    processes = [_start(env, keyword, tmp_path / f"{keyword}.log") for keyword in keywords]
    deadline = time.monotonic() + 60
    while sim.stats.snapshot()["rest_by_method"].get("flickr.photos.search", 0) < 6:  # both harvests under way
        assert time.monotonic() < deadline, "the harvests never started"
        time.sleep(0.2)
    sim.budget.expired.add(DEMO_API_KEY)  # Flickr switches the key off
    calls_before = sim.stats.snapshot()["rest_calls"]
    expired_at = time.monotonic()
    results = [pipeline_process.finish(p, tmp_path / f"{k}.log", 60) for p, k in zip(processes, keywords, strict=True)]
    stopped_after = time.monotonic() - expired_at

    for result in results:
        assert result.returncode != 0
        assert len(result.runs) == 1 and result.runs[0]["retries"] == 0, result.runs
        assert result.runs[0]["error"].startswith(EXPIRED) and "\n" not in result.runs[0]["error"]
        assert DEMO_API_KEY not in result.output
    # One call per run after the switch-off (in flight or the next one), no retries, and quickly.
    assert sim.stats.snapshot()["rest_calls"] - calls_before <= len(keywords)
    assert stopped_after < 20

    calls_before = sim.stats.snapshot()["rest_calls"]
    nxt = pipeline_process.run(
        env,
        "--keyword",
        "mount fuji",
        "--records-only",
        "--no-catalog",
        "--budget-window",
        str(WINDOW),
        log=tmp_path / "next.log",
        timeout=60,
    )
    assert nxt.returncode != 0 and nxt.runs[0]["error"].startswith(EXPIRED) and nxt.runs[0]["retries"] == 0
    assert sim.stats.snapshot()["rest_calls"] - calls_before == 1
