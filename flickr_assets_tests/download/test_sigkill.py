"""SIGKILL (or Ctrl-C) at random moments, then a re-run: the same files and hashes as an uninterrupted run."""

import contextlib
import hashlib
import os
import random
import resource
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flickr_assets.download import DownloadOptions, download_keyword
from flickr_assets.download.plan import embedded_metadata
from flickr_assets.imaging.metadata import restamp
from flickr_assets.storage.digest import file_sha256
from flickr_assets.storage.layout import DataLayout
from flickr_assets.storage.manifest import journal_file, load_rows
from flickr_assets_tests.download.conftest import check_against_truth, manifest_rows, stored_files

REPO = Path(__file__).resolve().parents[2]
KEYWORD = "stonehenge"
FETCHERS = 8
PER_SHARD = 40


def _start(layout: DataLayout, per_shard: int = PER_SHARD, file_size_limit: int | None = None) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    command = [sys.executable, "-m", "flickr_assets.download", KEYWORD, "--data-dir", str(layout.root)]
    command += ["--files-per-shard", str(per_shard), "--fetchers", str(FETCHERS), "--backoff", "0.05"]

    def limit_file_size() -> None:  # a write past the limit fails with EFBIG, as on a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    return subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=REPO,
        start_new_session=True,
        preexec_fn=limit_file_size if file_size_limit else None,
    )


def _retitle(layout: DataLayout, records: pa.Table) -> pa.Table:
    """Every title changed on Flickr, as a full refresh brings it: written as the keyword's records."""
    titles = pa.array([f"{t} (edited)" for t in records["title"].to_pylist()])
    edited = records.set_column(records.schema.get_field_index("title"), "title", titles)
    seen = pa.array([datetime.now(UTC)] * edited.num_rows, edited.schema.field("last_seen").type)
    edited = edited.set_column(edited.schema.get_field_index("last_seen"), "last_seen", seen)  # found again now
    layout.records_file(KEYWORD).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(edited, layout.records_file(KEYWORD))
    return edited


