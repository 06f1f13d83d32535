"""Each kind of bad API answer the simulator plays, one at a time: the harvest retries and recovers, or, when
the answers never get better, fails with one clear line and leaves the existing records as they were."""

import pyarrow.parquet as pq
import pytest

from flickr_assets.flickr.client import FlickrClient
from flickr_assets.flickr.errors import TransientFlickrError
from flickr_assets.flickr.harvest_keyword import harvest_keyword
from flickr_assets.flickr.query import SearchQuery
from flickr_assets.simulator import DEMO_API_KEY, DEMO_API_SECRET, Faults
from flickr_assets.storage.layout import DataLayout

KEYWORD = "stonehenge"


def _client(sim, attempts: int = 12) -> FlickrClient:
    return FlickrClient(
        DEMO_API_KEY, DEMO_API_SECRET, rest_url=sim.rest_url, max_attempts=attempts, backoff_base=0.01, backoff_max=0.05
    )


@pytest.mark.parametrize(
    ("fault", "error_kinds"),
    [
        ("rest_5xx", {"http_500", "http_502", "http_503"}),
        ("rest_429", {"http_429"}),
        ("api_error", {"api_105", "api_201"}),
        ("drop", {"connection"}),
        ("bad_body", {"bad_body"}),  # an HTML page, or XML when JSON was asked
        ("garbled", {"bad_body"}),  # truncated JSON, wrong types, missing fields, absurd totals
    ],
)
def test_each_bad_answer_is_retried_until_the_harvest_is_complete(sim, tmp_path, fault, error_kinds):
    sim.faults = Faults(seed=3, retry_after=0, **{fault: 0.5})
    client = _client(sim)
    layout = DataLayout.at(tmp_path / "data")
    query = SearchQuery(keyword=KEYWORD, has_geo=None)
    for _ in range(3):  # several harvests, so the fault surely strikes
        harvest_keyword(layout, client, query, full_refresh=True)
    ids = pq.read_table(layout.records_file(KEYWORD), columns=["photo_id"])["photo_id"].to_pylist()
    assert sorted(ids) == sorted(sim.truth.search_ids(text=KEYWORD))
    assert sim.stats.snapshot()["faults"][fault] > 0
    assert set(client.stats.errors) & error_kinds, client.stats.errors


def test_answers_that_never_get_better_fail_in_one_line_and_keep_the_records(sim, tmp_path):
    layout = DataLayout.at(tmp_path / "data")
    query = SearchQuery(keyword=KEYWORD, has_geo=None)
    harvest_keyword(layout, _client(sim), query)
    before = layout.records_file(KEYWORD).read_bytes()

    sim.faults = Faults(seed=4, bad_body=1.0)
    with pytest.raises(TransientFlickrError) as error:
        harvest_keyword(layout, _client(sim, attempts=3), query, full_refresh=True)
    message = str(error.value)
    assert "not JSON" in message or "stat=ok" in message, message
    assert "gave up after 3 attempts" in message and "\n" not in message
    assert layout.records_file(KEYWORD).read_bytes() == before
    assert not list(layout.records_dir(KEYWORD).glob(".*.tmp"))
