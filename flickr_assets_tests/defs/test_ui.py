"""The Dagster UI as data engineers use it: ``dagster dev`` on 127.0.0.1, driven in headless Chromium.

One partition of ``photo_records`` is materialised through the page (Materialize… → partition dialog →
Launch 1 run); the run must succeed and the asset page must show the materialisation's metadata, equal to
what the run wrote. Screenshots of every step go to the test's tmp folder (named in failure messages); with
``FLICKR_UI_SCREENSHOTS=docs`` the README's screenshots are written to ``docs/`` too.
"""

import os
import shutil
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from flickr_assets.storage.layout import DataLayout
from flickr_assets_tests.defs.ui_driver import (
    CHROMIUM,
    DagsterDev,
    DagsterUi,
    Evidence,
    list_runs,
    open_browser,
    processes_with_env,
    wait_for_partition,
    wait_for_run,
)

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SAMPLE_KEYWORDS = REPO / "flickr_assets" / "sample" / "keywords.txt"
ASSETS = ["photo_records", "photo_images", "photo_catalog"]
KEYWORD = "colosseum"
NEW_KEYWORD = "eiffel tower"

pytestmark = [pytest.mark.ui, pytest.mark.slow, pytest.mark.timeout(300)]


def _sync_playwright():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (scripts/install-chromium.sh installs Debian's chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed (pip install -e '.[dev]')")
    return sync_playwright


def _docs_folder() -> Path | None:
    """Where to write the README's screenshots: only when FLICKR_UI_SCREENSHOTS names a folder (e.g. docs)."""
    value = os.environ.get("FLICKR_UI_SCREENSHOTS")
    return (REPO / value) if value else None


def test_a_partition_materialised_from_the_ui_succeeds_and_shows_its_metadata(pipeline_env, sim, tmp_path):
    sync_playwright = _sync_playwright()
    keywords = tmp_path / "keywords.txt"
    shutil.copyfile(SAMPLE_KEYWORDS, keywords)
    env = {**os.environ, **pipeline_env, "FLICKR_KEYWORDS_FILE": str(keywords)}
    layout = DataLayout.at(pipeline_env["FLICKR_DATA_DIR"])
    (shots := tmp_path / "screenshots").mkdir()
    docs = _docs_folder()
    server = DagsterDev(REPO, env, tmp_path / "dagster-dev.log", BIN / "dagster")
    env["FLICKR_WEBSERVER_URL"] = server.base_url  # where keywords_file_watch asks for a reload
    try:
        ready_s = server.start(timeout=90)
        evidence = Evidence(shots, server)
        # The README's pictures at twice the pixel density, so that the small graph nodes stay readable.
        with sync_playwright() as playwright, open_browser(playwright, scale=2 if docs else 1) as page:
            ui = DagsterUi(page, server.base_url)

            with evidence.step(page, "open the asset graph"):
                ui.asset_graph("flickr", ASSETS)
                evidence.shot(page, "asset-graph-before")
            assert list_runs(server.base_url) == [], evidence.describe()

            with evidence.step(page, f"materialise photo_records[{KEYWORD}] through the partition dialog"):
                short_id = ui.materialize_partition(
                    "photo_records", KEYWORD, on_toast=lambda: evidence.shot(page, "launched")
                )

            runs = list_runs(server.base_url)
            assert len(runs) == 1, f"expected one run launched from the page, found {runs}\n{evidence.describe()}"
            run = runs[0]
            assert run["tags"].get("dagster/partition") == KEYWORD, evidence.describe()
            assert run["tags"].get("dagster/from_ui") == "true", evidence.describe()
            assert run["assets"] == ["photo_records"], evidence.describe()
            assert run["run_id"].startswith(short_id), f"toast names run {short_id}, not {run['run_id']}"
            assert run["run_id"] in page.url, f"the toast's View opened {page.url}\n{evidence.describe()}"
            status = wait_for_run(server.base_url, run["run_id"], timeout=180)
            with evidence.step(page, f"the run page shows {status}"):
                page.get_by_text(status.title(), exact=True).first.wait_for()
                evidence.shot(page, "run")
            assert status == "SUCCESS", f"run {run['run_id']} ended {status}\n{evidence.describe()}"

            with evidence.step(page, "read the partition's metadata on the asset page"):
                metadata = ui.partition_metadata("photo_records", KEYWORD, key="rows")
                metadata_shot = evidence.shot(page, "metadata")
            records = layout.records_file(KEYWORD)
            written = pq.ParquetFile(records).metadata.num_rows
            assert written > 0, f"{records} is empty"
            shown = metadata.get("rows", "").replace(",", "")
            assert shown == str(written), f"UI shows rows={shown!r}, {records} has {written}\n{evidence.describe()}"
            assert metadata.get("path") == str(records), f"{metadata}\n{evidence.describe()}"
            assert metadata.get("mode") == "full", f"{metadata}\n{evidence.describe()}"

            with evidence.step(page, "the asset graph after the run"):
                ui.asset_graph("flickr", ASSETS)
                page.get_by_text("33% filled").first.wait_for()  # one of three keyword partitions
                graph_shot = evidence.shot(page, "asset-graph-after", clip=ui.graph_clip(ASSETS))

            with evidence.step(page, f"{NEW_KEYWORD!r} added to the keywords file shows as a partition"):
                with keywords.open("a", encoding="utf-8") as file:
                    file.write(f"{NEW_KEYWORD}\n")
                waited_s = wait_for_partition(server.base_url, "photo_records", NEW_KEYWORD, timeout=90)
                ui.partition_list("photo_records", NEW_KEYWORD)
                evidence.shot(page, "new-keyword")
            print(f"{NEW_KEYWORD!r} was a partition {waited_s:.1f} s after it was added to the file")

        if docs:
            docs.mkdir(exist_ok=True)
            shutil.copyfile(graph_shot, docs / "asset-graph.png")
            shutil.copyfile(metadata_shot, docs / "asset-metadata.png")
    finally:
        stop_s, killed = server.stop(timeout=60)
    print(f"dagster dev ready in {ready_s:.1f} s, stopped in {stop_s:.1f} s (group killed: {killed})")
    left = processes_with_env("DAGSTER_HOME", pipeline_env["DAGSTER_HOME"])
    assert left == [], f"processes of this dagster dev still running after stop: {left}"
