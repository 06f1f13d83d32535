"""The API key and secret appear nowhere: not in logs, the event log, metadata, file names or file contents."""

import urllib.parse
from pathlib import Path

import dagster as dg
import pytest
from dagster._serdes import serialize_value

from flickr_assets.simulator import Faults
from flickr_assets_tests.resilience import pipeline_process

KEY = "c0ffee5ec2e7a91b7e57c0ffee5ec2e7"  # recognisable, valid-looking (32 hex digits)
SECRET = "5ec2e7b1a5e7c0de"
WRONG_KEY = "baddecaf0baddecaf0baddecaf0badde"


def _needles(*values: str) -> list[bytes]:
    """Each value as written, URL-encoded and upper-cased (a hex key could be shown either way)."""
    out = set()
    for value in values:
        for form in (value, urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value), value.upper()):
            out.add(form.encode())
    return sorted(out)


def _files_containing(root: Path, needles: list[bytes]) -> list[str]:
    hits = []
    for path in sorted(root.rglob("*")):
        if any(needle in str(path).encode() for needle in needles):
            hits.append(f"file name {path}")
        if path.is_file():
            data = path.read_bytes()
            hits += [f"{path} contains {needle!r}" for needle in needles if needle in data]
    return hits


def _event_log_text(dagster_home: Path) -> tuple[str, int]:
    """Every event of every run of the instance, serialised (messages, metadata, errors), and the run count."""
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        runs = instance.get_runs()
        parts = [serialize_value(entry) for run in runs for entry in instance.all_logs(run.run_id)]
        parts += [serialize_value(run) for run in runs]
    return "\n".join(parts), len(runs)


@pytest.fixture
def keyed_sim(sim):
    """The session simulator, also accepting ``KEY``/``SECRET`` for this test."""
    sim.api_keys[KEY] = SECRET
    yield sim
    sim.api_keys.pop(KEY, None)


@pytest.mark.slow
def test_key_and_secret_never_leak(keyed_sim, pipeline_env, tmp_path):
    sim = keyed_sim
    keywords = tmp_path / "keywords.txt"
    keywords.write_text("colosseum\n")
    base = {**pipeline_env, "FLICKR_KEYWORDS_FILE": str(keywords), "FLICKR_API_KEY": KEY, "FLICKR_API_SECRET": SECRET}
    data, home = tmp_path / "data", tmp_path / "dagster_home"
    env = pipeline_process.pipeline_env(base, data, home)
    logs = tmp_path / "logs"
    logs.mkdir()

    # 1. A run with faults (retries, error messages, Retry-After), every logger at DEBUG.
    sim.faults = Faults(seed=5, rest_5xx=0.2, api_error=0.2, bad_body=0.1, static_5xx=0.1, truncate=0.05, html=0.05)
    faulty = pipeline_process.run(env, "--debug", "--rounds", "3", log=logs / "faulty.log", timeout=240)
    assert faulty.returncode == 0, faulty.output[-3000:]
    assert sum(sim.stats.snapshot()["faults"].values()) > 0
    # 2. A clean run (incremental harvest, images already there, catalog again).
    sim.faults = Faults()
    clean = pipeline_process.run(env, "--debug", log=logs / "clean.log", timeout=240)
    assert clean.returncode == 0, clean.output[-3000:]
    # 3. A run with a key Flickr does not know: fails at once, says which setting is wrong, never prints it.
    wrong_env = {**env, "FLICKR_API_KEY": WRONG_KEY}
    wrong = pipeline_process.run(wrong_env, "--debug", "--no-catalog", log=logs / "wrong.log", timeout=120)
    assert wrong.returncode != 0
    error = wrong.runs[0]["error"]
    assert error.startswith("Flickr rejected FLICKR_API_KEY: Invalid API Key (Key not found)"), error
    # 4. The right key with a wrong secret: Flickr refuses the signature, in an answer that echoes the signed
    #    request (key included); the run fails at once naming FLICKR_API_SECRET, printing neither.
    for secret, message in (
        ("0f" * 8, "Flickr refused the request signature (signature_invalid on flickr.photos.search)"),
        ("", "FLICKR_API_SECRET is not set"),
    ):
        refused = pipeline_process.run(
            {**env, "FLICKR_API_SECRET": secret},
            "--debug",
            "--records-only",
            "--no-catalog",
            log=logs / f"secret-{secret or 'empty'}.log",
            timeout=120,
        )
        assert refused.returncode != 0
        assert refused.runs[0]["error"].startswith(message), refused.runs[0]["error"]
    assert sim.stats.snapshot()["signature_rejections"] == 1

    assert (data / "catalog" / "catalog.parquet").exists()
    assert any((data / "images").rglob("*.jpg"))
    needles = _needles(KEY, SECRET, WRONG_KEY)
    assert _files_containing(logs, needles) == []  # stdout + stderr of every run, DEBUG included
    assert _files_containing(data, needles) == []  # records, images (embedded metadata), manifests, state
    assert _files_containing(home, needles) == []  # the instance: run storage, event log, captured logs
    events, runs = _event_log_text(home)
    assert runs >= 4 and "photo_records" in events and "ASSET_MATERIALIZATION" in events  # a real log was scanned
    assert not [needle for needle in needles if needle.decode() in events]
