"""Chaos: every fault on, the pipeline SIGKILLed at random moments and restarted, ends where a clean run ends."""

import random
import time

import pytest

from flickr_assets.simulator import Faults
from flickr_assets.storage.layout import DataLayout
from flickr_assets_tests.resilience import pipeline_process, snapshot

KEYWORDS = ["colosseum", "stonehenge", "golden gate bridge"]
KILLS = 5
RUN_BOUND_SECONDS = 240  # no single run may take longer: a hang fails the test

EVERY_FAULT = Faults(
    seed=11,
    rest_5xx=0.12,
    rest_429=0.08,
    api_error=0.1,
    drop=0.04,
    bad_body=0.12,
    slow=0.02,
    slow_seconds=0.5,
    static_5xx=0.05,
    static_429=0.03,
    truncate=0.04,
    corrupt=0.04,
    html=0.03,
)


def _snapshot(layout: DataLayout) -> dict:
    return {
        "records": {keyword: snapshot.records(layout, keyword) for keyword in KEYWORDS},
        "manifests": {keyword: snapshot.manifest(layout, keyword) for keyword in KEYWORDS},
        "images": snapshot.image_hashes(layout),
        "catalog": snapshot.catalog(layout),
    }


@pytest.mark.slow
def test_killed_faulty_runs_end_where_a_clean_run_ends(pipeline_env, sim, tmp_path):
    keywords_file = tmp_path / "keywords.txt"
    keywords_file.write_text("".join(f"{keyword}\n" for keyword in KEYWORDS))
    base = {**pipeline_env, "FLICKR_KEYWORDS_FILE": str(keywords_file)}
    chaos_env = pipeline_process.pipeline_env(base, tmp_path / "chaos" / "data", tmp_path / "chaos" / "dagster_home")
    clean_env = pipeline_process.pipeline_env(base, tmp_path / "clean" / "data", tmp_path / "clean" / "dagster_home")
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    log = tmp_path / "chaos.log"

    sim.faults = EVERY_FAULT
    kill_times = []
    for _ in range(KILLS):
        process = pipeline_process.start(chaos_env, "--rounds", "4", log=log)
        kill_after = rng.uniform(4.0, 25.0)
        try:
            process.wait(timeout=kill_after)
        except Exception:  # still running, as intended: kill it
            pipeline_process.kill(process)
        kill_times.append(round(kill_after, 1))
    started = time.monotonic()
    chaos = pipeline_process.run(chaos_env, "--rounds", "4", log=log, timeout=RUN_BOUND_SECONDS * 2)
    chaos_seconds = time.monotonic() - started
    faults_served = sim.stats.snapshot()["faults"]

    sim.faults = Faults()
    clean = pipeline_process.run(clean_env, log=tmp_path / "clean.log", timeout=RUN_BOUND_SECONDS)

    where = f"(kill seed {seed}, kills after {kill_times} s; logs {log}, {tmp_path / 'clean.log'})"
    assert chaos.returncode == 0 and chaos.summary and chaos.summary["ok"], f"chaos run did not finish {where}"
    assert clean.returncode == 0 and clean.summary and clean.summary["ok"], f"clean run failed {where}"
    assert all(run.get("seconds", 0) < RUN_BOUND_SECONDS for run in chaos.runs + clean.runs), where
    assert chaos_seconds < RUN_BOUND_SECONDS * 2
    # Faults were really served: the static host's every kind (hundreds of requests); the API gets only a
    # dozen calls here (one per incremental harvest), so its kinds are each proven in test_bad_api_answers.
    rest = sum(faults_served.get(kind, 0) for kind in ("rest_5xx", "rest_429", "api_error", "bad_body"))
    assert rest >= 1, f"too few API faults {where}: {faults_served}"
    for kind in ("drop", "slow", "static_5xx", "static_429", "truncate", "corrupt", "html"):
        assert faults_served.get(kind), f"fault {kind} never happened {where}: {faults_served}"

    chaos_layout = DataLayout.at(chaos_env["FLICKR_DATA_DIR"])
    clean_layout = DataLayout.at(clean_env["FLICKR_DATA_DIR"])
    expected = _snapshot(clean_layout)
    got = _snapshot(chaos_layout)
    assert sum(len(rows) for rows in expected["records"].values()) > 200
    assert len(expected["images"]) > 200
    for part in ("records", "manifests"):
        for keyword in KEYWORDS:
            assert got[part][keyword] == expected[part][keyword], f"{part} of {keyword!r} differ {where}"
    assert got["images"] == expected["images"], f"stored images differ {where}"
    assert got["catalog"] == expected["catalog"], f"catalogs differ {where}"
    assert not any(row["status"] == "failed" for rows in got["manifests"].values() for row in rows)
    for layout in (chaos_layout, clean_layout):
        for keyword in KEYWORDS:
            assert snapshot.manifest_hash_problems(layout, keyword) == [], where

    for root in (chaos_layout.root, clean_layout.root):
        assert snapshot.leftovers(root) == [], where
