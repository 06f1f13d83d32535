"""The download engine end to end: real HTTP against the simulator, real files and manifests read back."""

import io
import itertools
import os
import signal
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import requests
from PIL import Image, ImageDraw

from flickr_assets.download import DownloadOptions, download_keyword
from flickr_assets.download.classify import is_placeholder_body
from flickr_assets.download.photo import Job
from flickr_assets.download.workers import WorkerPool
from flickr_assets.simulator import TEST_PATTERN, Faults
from flickr_assets.simulator.images import placeholder_png
from flickr_assets.storage.layout import DataLayout
from flickr_assets.storage.manifest import journal_file
from flickr_assets.storage.validate import manifest_problems
from flickr_assets_tests.download.conftest import check_against_truth, manifest_rows, stored_files

FAST = {"backoff": 0.05, "backoff_max": 0.5}


def static_counts(sim) -> Counter:
    return Counter(sim.stats.snapshot()["static_by_path"])


def test_clean_download_matches_the_ground_truth_and_a_rerun_fetches_nothing(sim, harvested, tmp_path):
    records = harvested("stonehenge")
    layout = DataLayout.at(tmp_path)
    progress = []
    result = download_keyword(layout, "stonehenge", records, DownloadOptions(files_per_shard=40), progress.append)

    statuses = check_against_truth(sim, layout, "stonehenge", records, per_shard=40)
    assert statuses["ok"] > 50 and statuses["too_small"] > 0
    assert result.counts == dict(statuses) and result.done == result.to_do == result.records == records.num_rows
    assert manifest_problems(layout, "stonehenge") == []
    assert progress and progress[-1].done == progress[-1].total == result.to_do
    # Nothing fetched twice; photos the record already shows to be too small were not fetched at all.
    fetched = static_counts(sim)
    assert fetched and max(fetched.values()) == 1
    rows = manifest_rows(layout, "stonehenge")
    unfetched = [r for r in rows.values() if r["status"] == "too_small" and r["bytes_fetched"] == 0]
    assert unfetched and all(r["attempts"] == 0 for r in unfetched)
    # The contact sheet is a real JPEG beside the manifest.
    with Image.open(result.contact_sheet) as sheet:
        assert sheet.format == "JPEG" and sheet.width > 300
    assert not journal_file(layout, "stonehenge").exists()

    before = stored_files(layout, "stonehenge")
    sim.stats.reset()
    progress.clear()
    again = download_keyword(layout, "stonehenge", records, DownloadOptions(files_per_shard=40), progress.append)
    assert again.to_do == 0 and again.requests == 0 and static_counts(sim) == Counter()
    assert progress == []  # no "0/0 (100%) 0.0 images/s" line for a run with nothing to do
    assert stored_files(layout, "stonehenge") == before and again.counts == result.counts


@pytest.mark.slow
def test_faults_end_in_the_same_state_as_the_ground_truth(sim, harvested, tmp_path):
    records = harvested("stonehenge")
    layout = DataLayout.at(tmp_path)
    sim.faults = Faults(
        seed=3, static_5xx=0.1, truncate=0.05, html=0.02, drop=0.02, static_429=0.05, corrupt=0.02, retry_after=1
    )
    options = DownloadOptions(files_per_shard=50, **FAST)
    results = [download_keyword(layout, "stonehenge", records, options)]
    # Transient failures that outlast one run's attempts are retried by the next run, never final ones.
    while results[-1].counts.get("failed") and len(results) < 4:
        results.append(download_keyword(layout, "stonehenge", records, options))
    statuses = check_against_truth(sim, layout, "stonehenge", records, per_shard=50)
    assert statuses["ok"] > 50
    faults = sim.stats.snapshot()["faults"]
    assert all(faults[kind] > 0 for kind in ("static_5xx", "truncate", "html", "drop", "static_429", "corrupt"))
    no_url = sum(sim.truth.download(i).source is None for i in records["photo_id"].to_pylist())  # never asked for
    assert no_url > 0
    assert results[0].requests > statuses["ok"] + statuses["unavailable"] - no_url + sum(faults.values()) * 0.9
    assert manifest_problems(layout, "stonehenge") == []


@pytest.mark.slow
def test_a_host_throttling_originals_is_met_with_wider_spacing(sim, harvested, tmp_path):
    records = harvested("stonehenge")
    originals = sum(sim.truth.download(i).source == "original" for i in records["photo_id"].to_pylist())
    sim.faults = Faults(originals_per_second=2.0, retry_after=None)  # as Flickr's: 429s that say nothing more
    layout = DataLayout.at(tmp_path)
    result = download_keyword(layout, "stonehenge", records, DownloadOptions(**FAST))
    check_against_truth(sim, layout, "stonehenge", records, per_shard=1000)
    throttled = sim.stats.snapshot()["faults"]["original_429"]
    assert originals >= 20 and 0 < throttled <= originals // 4  # 2 in flight at 0.02 s spacing got ~20
    assert not result.run_counts.get("failed")


