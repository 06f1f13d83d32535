"""The README's first commands as a newcomer runs them: ``make demo`` and ``make ui`` (``python -m
flickr_assets.demo [--ui]``), each in a subprocess with its own simulator, data folder and Dagster instance."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import requests

from flickr_assets.defs.partitions import SAMPLE_KEYWORDS_FILE
from flickr_assets.flickr.keywords import load_keywords_file
from flickr_assets.storage.layout import DataLayout
from flickr_assets_tests.defs.ui_driver import LOCATIONS_QUERY, free_port, graphql, processes_with_env

REPO = Path(__file__).resolve().parents[1]
PIPELINE_VARIABLES = frozenset(
    {"FLICKR_API_KEY", "FLICKR_API_SECRET", "FLICKR_API_URL", "FLICKR_DATA_DIR", "FLICKR_KEYWORDS_FILE"}
)

pytestmark = pytest.mark.slow


def _demo_env(dagster_home: Path) -> dict[str, str]:
    """The caller's environment without any pipeline setting (the demo sets its own), and a fresh instance."""
    env = {name: value for name, value in os.environ.items() if name not in PIPELINE_VARIABLES}
    return {**env, "DAGSTER_HOME": str(dagster_home)}


def test_the_demo_harvests_downloads_and_catalogs_every_sample_keyword(tmp_path, dagster_home, simulator_cache):
    data = tmp_path / "data"
    command = [sys.executable, "-m", "flickr_assets.demo", "--data-dir", str(data), "--cache-dir", str(simulator_cache)]
    done = subprocess.run(command, cwd=REPO, env=_demo_env(dagster_home), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    layout = DataLayout.at(data)
    keywords = load_keywords_file(SAMPLE_KEYWORDS_FILE).keywords
    for keyword in keywords:
        records = pq.read_table(layout.records_file(keyword), columns=["photo_id"])
        manifest = pq.read_table(layout.manifest_file(keyword), columns=["photo_id", "status"])
        assert records.num_rows > 0, keyword
        assert sorted(manifest["photo_id"].to_pylist()) == sorted(records["photo_id"].to_pylist()), keyword
        ok = manifest["status"].to_pylist().count("ok")
        assert ok > 0, keyword
        assert f"  {keyword!r}: {records.num_rows} records -> {ok} images" in done.stdout
    catalog = pq.read_table(layout.catalog_file, columns=["photo_id", "keywords"])
    assert catalog.num_rows == len(set(catalog["photo_id"].to_pylist()))
    assert {k for row in catalog["keywords"].to_pylist() for k in row} == set(keywords)
    assert f"catalog: {catalog.num_rows} unique photos" in done.stdout


@pytest.mark.parametrize(
    ("stop_signal", "to_group"),
    [(signal.SIGINT, True), (signal.SIGTERM, False), (signal.SIGHUP, False)],
    ids=["ctrl-c", "sigterm", "sighup"],
)
def test_the_ui_stops_cleanly_and_whole(tmp_path, dagster_home, simulator_cache, stop_signal, to_group):
    """``make ui`` ended by Ctrl-C (SIGINT to the terminal's process group), kill, a process manager or a closed
    terminal stops dagster dev cleanly and takes it along. Started as a background job does it (SIGINT
    ignored), which dagster dev must not inherit."""
    env = _demo_env(dagster_home)
    port = free_port()
    command = [sys.executable, "-m", "flickr_assets.demo", "--ui", "--port", str(port)]
    command += ["--data-dir", str(tmp_path / "data"), "--cache-dir", str(simulator_cache)]
    log = tmp_path / "ui.log"
    with log.open("wb") as output:
        demo = subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert demo.poll() is None, f"make ui exited with {demo.returncode}:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no UI on port {port} after 120 s:\n{log.read_text()[-3000:]}"
            try:  # up, with the code location loaded: what a user sees before pressing Ctrl-C
                entries = graphql(f"http://127.0.0.1:{port}", LOCATIONS_QUERY)["workspaceOrError"]["locationEntries"]
                if entries and all(entry["loadStatus"] == "LOADED" for entry in entries):
                    break
            except (requests.RequestException, KeyError, TypeError):
                pass
            time.sleep(0.5)

        if to_group:
            os.killpg(demo.pid, stop_signal)
        else:
            demo.send_signal(stop_signal)
        assert demo.wait(timeout=90) == 128 + stop_signal, log.read_text()[-3000:]
        output = log.read_text()
        assert "Dagster services shut down." in output and "Aborted!" not in output, output[-3000:]
        deadline = time.monotonic() + 30
        while (left := processes_with_env("DAGSTER_HOME", env["DAGSTER_HOME"])) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert left == [], f"still running after make ui ended: {left}\n{log.read_text()[-3000:]}"
    finally:
        with contextlib.suppress(ProcessLookupError):  # whatever is left of its process group
            os.killpg(demo.pid, signal.SIGKILL)
