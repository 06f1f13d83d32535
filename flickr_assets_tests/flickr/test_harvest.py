"""Harvests over real HTTP against the simulator, read back from the Parquet written: recall, duplicates,
faults, incremental runs, interrupted runs, progress."""

import math
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pyarrow.parquet as pq
import pytest

from flickr_assets.flickr.client import FlickrClient
from flickr_assets.flickr.errors import PermanentFlickrError
from flickr_assets.flickr.harvest_keyword import harvest_keyword
from flickr_assets.flickr.query import SearchQuery
from flickr_assets.flickr.ratelimit import ApiBudget
from flickr_assets.simulator import DEMO_API_KEY, DEMO_API_SECRET, Faults
from flickr_assets.storage.layout import DataLayout
from flickr_assets.storage.locks import LOCK_NAME, KeywordBusy, keyword_lock
from flickr_assets.storage.validate import records_problems

FAULTS = Faults(seed=11, rest_5xx=0.10, rest_429=0.05, api_error=0.05, slow=0.05, slow_seconds=0.3, retry_after=1)


def make_client(sim, layout: DataLayout, **options) -> FlickrClient:
    budget = ApiBudget(layout.state_dir, calls_per_hour=3_600_000)
    options.setdefault("backoff_base", 0.02)
    options.setdefault("max_attempts", 10)
    return FlickrClient(DEMO_API_KEY, DEMO_API_SECRET, rest_url=sim.rest_url, limiter=budget, **options)


def stored_ids(layout: DataLayout, keyword: str) -> list[int]:
    return pq.read_table(layout.records_file(keyword), columns=["photo_id"]).column(0).to_pylist()


def truth(sim, query: SearchQuery, end: datetime) -> set[int]:
    """Every photo the query matches that a search can show (``Faults.hidden`` ones never are)."""
    ids = sim.truth.search_ids(text=query.keyword, has_geo=query.has_geo, max_upload_date=int(end.timestamp()))
    return {i for i in ids if not sim.faults.hides(i)}


def check_complete(sim, layout: DataLayout, query: SearchQuery, result) -> list[int]:
    ids = stored_ids(layout, query.keyword)
    expected = truth(sim, query, result.end)
    assert len(ids) == len(set(ids)), "duplicate photo_id"
    assert set(ids) == expected, f"missing {len(expected - set(ids))}, unexpected {len(set(ids) - expected)}"
    assert result.rows == len(ids) and records_problems(layout, query.keyword) == []
    return ids


@pytest.mark.parametrize(
    ("keyword", "has_geo"),
    [("colosseum", True), ("stonehenge", None), ("golden gate bridge", False), ("eiffel tower", True)],
)
def test_recall_is_complete(sim, tmp_path, keyword, has_geo):
    layout = DataLayout.at(tmp_path)
    query = SearchQuery(keyword=keyword, has_geo=has_geo)
    result = harvest_keyword(layout, make_client(sim, layout), query)
    ids = check_complete(sim, layout, query, result)
    assert result.new_rows == len(ids) and not result.incremental
    assert result.calls <= math.ceil(len(ids) / query.page_size) + 2
    assert result.calls == sim.stats.snapshot()["rest_by_method"]["flickr.photos.search"]


def test_records_hold_the_photo_fields(sim, tmp_path):
    layout = DataLayout.at(tmp_path)
    query = SearchQuery(keyword="golden gate bridge", has_geo=None)
    harvest_keyword(layout, make_client(sim, layout), query)
    table = pq.read_table(layout.records_file(query.keyword))
    rows = table.to_pylist()
    geo = [r for r in rows if r["latitude"] is not None]
    assert 0 < len(geo) < len(rows)  # has_geo=any: both kinds, and 0,0 became null
    assert all(r["accuracy"] > 0 and -90 <= r["latitude"] <= 90 for r in geo)
    assert all(r["keyword"] == "golden gate bridge" and r["date_upload"].tzinfo is not None for r in rows)
    assert any(r["url_l"] for r in rows) and any(r["url_o"] and r["original_secret"] for r in rows)
    assert any(r["tags"] for r in rows) and all(isinstance(r["tags"], list) for r in rows)
    assert all(r["first_seen"] == r["last_seen"] for r in rows)
    coverage = pq.read_table(layout.coverage_file(query.keyword)).to_pylist()
    assert sum(c["new_rows"] for c in coverage) == len(rows)
    assert coverage[-1]["reported_total"] == coverage[-1]["rows_received"]


