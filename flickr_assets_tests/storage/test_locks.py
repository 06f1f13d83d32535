"""One harvest and one download of a keyword at a time, across processes; a killed holder frees its lock."""

import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from flickr_assets.storage.layout import DataLayout
from flickr_assets.storage.locks import KeywordBusy, keyword_lock, lock_file
from flickr_assets.storage.schemas import RECORDS

HOLD = """
import sys, time
from flickr_assets.storage.layout import DataLayout
from flickr_assets.storage.locks import keyword_lock
with keyword_lock(DataLayout.at(sys.argv[1]), sys.argv[2], sys.argv[3]):
    print("held", flush=True)
    time.sleep(60)
"""


@pytest.fixture
def layout(tmp_path) -> DataLayout:
    return DataLayout.at(tmp_path / "data")


def _holder(layout: DataLayout, keyword: str, stage: str) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(layout.root), keyword, stage], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdout.readline() == "held\n"
    return process


@pytest.mark.parametrize(("stage", "verb"), [("harvest", "harvested"), ("download", "downloaded")])
def test_one_run_of_a_stage_per_keyword(layout, stage, verb):
    holder = _holder(layout, "café crème", stage)
    try:
        refused = pytest.raises(KeywordBusy, match=f"'café crème' is being {verb} by another process")
        with refused as busy, keyword_lock(layout, "café crème", stage):
            pass
        assert lock_file(layout, "café crème", stage) in str(busy.value)
        with keyword_lock(layout, "other", stage):  # other keywords go on
            pass
        other_stage = "download" if stage == "harvest" else "harvest"
        with keyword_lock(layout, "café crème", other_stage):  # so does the keyword's other stage
            pass
    finally:
        holder.kill()
        holder.wait()


def test_the_download_command_says_in_one_line_that_the_keyword_is_busy(layout):
    records = layout.records_file("k")
    records.parent.mkdir(parents=True)
    pq.write_table(RECORDS.empty_table(), records)
    holder = _holder(layout, "k", "download")
    try:
        command = [sys.executable, "-m", "flickr_assets.download", "--data-dir", str(layout.root), "k"]
        refused = subprocess.run(command, capture_output=True, text=True, timeout=60)
    finally:
        holder.kill()
        holder.wait()
    assert refused.returncode == 4, refused.stderr
    assert refused.stderr.strip().splitlines() == [
        f"error: keyword 'k' is being downloaded by another process (lock {lock_file(layout, 'k', 'download')})"
    ]


def test_a_holder_killed_by_sigkill_frees_the_lock(layout):
    holder = _holder(layout, "k", "harvest")
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    started = time.monotonic()
    with keyword_lock(layout, "k", "harvest"):
        assert time.monotonic() - started < 1
