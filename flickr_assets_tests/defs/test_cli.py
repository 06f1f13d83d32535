"""The CLI as data engineers use it: `dagster asset materialize` and `dg launch`, in subprocesses."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from flickr_assets.storage.layout import DataLayout

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run(
        args, cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.mark.slow
def test_a_keyword_added_to_the_file_is_materialised_by_both_clis(pipeline_env, sim, tmp_path):
    keywords = tmp_path / "keywords.txt"
    keywords.write_text("# my keywords\ncolosseum\ncafé crème | has_geo=any\nblack/white | has_geo=any\n")
    env = {**pipeline_env, "FLICKR_KEYWORDS_FILE": str(keywords)}
    layout = DataLayout.at(env["FLICKR_DATA_DIR"])

    result = _run(
        [str(BIN / "dagster"), "asset", "materialize", "-m", "flickr_assets.definitions",
         "--select", "photo_records,photo_images", "--partition", "café crème"],
        env,
    )  # fmt: skip
    # The core's own log lines (here the download's plan) reach the run's event log (dagster.yaml python_logs).
    assert re.search(r"- photo_images - café crème: \d+ records, \d+ to handle", result.stdout + result.stderr)
    records = pq.read_table(layout.records_file("café crème"), columns=["photo_id"])["photo_id"].to_pylist()
    assert sorted(records) == sorted(sim.truth.search_ids(text="café crème"))
    manifest = pq.read_table(layout.manifest_file("café crème"), columns=["photo_id", "status", "path"]).to_pylist()
    assert {row["photo_id"] for row in manifest} == set(records)
    assert all(layout.resolve_relative(row["path"]).exists() for row in manifest if row["status"] == "ok")

    _run(
        [str(BIN / "dg"), "launch", "--assets", "photo_records,photo_images", "--partition", "black/white"],
        env,
    )
    assert layout.records_file("black/white").exists()
    stored = pq.read_table(layout.manifest_file("black/white"), columns=["status", "path"]).to_pylist()
    paths = [row["path"] for row in stored if row["status"] == "ok"]
    # The slash never made a sub-folder: every image is in the one percent-encoded folder.
    assert paths and all(path.startswith("images/black%2Fwhite/") for path in paths)
    assert all(layout.resolve_relative(path).exists() for path in paths)
    assert not (layout.images_root / "black").exists()

    _run([str(BIN / "dg"), "launch", "--assets", "photo_catalog"], env)
    catalog = pq.read_table(layout.catalog_file, columns=["photo_id", "keywords"]).to_pylist()
    found = {k for row in catalog for k in row["keywords"]}
    assert found == {"café crème", "black/white"}  # colosseum was never materialised: tolerated