@pytest.mark.parametrize(("keyword", "has_geo"), [("mount fuji", None), ("mount fuji", True)])
def test_recall_is_complete_with_faults_on(sim, tmp_path, keyword, has_geo):
    sim.faults = FAULTS
    layout = DataLayout.at(tmp_path)
    query = SearchQuery(keyword=keyword, has_geo=has_geo)
    client = make_client(sim, layout)
    result = harvest_keyword(layout, client, query)
    check_complete(sim, layout, query, result)
    faults = sim.stats.snapshot()["faults"]
    assert result.retries > 0 and sum(faults.values()) > 0
    assert result.http_requests == result.calls + result.retries
    assert 0 < result.backoff < result.elapsed  # the time the retries cost is reported


@pytest.mark.parametrize("rank", [0, 1])
def test_recall_is_complete_when_flickr_filters_photos_out_of_pages(sim, tmp_path, rank):
    # Some photos count in total and paging but never show: pages come back short though more follow, even
    # pages that lie wholly inside one upload second holding more than a page (the universe's upload times
    # follow the day it is built, so the busiest seconds are looked up, not written down).
    busiest, photos = sim.truth.busiest_upload_seconds(2, text="new york", has_geo=True)[rank]
    assert photos > 500
    sim.faults = Faults(seed=4, hidden=0.02)
    layout = DataLayout.at(tmp_path)
    day = timedelta(days=1)
    middle = datetime.fromtimestamp(busiest, UTC)
    query = SearchQuery(keyword="new york", has_geo=True, min_upload=middle - day, max_upload=middle + day)
    result = harvest_keyword(layout, make_client(sim, layout), query)
    ids = set(stored_ids(layout, "new york"))
    everything = sim.truth.search_ids(
        text="new york", has_geo=True, min_upload_date=busiest - 86_400, max_upload_date=busiest + 86_400
    )
    assert ids == {i for i in everything if not sim.faults.hides(i)}
    assert len(everything) - len(ids) >= 10 and result.split_seconds == 1
    assert result.calls <= 2 * math.ceil(len(ids) / query.page_size) + 10


@pytest.mark.slow
def test_recall_at_a_hundred_thousand_photos(sim, tmp_path):
    layout = DataLayout.at(tmp_path)
    query = SearchQuery(keyword="new york", has_geo=None)  # 120,000 photos, incl. seconds holding > 500
    result = harvest_keyword(layout, make_client(sim, layout), query)
    ids = check_complete(sim, layout, query, result)
    assert len(ids) >= 120_000 and result.split_seconds >= 1
    # Ties come back in any order, so whole seconds must fit a page: within 5 % of the fewest calls any walk
    # over upload-time windows needs on this data (the seconds holding > 500 photos cost the rest).
    fewest = sim.truth.fewest_window_calls(text="new york", max_upload_date=int(result.end.timestamp()))
    assert fewest <= result.calls <= 1.05 * fewest


def test_second_run_fetches_only_new_uploads(private_sim, tmp_path):
    sim = private_sim  # uploads change the world: not on the shared simulator
    layout = DataLayout.at(tmp_path)
    query = SearchQuery(keyword="stonehenge", has_geo=None)
    client = make_client(sim, layout)
    first = harvest_keyword(layout, client, query)
    before = set(stored_ids(layout, query.keyword))
    first_seen = pq.read_table(layout.records_file(query.keyword)).to_pylist()[0]["first_seen"]

    new_ids = sim.upload("stonehenge", 25)
    sim.stats.reset()
    later = first.end + timedelta(seconds=5)
    second = harvest_keyword(layout, client, query, now=later)
    assert second.incremental and second.start == first.end - timedelta(hours=24)
    assert second.calls <= 2 and sim.stats.snapshot()["rest_calls"] == second.calls
    assert second.new_rows == 25
    ids = check_complete(sim, layout, query, second)
    assert set(ids) == before | set(new_ids)
    rows = {r["photo_id"]: r for r in pq.read_table(layout.records_file(query.keyword)).to_pylist()}
    kept = rows[min(before)]
    assert kept["first_seen"] == first_seen and kept["last_seen"] == first_seen  # outside the overlap: untouched

    third = harvest_keyword(layout, client, query, full_refresh=True, now=later + timedelta(seconds=5))
    assert not third.incremental and third.new_rows == 0 and third.rows == len(ids)