def _journal_lines(layout: DataLayout) -> int:
    try:
        return journal_file(layout, KEYWORD).read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found |= {int(c) for c in (task / "children").read_text().split()}
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@pytest.mark.slow
def test_sigkill_then_rerun_equals_an_uninterrupted_run(sim, harvested, tmp_path):
    records = harvested(KEYWORD)
    reference = DataLayout.at(tmp_path / "reference")
    download_keyword(reference, KEYWORD, records, DownloadOptions(files_per_shard=PER_SHARD))

    layout = DataLayout.at(tmp_path / "killed")
    layout.records_file(KEYWORD).parent.mkdir(parents=True)
    pq.write_table(records, layout.records_file(KEYWORD))
    sim.stats.reset()
    rng = random.Random(11)
    kills = 0
    for _ in range(3):
        before = _journal_lines(layout)
        target = before + rng.randint(1, max(2, (records.num_rows - before) // 3))
        process = _start(layout)
        while process.poll() is None and _journal_lines(layout) < target:
            time.sleep(0.005)
        if process.poll() is not None:
            break  # finished before the kill moment
        workers = _children(process.pid)
        process.kill()  # SIGKILL: no cleanup of any kind
        process.wait()
        kills += 1
        assert not layout.manifest_file(KEYWORD).exists(), "the merge happens only at the end of a run"
        deadline = time.monotonic() + 5
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_alive(w) for w in workers), "image workers outlive a killed download"
    assert kills >= 2
    finished = _start(layout)
    output = finished.communicate(timeout=120)[0].decode()
    assert finished.returncode in (0, 1), output  # 1: some photos failed (tried again next run)

    # Same files with the same hashes, no temp files, same outcome for every photo.
    assert stored_files(layout, KEYWORD) == stored_files(reference, KEYWORD)
    got, want = manifest_rows(layout, KEYWORD), manifest_rows(reference, KEYWORD)
    assert {i: (r["status"], r["path"], r["sha256"]) for i, r in got.items()} == {
        i: (r["status"], r["path"], r["sha256"]) for i, r in want.items()
    }
    assert sorted(p.name for p in layout.manifest_dir(KEYWORD).iterdir()) == [
        ".lock",
        "_contact_sheet.jpg",
        "manifest.parquet",
    ]
    check_against_truth(sim, layout, KEYWORD, records, per_shard=PER_SHARD)

    # Nothing fetched twice except what was in flight at a kill.
    fetched = Counter(sim.stats.snapshot()["static_by_path"])
    refetched = {path: count for path, count in fetched.items() if count > 1}
    assert max(fetched.values()) <= 1 + kills
    assert len(refetched) <= kills * (FETCHERS + 2), refetched


@pytest.mark.slow
def test_ctrl_c_twice_then_a_rerun_ends_like_an_uninterrupted_run(sim, harvested, tmp_path):
    """Ctrl-C ends a run through an exception, not a kill: what it did is merged at once (the catalog sees it).
    Its photos settled without a file give up their planned places, so later photos may land in other folders
    than in an uninterrupted run, but every photo ends with the same outcome and bytes, stored once, and no
    folder past its limit (a file stored but not journaled when the run ended goes when its photo is stored
    anew)."""
    records = harvested(KEYWORD)
    per_shard = 2  # many folder boundaries: any shift shows
    reference = DataLayout.at(tmp_path / "reference")
    download_keyword(reference, KEYWORD, records, DownloadOptions(files_per_shard=per_shard))

    layout = DataLayout.at(tmp_path / "interrupted")
    layout.records_file(KEYWORD).parent.mkdir(parents=True)
    pq.write_table(records, layout.records_file(KEYWORD))
    for share in (0.2, 0.5):
        target = len(load_rows(layout, KEYWORD)) + int(records.num_rows * share)
        process = _start(layout, per_shard)
        while process.poll() is None and len(load_rows(layout, KEYWORD)) < target:
            time.sleep(0.005)
        assert process.poll() is None, "the run ended before the interrupt"
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends: the whole process group
        process.communicate(timeout=60)
        assert not journal_file(layout, KEYWORD).exists(), "an interrupted run merges what it did"
    finished = _start(layout, per_shard)
    output = finished.communicate(timeout=120)[0].decode()
    assert finished.returncode in (0, 1), output

    got, want = manifest_rows(layout, KEYWORD), manifest_rows(reference, KEYWORD)
    assert {i: (r["status"], r["sha256"]) for i, r in got.items()} == {
        i: (r["status"], r["sha256"]) for i, r in want.items()
    }
    files = sorted(layout.relative(path) for path in layout.images_dir(KEYWORD).rglob("*.jpg"))
    assert files == sorted(r["path"] for r in got.values() if r["status"] == "ok")  # one file per stored photo
    assert max(Counter(Path(f).parent for f in files).values()) <= per_shard
    check_against_truth(sim, reference, KEYWORD, records, per_shard=per_shard)  # the outcomes the truth expects


def test_sigkill_while_rewriting_metadata_leaves_old_or_new_files_and_a_rerun_finishes(sim, harvested, tmp_path):
    records = harvested(KEYWORD)
    layout = DataLayout.at(tmp_path / "restamped")
    download_keyword(layout, KEYWORD, records, DownloadOptions(files_per_shard=PER_SHARD))
    stored = {i: r for i, r in manifest_rows(layout, KEYWORD).items() if r["status"] == "ok"}
    # Every title changed on Flickr: the next run rewrites every stored file's metadata.
    by_id = {r["photo_id"]: r for r in _retitle(layout, records).to_pylist()}
    old, new = {}, {}
    for photo_id, row in stored.items():
        data = layout.resolve_relative(row["path"]).read_bytes()
        old[photo_id] = hashlib.sha256(data).hexdigest()
        new[photo_id] = hashlib.sha256(restamp(data, embedded_metadata(by_id[photo_id]))).hexdigest()
    sim.stats.reset()

    process = _start(layout)
    while process.poll() is None and _journal_lines(layout) < len(stored) // 4:
        time.sleep(0.001)
    killed = process.poll() is None
    process.kill()
    process.wait()
    for photo_id, row in stored.items():  # each file whole: the old one or the new one
        assert file_sha256(layout.resolve_relative(row["path"])) in (old[photo_id], new[photo_id])
    finished = _start(layout)
    output = finished.communicate(timeout=120)[0].decode()
    assert finished.returncode == 0, output

    after = manifest_rows(layout, KEYWORD)
    for photo_id, row in stored.items():
        assert after[photo_id]["sha256"] == new[photo_id] == file_sha256(layout.resolve_relative(row["path"]))
    assert sim.stats.snapshot()["static_requests"] == 0, "nothing fetched again"
    assert killed, "the run ended before the kill moment"


def test_a_full_disk_while_rewriting_metadata_stops_the_run_naming_it(sim, harvested, tmp_path):
    records = harvested(KEYWORD)
    layout = DataLayout.at(tmp_path / "full")
    download_keyword(layout, KEYWORD, records, DownloadOptions(files_per_shard=PER_SHARD))
    before = {i: r["sha256"] for i, r in manifest_rows(layout, KEYWORD).items() if r["status"] == "ok"}
    _retitle(layout, records)

    full = _start(layout, file_size_limit=100_000)  # room for the journal and manifest, not a rewritten image
    output = full.communicate(timeout=120)[0].decode()
    assert full.returncode == 3, output[-2000:]  # the CLI's "no room" code, at once, not a retried OSError
    assert output.strip().splitlines()[-1].startswith("error: no room to store images under "), output[-2000:]
    for photo_id, row in manifest_rows(layout, KEYWORD).items():  # every file whole, as before
        if photo_id in before:
            assert file_sha256(layout.resolve_relative(row["path"])) == before[photo_id]


def test_a_new_image_host_alone_rewrites_no_file(sim, harvested, tmp_path):
    """URLs whose host changed (a new static host; here a simulator on another name) show the same pictures."""
    records = harvested(KEYWORD)
    layout = DataLayout.at(tmp_path / "host")
    download_keyword(layout, KEYWORD, records, DownloadOptions(files_per_shard=PER_SHARD))
    before = manifest_rows(layout, KEYWORD)
    moved = records
    for name in ("url_l", "url_o"):
        urls = [url and url.replace("//127.0.0.1:", "//localhost:") for url in records[name].to_pylist()]
        moved = moved.set_column(moved.schema.get_field_index(name), name, pa.array(urls, pa.string()))
    layout.records_file(KEYWORD).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(moved, layout.records_file(KEYWORD))
    result = download_keyword(layout, KEYWORD, layout.records_file(KEYWORD), DownloadOptions(files_per_shard=PER_SHARD))
    assert (result.restamped, result.to_do) == (0, 0) and manifest_rows(layout, KEYWORD) == before
