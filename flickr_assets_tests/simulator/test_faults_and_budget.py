"""Fault injection and the per-key budget, observed over real HTTP."""

import http.client
import time
from pathlib import Path
from urllib.parse import urlsplit

import flickrapi
import pytest
import requests

from flickr_assets.simulator import DEMO_API_KEY, Budget, Faults, Simulator

from .helpers import flickr, rest


def _image_url(sim: Simulator) -> str:
    photos = rest(sim, method="flickr.photos.search", text="colosseum", extras="url_sq", per_page=5).json()
    return photos["photos"]["photo"][0]["url_sq"]


def test_rest_faults_happen_at_about_the_configured_rates(sim: Simulator) -> None:
    sim.faults = Faults(seed=3, rest_5xx=0.2, rest_429=0.1, api_error=0.1, bad_body=0.1, retry_after=7)
    statuses, codes, bodies = [], [], []
    with requests.Session() as session:
        for _ in range(400):
            response = rest(sim, session, method="flickr.test.echo")
            statuses.append(response.status_code)
            if response.status_code == 429:
                assert response.headers["Retry-After"] == "7" and "429 Too Many Requests" in response.text
            elif response.status_code == 200:
                if response.headers["Content-Type"].startswith("application/json"):
                    body = response.json()
                    codes.append(body.get("code"))
                else:
                    bodies.append(response.text)
    n5xx = sum(s >= 500 for s in statuses)
    assert 50 <= n5xx <= 110  # ~80
    assert 20 <= statuses.count(429) <= 65  # ~40
    assert 20 <= sum(c in (105, 201) for c in codes) <= 65
    assert bodies  # HTML or XML where JSON was asked
    counts = sim.stats.snapshot()["faults"]
    assert counts["rest_5xx"] == n5xx and counts["rest_429"] == statuses.count(429)


def test_flickrapi_sees_transport_faults_as_flickr_errors_without_code(sim: Simulator) -> None:
    sim.faults = Faults(rest_5xx=1.0)
    with pytest.raises(flickrapi.FlickrError) as raised:
        flickr(sim).test.echo()
    assert raised.value.code is None and "Status code 5" in str(raised.value)


def test_dropped_connections_and_slow_answers(sim: Simulator) -> None:
    sim.faults = Faults(drop=1.0)
    with pytest.raises(requests.ConnectionError):
        requests.get(_image_url_without_faults(sim))
    sim.faults = Faults(slow=1.0, slow_seconds=0.3)
    started = time.monotonic()
    assert rest(sim, method="flickr.test.echo").status_code == 200
    assert time.monotonic() - started >= 0.3


def _image_url_without_faults(sim: Simulator) -> str:
    faults = sim.faults
    sim.faults = Faults()
    url = _image_url(sim)
    sim.faults = faults
    return url


def test_static_faults_truncate_corrupt_html_and_errors(sim: Simulator) -> None:
    url = _image_url(sim)
    good = requests.get(url).content
    parts = urlsplit(url)

    sim.faults = Faults(truncate=1.0)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    connection.request("GET", parts.path)
    response = connection.getresponse()
    assert int(response.getheader("Content-Length")) == len(good)
    with pytest.raises(http.client.IncompleteRead) as raised:
        response.read()
    assert 0 < len(raised.value.partial) < len(good)
    connection.close()

    sim.faults = Faults(corrupt=1.0)
    corrupt = requests.get(url).content
    assert len(corrupt) == len(good) and corrupt != good and corrupt[:2] == good[:2]

    sim.faults = Faults(html=1.0)
    html = requests.get(url)
    assert html.status_code == 200 and html.headers["Content-Type"].startswith("text/html")

    sim.faults = Faults(static_429=0.5, static_5xx=0.5, retry_after=2)
    statuses = [requests.get(url).status_code for _ in range(40)]
    assert set(statuses) <= {429, 500, 502, 503, 504} and 429 in statuses and len(set(statuses)) > 1
    assert sim.stats.snapshot()["static_by_path"][parts.path] >= 43


def test_faults_parse_for_the_command_line() -> None:
    faults = Faults.parse("rest_5xx=0.1, truncate=0.05,retry_after=3")
    assert (faults.rest_5xx, faults.truncate, faults.retry_after) == (0.1, 0.05, 3)
    with pytest.raises(ValueError, match="bad item 'nonsense'"):
        Faults.parse("nonsense")
    with pytest.raises(ValueError, match="probability"):
        Faults(html=1.5)


def test_budget_answers_429_then_expires_the_key(simulator_cache: Path) -> None:
    budget = Budget(calls=5, window_seconds=60, expire_after=3)
    with Simulator(seed=7, cache_dir=simulator_cache, budget=budget) as sim, requests.Session() as session:
        statuses = [rest(sim, session, method="flickr.test.echo").status_code for _ in range(8)]
        assert statuses == [200] * 5 + [429] * 3
        expired = rest(sim, session, method="flickr.test.echo").json()
        assert (expired["code"], expired["message"]) == (100, "Invalid API Key (Key has expired)")
        with pytest.raises(flickrapi.FlickrError, match="Key has expired"):
            flickr(sim).test.echo()
        snapshot = sim.stats.snapshot()
        assert snapshot["budget_rejections"] == 3
        assert DEMO_API_KEY not in repr(snapshot)  # keys only as hashes
        assert sum(snapshot["rest_by_key"].values()) == 10


def test_budget_window_slides(simulator_cache: Path) -> None:
    with Simulator(seed=7, cache_dir=simulator_cache, budget=Budget(calls=3, window_seconds=0.5)) as sim:
        assert [rest(sim, method="flickr.test.echo").status_code for _ in range(4)] == [200, 200, 200, 429]
        time.sleep(0.6)
        assert rest(sim, method="flickr.test.echo").status_code == 200