def test_a_photo_missed_by_one_full_walk_is_kept_and_by_two_in_a_row_dropped(private_sim, tmp_path):
    """Flickr's search may leave a photo out of one walk: the weekly full walk does not take that as proof that
    it is gone (it would leave records and catalog for a week); missed again at the next full walk, it is."""
    sim, layout = private_sim, DataLayout.at(tmp_path)
    client = make_client(sim, layout)
    query = SearchQuery(keyword="stonehenge", has_geo=None)
    first = harvest_keyword(layout, client, query)
    everything = set(stored_ids(layout, query.keyword))

    sim.faults = Faults(seed=4, hidden=0.1)  # this night's searches leave some photos out
    missed = {i for i in everything if sim.faults.hides(i)}
    assert missed
    second = harvest_keyword(layout, client, query, full_refresh=True, now=first.end + timedelta(hours=1))
    assert set(stored_ids(layout, query.keyword)) == everything  # kept, with their last sighting
    assert (second.kept_unseen, second.dropped_rows) == (len(missed), 0)
    incremental = harvest_keyword(layout, client, query, now=second.end + timedelta(hours=1))
    assert incremental.incremental and set(stored_ids(layout, query.keyword)) == everything

    third = harvest_keyword(layout, client, query, full_refresh=True, now=incremental.end + timedelta(hours=1))
    assert set(stored_ids(layout, query.keyword)) == everything - missed  # missed twice in a row: gone
    assert (third.kept_unseen, third.dropped_rows) == (0, len(missed))
    assert f"{len(missed)} gone" in str(third)


def test_changed_query_is_harvested_in_full(sim, tmp_path):
    layout = DataLayout.at(tmp_path)
    client = make_client(sim, layout)
    harvest_keyword(layout, client, SearchQuery(keyword="colosseum", has_geo=True))
    wider = SearchQuery(keyword="colosseum", has_geo=None)
    result = harvest_keyword(layout, client, wider)
    assert not result.incremental
    check_complete(sim, layout, wider, result)


def test_invalid_key_fails_at_once_and_writes_nothing(sim, tmp_path):
    layout = DataLayout.at(tmp_path)
    client = FlickrClient("0" * 32, "0" * 16, rest_url=sim.rest_url, backoff_base=0.01)
    with pytest.raises(PermanentFlickrError, match="FLICKR_API_KEY"):
        harvest_keyword(layout, client, SearchQuery(keyword="colosseum"))
    assert sim.stats.snapshot()["rest_calls"] == 1
    assert not layout.records_file("colosseum").exists()
    assert [path.name for path in layout.records_dir("colosseum").glob(".*")] == [LOCK_NAME]  # no temp file


class Interrupt(Exception):
    pass


def test_interrupted_run_keeps_the_old_file_and_the_next_run_completes(sim, tmp_path):
    layout = DataLayout.at(tmp_path)
    client = make_client(sim, layout)
    query = SearchQuery(keyword="eiffel tower", has_geo=None)
    old_query = SearchQuery(keyword="eiffel tower", has_geo=None, max_upload=datetime(2012, 1, 1, tzinfo=UTC))
    harvest_keyword(layout, client, old_query)
    before = layout.records_file(query.keyword).read_bytes()

    def stop(progress):
        if progress.calls >= 2:
            raise Interrupt  # the process dies mid-harvest

    with pytest.raises(Interrupt):
        harvest_keyword(layout, client, query, full_refresh=True, on_progress=stop)
    assert layout.records_file(query.keyword).read_bytes() == before
    (layout.records_dir(query.keyword) / ".harvest.killed.tmp").write_bytes(b"partial")  # as a SIGKILL leaves

    result = harvest_keyword(layout, client, query)
    check_complete(sim, layout, query, result)
    assert not (layout.records_dir(query.keyword) / ".harvest.killed.tmp").exists()


@pytest.mark.slow
def test_progress_is_reported_at_least_every_ten_calls(sim, tmp_path):
    layout = DataLayout.at(tmp_path)
    reports = []
    result = harvest_keyword(
        layout, make_client(sim, layout), SearchQuery(keyword="mount fuji", has_geo=None), on_progress=reports.append
    )
    assert len(reports) >= result.calls // 10
    assert [r.calls for r in reports] == sorted(r.calls for r in reports)
    assert reports[-1].photos == result.unique_harvested and reports[-1].fraction == 1.0
    assert "mount fuji" in str(reports[0]) and "calls" in str(reports[0])