def test_bad_inputs_get_their_true_status(sim, harvested, tmp_path):
    records = harvested(TEST_PATTERN)
    layout = DataLayout.at(tmp_path)
    result = download_keyword(layout, TEST_PATTERN, records, DownloadOptions(**FAST))
    statuses = check_against_truth(sim, layout, TEST_PATTERN, records, per_shard=1000)
    assert statuses["invalid"] > 0 and statuses["ok"] > 0
    rows = manifest_rows(layout, TEST_PATTERN)
    kinds = {sim.truth.download(i).zoo for i in rows}
    assert {"zero_bytes", "bomb", "png_as_jpg", "gif_as_jpg", "cmyk", "large_gone"} <= kinds
    # A Large that answers the placeholder is not the end: the Original is stored (the seed's fallback).
    gone = next(row for i, row in rows.items() if sim.truth.download(i).zoo == "large_gone")
    assert (gone["status"], gone["source"], gone["url"].endswith("_o.jpg")) == ("ok", "original", True)
    assert gone["reason"].startswith("Large: redirected to the photo_unavailable placeholder") and gone["attempts"] == 2
    # An Original served as PNG (originalformat "png") is downsampled to 1024 and stored as JPEG.
    png = next(row for i, row in rows.items() if sim.truth.download(i).zoo == "png_original")
    assert (png["status"], png["source"], png["url"].endswith("_o.png")) == ("ok", "original", True)
    assert (png["original_width"], png["original_height"], png["stored_width"], png["stored_height"]) == (
        1600,
        1200,
        1024,
        768,
    )
    with Image.open(layout.root / png["path"]) as stored:
        assert (stored.format, stored.size) == ("JPEG", (1024, 768))
    # An image that can never be decoded is tried a few times, then final (not retried by the next run).
    invalid = [row for row in rows.values() if row["status"] == "invalid"]
    assert all(row["attempts"] == 3 and row["reason"].startswith("undecodable image") for row in invalid)
    assert download_keyword(layout, TEST_PATTERN, records, DownloadOptions()).to_do == 0
    assert result.counts == dict(statuses)


def test_placeholder_is_recognised_by_redirect_and_by_its_bytes(sim, harvested, tmp_path):
    records = harvested("colosseum")
    victims = [i for i in records["photo_id"].to_pylist() if sim.truth.download(i).status == "ok"][:3]
    for photo_id in victims:
        sim.delete(photo_id)
    layout = DataLayout.at(tmp_path)
    download_keyword(layout, "colosseum", records.filter(pc.is_in(records["photo_id"], pa.array(victims))))
    rows = manifest_rows(layout, "colosseum")
    assert {rows[i]["status"] for i in victims} == {"unavailable"}
    assert all("photo_unavailable" in rows[i]["reason"] and rows[i]["path"] is None for i in victims)
    assert not any(path.endswith("unavailable.png") for path in static_counts(sim)), "placeholder never fetched"
    assert stored_files(layout, "colosseum") == {}
    # Served directly with 200, the placeholder is still known by its bytes; real PNG photos are not.
    assert is_placeholder_body(placeholder_png(True)) and is_placeholder_body(placeholder_png(False))
    zoo = harvested(TEST_PATTERN).to_pylist()
    png_photo = next(r for r in zoo if sim.truth.download(r["photo_id"]).zoo == "png_as_jpg")
    body = requests.get(png_photo["url_l"], timeout=10).content
    assert body.startswith(b"\x89PNG") and not is_placeholder_body(body)
    # A scan of a page at a placeholder size is as flat, but white.
    page = Image.new("L", (800, 600), 255)
    draw = ImageDraw.Draw(page)
    draw.rectangle((40, 40, 760, 560), outline=0, width=3)
    for y in range(80, 520, 24):
        draw.line((60, y, 700, y), fill=40, width=2)
    scan = io.BytesIO()
    page.save(scan, "PNG")
    assert not is_placeholder_body(scan.getvalue())


def test_photo_stored_for_another_keyword_is_linked_not_fetched(sim, harvested, tmp_path):
    records = harvested("colosseum")
    layout = DataLayout.at(tmp_path)
    first = download_keyword(layout, "colosseum", records)
    shared = records.slice(0, 30).set_column(1, "keyword", pa.array(["roman ruins"] * 30))
    sim.stats.reset()
    second = download_keyword(layout, "roman ruins", shared)
    rows_a, rows_b = manifest_rows(layout, "colosseum"), manifest_rows(layout, "roman ruins")
    linked = [i for i, row in rows_b.items() if row["status"] == "ok"]
    assert linked and second.linked == len(linked) and first.counts["ok"] >= len(linked)
    fetched = static_counts(sim)
    for photo_id in linked:
        a, b = (layout.resolve_relative(rows[photo_id]["path"]) for rows in (rows_a, rows_b))
        assert os.stat(a).st_ino == os.stat(b).st_ino and rows_a[photo_id]["sha256"] == rows_b[photo_id]["sha256"]
        assert rows_b[photo_id]["reason"] == "linked from keyword=colosseum"
        assert not any(f"/{photo_id}_" in path for path in fetched)
    assert manifest_problems(layout, "roman ruins") == []