def test_a_second_harvest_of_the_keyword_is_refused_and_leaves_the_first_ones_files(sim, tmp_path):
    layout = DataLayout.at(tmp_path / "data")
    folder = layout.records_dir("colosseum")
    folder.mkdir(parents=True)
    scratch = folder / ".harvest.in-progress.tmp"  # the first harvest's scratch file, as RecordsWriter names them
    scratch.write_bytes(b"rows so far")
    busy = pytest.raises(KeywordBusy, match="'colosseum' is being harvested by another process")
    with keyword_lock(layout, "colosseum", "harvest"), busy:  # the first harvest is in progress
        harvest_keyword(layout, make_client(sim, layout), SearchQuery(keyword="colosseum"))
    assert scratch.read_bytes() == b"rows so far"
    assert sim.stats.snapshot()["rest_calls"] == 0  # refused before any call


KILLED_HARVEST = """
import sys
from flickr_assets.flickr.client import FlickrClient
from flickr_assets.flickr.harvest_keyword import harvest_keyword
from flickr_assets.flickr.query import SearchQuery
from flickr_assets.simulator import DEMO_API_KEY, DEMO_API_SECRET
from flickr_assets.storage.layout import DataLayout
client = FlickrClient(DEMO_API_KEY, DEMO_API_SECRET, rest_url=sys.argv[2])
harvest_keyword(DataLayout.at(sys.argv[1]), client, SearchQuery(keyword="mount fuji", has_geo=None))
"""


@pytest.mark.slow
def test_a_harvest_killed_after_a_checkpoint_goes_on_from_it(sim, tmp_path):
    layout = DataLayout.at(tmp_path / "data")
    query = SearchQuery(keyword="mount fuji", has_geo=None)  # 12,000 photos: ~30 calls, a checkpoint every 20
    sim.faults = Faults(slow=1.0, slow_seconds=0.3)  # slow enough to be killed on the way
    process = subprocess.Popen([sys.executable, "-c", KILLED_HARVEST, str(layout.root), sim.rest_url])
    try:
        deadline = time.monotonic() + 120
        while not layout.harvest_resume_file(query.keyword).exists():
            assert time.monotonic() < deadline and process.poll() is None, "no checkpoint before the end"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert layout.harvest_part_file(query.keyword, 1).exists() and not layout.records_file(query.keyword).exists()
    sim.faults = Faults()
    sim.stats.reset()
    result = harvest_keyword(layout, make_client(sim, layout), query)
    ids = check_complete(sim, layout, query, result)
    searches = sim.stats.snapshot()["rest_by_method"]["flickr.photos.search"]
    clean = DataLayout.at(tmp_path / "clean")
    whole = harvest_keyword(clean, make_client(sim, clean), query)
    assert len(ids) == whole.rows and searches == result.calls <= whole.calls - 18  # the first 20 not asked again
    assert not layout.harvest_resume_file(query.keyword).exists()
    assert not list(layout.records_dir(query.keyword).glob("_part-*"))
    coverage = pq.read_table(layout.coverage_file(query.keyword)).to_pylist()  # the killed run's windows too
    assert sum(window["new_rows"] for window in coverage) == len(ids)
    assert sum(window["calls"] for window in coverage) >= result.calls + 20


def test_a_checkpoint_of_another_walk_is_forgotten(sim, tmp_path):
    layout = DataLayout.at(tmp_path)
    query = SearchQuery(keyword="mount fuji", has_geo=None)

    def stop(progress):
        if progress.calls >= 25:
            raise Interrupt  # after the checkpoint at 20 calls

    with pytest.raises(Interrupt):
        harvest_keyword(layout, make_client(sim, layout), query, on_progress=stop)
    assert layout.harvest_part_file(query.keyword, 1).exists()
    # Geotagged only now: another query, so the rows gathered for the old one must not be merged in.
    geo = SearchQuery(keyword="mount fuji", has_geo=True)
    result = harvest_keyword(layout, make_client(sim, layout), geo)
    check_complete(sim, layout, geo, result)
    assert not list(layout.records_dir(query.keyword).glob("_part-*"))