def test_the_same_photo_stored_for_two_keywords_is_the_same_bytes(sim, harvested, tmp_path):
    records = harvested("colosseum").slice(0, 12)
    relabelled = records.set_column(1, "keyword", pa.array(["roman ruins"] * records.num_rows))
    one, two = DataLayout.at(tmp_path / "one"), DataLayout.at(tmp_path / "two")  # apart: nothing to link
    download_keyword(one, "colosseum", records)
    download_keyword(two, "roman ruins", relabelled)
    rows_one, rows_two = manifest_rows(one, "colosseum"), manifest_rows(two, "roman ruins")
    stored = [i for i, row in rows_one.items() if row["status"] == "ok"]
    assert stored and all(rows_one[i]["sha256"] == rows_two[i]["sha256"] for i in stored)
    with Image.open(one.resolve_relative(rows_one[stored[0]]["path"])) as image:
        comment = image.info["comment"].decode()
    assert f'"photo_id":{stored[0]}' in comment and '"keyword"' not in comment


def test_missing_files_are_fetched_again_and_failed_rows_retried(sim, harvested, tmp_path):
    records = harvested("colosseum")
    layout = DataLayout.at(tmp_path)
    download_keyword(layout, "colosseum", records)
    rows = manifest_rows(layout, "colosseum")
    gone = next(row for row in rows.values() if row["status"] == "ok")
    failed = [row["photo_id"] for row in rows.values() if row["status"] == "failed"]
    layout.resolve_relative(gone["path"]).unlink()
    sim.stats.reset()
    again = download_keyword(layout, "colosseum", records)
    assert again.to_do == 1 + len(failed)
    assert manifest_rows(layout, "colosseum")[gone["photo_id"]]["sha256"] == gone["sha256"]
    assert sum(1 for path in static_counts(sim) if f"/{gone['photo_id']}_" in path) == 1


def test_should_stop_ends_cleanly_and_the_next_run_finishes(sim, harvested, tmp_path):
    records = harvested("stonehenge")
    layout = DataLayout.at(tmp_path)
    checks = itertools.count()
    stopped = download_keyword(
        layout, "stonehenge", records, DownloadOptions(fetchers=4), should_stop=lambda: next(checks) >= 2
    )
    rows = manifest_rows(layout, "stonehenge")  # what a stopped run did is merged at once
    assert stopped.stopped and 0 < len(rows) < records.num_rows and stopped.done == len(rows)
    assert not journal_file(layout, "stonehenge").exists()
    rest = download_keyword(layout, "stonehenge", records)
    final = sum(1 for row in rows.values() if row["status"] != "failed")
    assert not rest.stopped and rest.to_do == records.num_rows - final
    check_against_truth(sim, layout, "stonehenge", records, per_shard=1000)


def test_bad_records_and_options_fail_with_a_clear_message(tmp_path):
    layout = DataLayout.at(tmp_path)
    with pytest.raises(ValueError, match=r"records file .*photos\.parquet does not exist"):
        download_keyword(layout, "colosseum", layout.records_file("colosseum"))
    with pytest.raises(ValueError, match="keyword is empty"):
        download_keyword(layout, " ", pa.table({"photo_id": [1]}))


def _worker_pids() -> list[int]:
    """The download's worker processes: children of this process's children (the forkserver's)."""
    found = []
    for child in Path(f"/proc/{os.getpid()}/task").glob("*/children"):
        for pid in child.read_text().split():
            for grandchild in Path(f"/proc/{pid}/task").glob("*/children"):
                found += [int(p) for p in grandchild.read_text().split()]
    return found


def test_jobs_sent_to_a_worker_that_just_died_reach_its_replacement(sim, harvested, tmp_path):
    """The race of a worker dying between two looks of the download process: its job pipe is broken before
    its death is seen. Those jobs wait for the replacement; no error, no crash counted against them."""
    records = harvested("stonehenge").to_pylist()[:12]
    options = DownloadOptions(workers=2, fetchers=2, **FAST)
    pool = WorkerPool(options)
    try:
        victim = pool._workers[0].process
        os.kill(victim.pid, signal.SIGKILL)
        victim.join(10)
        jobs = [
            Job(row["photo_id"], "large", row["url_l"], str(tmp_path / f"{n}.jpg"), f"{n}.jpg", {"title": "t"})
            for n, row in enumerate(records)
            if row["url_l"]
        ]
        finished: list = []
        for job in jobs:
            while not pool.has_room():
                finished += pool.collect(timeout=1)
            pool.submit(job)  # the first ones go to the dead worker (least busy): its pipe is broken
        while pool.in_flight:
            finished += pool.collect(timeout=5)
    finally:
        pool.close()
    rows = {item.photo_id: item.row for item in finished}
    assert sorted(rows) == sorted(job.photo_id for job in jobs)
    assert all(row is not None and row["status"] in ("ok", "too_small", "unavailable") for row in rows.values())
    assert not any("crashed" in (row.get("reason") or "") for row in rows.values())


def test_a_worker_killed_mid_run_is_replaced_and_its_photos_handed_out_again(sim, harvested, tmp_path):
    records = harvested("stonehenge")
    layout = DataLayout.at(tmp_path)
    killed: list[int] = []

    def kill_one_worker(progress) -> None:
        if not killed and progress.done >= 30:
            victims = _worker_pids()
            assert victims, "the download runs worker processes"
            os.kill(victims[0], signal.SIGKILL)
            killed.append(victims[0])

    options = DownloadOptions(files_per_shard=40, progress_every=0.01, **FAST)
    result = download_keyword(layout, "stonehenge", records, options, kill_one_worker)
    assert killed and result.done == records.num_rows and not result.run_counts.get("failed")
    check_against_truth(sim, layout, "stonehenge", records, per_shard=40)
    assert not list(layout.images_dir("stonehenge").rglob(".*.tmp"))


def test_photos_leaving_the_records_leave_the_manifest_and_come_back_without_a_fetch(sim, harvested, tmp_path):
    records = harvested("stonehenge")
    layout = DataLayout.at(tmp_path)
    download_keyword(layout, "stonehenge", records, DownloadOptions())
    first = manifest_rows(layout, "stonehenge")
    files = stored_files(layout, "stonehenge")

    # The keyword's query changed and a full refresh kept a third of its photos.
    fewer = records.slice(0, records.num_rows // 3)
    result = download_keyword(layout, "stonehenge", fewer, DownloadOptions())
    kept = set(fewer["photo_id"].to_pylist())
    assert set(manifest_rows(layout, "stonehenge")) == kept  # one row per record
    assert sum(result.counts.values()) == len(kept) and result.done == 0
    retired = pq.read_table(layout.retired_rows_file("stonehenge")).to_pylist()
    assert {row["photo_id"]: row for row in retired} == {k: v for k, v in first.items() if k not in kept}
    assert stored_files(layout, "stonehenge") == files  # nothing deleted
    assert manifest_problems(layout, "stonehenge") == []
    assert result.contact_sheet == layout.contact_sheet_file("stonehenge") and result.contact_sheet.exists()

    # A query that matches nothing now: no photo left to preview, so no contact sheet of photos gone.
    result = download_keyword(layout, "stonehenge", records.slice(0, 0), DownloadOptions())
    assert result.counts == {} and result.contact_sheet is None
    assert not layout.contact_sheet_file("stonehenge").exists()

    # The old query is back: every photo returns to the manifest, none is fetched again.
    sim.stats.reset()
    result = download_keyword(layout, "stonehenge", records, DownloadOptions())
    assert manifest_rows(layout, "stonehenge") == first
    assert result.done == 0 and sim.stats.snapshot()["static_requests"] == 0
    assert not layout.retired_rows_file("stonehenge").exists() and result.contact_sheet.exists()


def test_a_photo_that_cannot_be_written_fails_alone_and_says_why(sim, harvested, tmp_path):
    records = [row for row in harvested("stonehenge").to_pylist() if row["url_l"]][:4]
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    finished: list = []
    pool = WorkerPool(DownloadOptions(workers=1, fetchers=2, **FAST))
    try:
        for n, row in enumerate(records):
            # The first photo's folder cannot exist (its parent is a file).
            folder = blocker if n == 0 else tmp_path
            while not pool.has_room():
                finished += pool.collect(timeout=5)
            pool.submit(Job(row["photo_id"], "large", row["url_l"], str(folder / f"{n}.jpg"), f"{n}.jpg", {}))
        while pool.in_flight:
            finished += pool.collect(timeout=5)
    finally:
        pool.close()
    rows = {item.photo_id: item.row for item in finished}
    assert sorted(rows) == sorted(row["photo_id"] for row in records)  # the run went on
    first = rows[records[0]["photo_id"]]
    assert first["status"] == "failed" and first["reason"].startswith("processing error: NotADirectoryError: ")
    assert all(rows[row["photo_id"]]["status"] != "failed" for row in records[1:])
