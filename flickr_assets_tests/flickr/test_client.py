"""FlickrClient over real HTTP against the simulator: shapes, error classes, retries, Retry-After, no key leaks."""

import http.server
import json
import logging
import random
import socket
import time

import pytest
import requests

from flickr_assets.flickr.client import RETRY_AFTER_MAX_S, FlickrClient
from flickr_assets.flickr.errors import PermanentFlickrError, TransientFlickrError
from flickr_assets.flickr.ratelimit import ApiBudget
from flickr_assets.simulator import DEMO_API_KEY, DEMO_API_SECRET, Budget, Faults, Simulator
from flickr_assets_tests.stub_http import serving, trickle


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def client_for(sim, key=DEMO_API_KEY, **options) -> FlickrClient:
    options.setdefault("backoff_base", 0.01)
    return FlickrClient(key, DEMO_API_SECRET, rest_url=sim.rest_url, **options)


def test_echo_and_search_shapes(sim):
    client = client_for(sim)
    assert client.call("flickr.test.echo", foo="bar")["foo"]["_content"] == "bar"
    page = client.search(text="eiffel tower", has_geo="1", per_page="500", extras="date_upload")
    assert page.page == 1 and page.per_page == 250  # geo queries get 250 per page
    assert page.total == len(sim.truth.search_ids(text="eiffel tower", has_geo=True))
    assert page.pages == -(-page.total // 250) and len(page.photos) == 250
    assert client.stats.calls == 2 and client.stats.retries == 0


def test_leaving_the_client_closes_its_connections(sim):
    with client_for(sim) as client:
        client.call("flickr.test.echo")
        pool = client.session.get_adapter(sim.rest_url).poolmanager
        assert len(pool.pools) == 1
    assert len(pool.pools) == 0  # closed now, not when the garbage collector finds the client's cycle


@pytest.mark.parametrize("key", ["0123456789abcdef0123456789abcdef", "not-a-key"])
def test_invalid_key_fails_in_one_call_with_a_clear_message(sim, key):
    client = client_for(sim, key=key)
    with pytest.raises(PermanentFlickrError) as caught:
        client.search(text="colosseum")
    message = str(caught.value)
    assert message.startswith("Flickr rejected FLICKR_API_KEY: Invalid API Key") and "\n" not in message
    assert key not in message and DEMO_API_SECRET not in message
    assert caught.value.code == 100
    assert sim.stats.snapshot()["rest_calls"] == 1 and client.stats.retries == 0


def test_a_wrong_secret_fails_in_one_call_naming_the_secret(sim):
    wrong = "0f" * 8
    client = FlickrClient(DEMO_API_KEY, wrong, rest_url=sim.rest_url)
    with pytest.raises(PermanentFlickrError) as caught:
        client.search(text="colosseum")
    message = str(caught.value)
    assert message.startswith("Flickr refused the request signature (signature_invalid on flickr.photos.search)")
    assert "check FLICKR_API_SECRET" in message and DEMO_API_KEY not in message and wrong not in message
    assert caught.value.http_status == 401 and client.stats.retries == 0
    assert sim.stats.snapshot()["signature_rejections"] == 1
    # The signature covers the URL as the client wrote it (here without the final slash).
    unslashed = FlickrClient(DEMO_API_KEY, DEMO_API_SECRET, rest_url=sim.rest_url.rstrip("/"))
    assert unslashed.search(text="colosseum").total == 60
    # Unsigned calls (the key alone, as Flickr allows for public methods) need no secret.
    answer = requests.get(sim.rest_url, params={"method": "flickr.test.echo", "api_key": DEMO_API_KEY})
    assert answer.status_code == 200 and b'stat="ok"' in answer.content


def test_missing_key_names_the_setting():
    with pytest.raises(PermanentFlickrError, match="FLICKR_API_KEY is not set"):
        FlickrClient("", "secret")


def test_unknown_method_is_permanent(sim):
    client = client_for(sim)
    with pytest.raises(PermanentFlickrError, match="error 112") as caught:
        client.call("flickr.photos.doesNotExist")
    assert caught.value.code == 112 and client.stats.calls == 1


@pytest.mark.parametrize(
    ("faults", "kind"),
    [
        (Faults(rest_5xx=1.0), "http_5"),
        (Faults(api_error=1.0), "api_"),
        (Faults(bad_body=1.0), "bad_body"),
        (Faults(drop=1.0), "connection"),
    ],
)
def test_transient_failures_are_retried_then_reported(sim, faults, kind):
    sim.faults = faults
    sleeps = Sleeps()
    client = client_for(sim, max_attempts=3, sleep=sleeps)
    with pytest.raises(TransientFlickrError, match="gave up after 3 attempts"):
        client.search(text="colosseum")
    assert client.stats.calls == 3 and client.stats.retries == 2 and len(sleeps.delays) == 2
    assert sum(client.stats.errors.values()) == 3, client.stats.errors  # every attempt's error, classified
    assert all(name.startswith(kind) for name in client.stats.errors), client.stats.errors
    assert sim.stats.snapshot()["rest_calls"] == 3


def _closed_port() -> int:
    with socket.socket() as closed:  # a port on 127.0.0.1 that nothing listens on
        closed.bind(("127.0.0.1", 0))
        return closed.getsockname()[1]


def test_a_dead_endpoint_fails_within_half_a_minute_naming_the_url_and_the_setting():
    url = f"http://127.0.0.1:{_closed_port()}/services/rest/"
    sleeps = Sleeps()
    client = FlickrClient(DEMO_API_KEY, DEMO_API_SECRET, rest_url=url, sleep=sleeps)
    with pytest.raises(PermanentFlickrError) as caught:  # not then the asset's retries too: minutes
        client.search(text="colosseum")
    message = str(caught.value)
    assert message.startswith(f"cannot connect to Flickr at {url} (connection refused) — check FLICKR_API_URL")
    assert "\n" not in message and DEMO_API_KEY not in message
    # Its attempts span ~30 s whatever the jitter: a server restarting meanwhile is still reached.
    assert client.stats.errors["refused"] == 6 and sleeps.delays == [1, 2, 4, 8, 16]


def test_a_server_gone_mid_harvest_is_retried(simulator_cache):
    """A refusal after answers is a server restarting or going away for a while, not a wrong URL."""
    with Simulator(seed=7, cache_dir=simulator_cache) as sim:
        client = client_for(sim, max_attempts=4, sleep=Sleeps())
        assert client.search(text="colosseum").total > 0
    with pytest.raises(TransientFlickrError, match=r"connection refused.*gave up after 4 attempts"):
        client.search(text="colosseum")
    # The first attempt may meet the pooled connection closed instead (lost, not refused).
    assert sum(client.stats.errors.values()) == 4 and client.stats.errors["refused"] >= 3, client.stats.errors


def test_timeouts_are_retried(sim):
    sim.faults = Faults(slow=1.0, slow_seconds=0.6)
    client = client_for(sim, max_attempts=2, timeout=0.2, sleep=Sleeps())
    with pytest.raises(TransientFlickrError, match="did not answer"):
        client.search(text="colosseum")
    assert client.stats.errors["timeout"] == 2


def test_retry_after_is_honoured_and_shared_through_the_budget(sim, tmp_path):
    sim.faults = Faults(rest_429=1.0, retry_after=3)
    sleeps = Sleeps()
    budget = ApiBudget(tmp_path / ".state", calls_per_hour=360_000)
    client = client_for(sim, max_attempts=3, sleep=sleeps, limiter=budget)
    before = time.time()
    with pytest.raises(TransientFlickrError, match="429"):
        client.search(text="colosseum")
    assert sleeps.delays and all(delay >= 3 for delay in sleeps.delays)
    state = json.loads((tmp_path / ".state" / "api_budget.json").read_text())
    assert state["blocked_until"] >= before + 3  # every process on this data folder now waits too
    assert client.stats.errors["http_429"] == 3


def test_an_absurd_retry_after_is_capped(sim):
    sim.faults = Faults(rest_429=1.0, retry_after=10**9)
    sleeps = Sleeps()
    client = client_for(sim, max_attempts=2, sleep=sleeps)
    with pytest.raises(TransientFlickrError, match="429"):
        client.search(text="colosseum")
    assert sleeps.delays == [RETRY_AFTER_MAX_S]


def test_a_429_without_retry_after_makes_everyone_wait_the_backoff(sim, tmp_path):
    sim.faults = Faults(rest_429=1.0, retry_after=None)  # as Flickr's 429s were seen: no Retry-After
    sleeps = Sleeps()
    budget = ApiBudget(tmp_path / ".state", calls_per_hour=360_000)
    client = client_for(sim, max_attempts=2, backoff_base=4.0, backoff_max=4.0, sleep=sleeps, limiter=budget)
    before = time.time()
    with pytest.raises(TransientFlickrError, match="429"):
        client.search(text="colosseum")
    assert len(sleeps.delays) == 1
    state = json.loads((tmp_path / ".state" / "api_budget.json").read_text())
    assert state["blocked_until"] >= before + sleeps.delays[0] - 0.01  # shared: other runs wait as long


def test_backoff_is_exponential_with_full_jitter_and_capped(sim):
    sim.faults = Faults(rest_5xx=1.0)
    sleeps = Sleeps()
    client = client_for(sim, max_attempts=7, backoff_base=1.0, backoff_max=8.0, sleep=sleeps, rng=random.Random(5))
    with pytest.raises(TransientFlickrError):
        client.search(text="colosseum")
    caps = [1, 2, 4, 8, 8, 8]
    expected = random.Random(5)
    assert sleeps.delays == [expected.uniform(0, cap) for cap in caps]  # full jitter under a doubling cap


def test_faulty_server_still_answers_through_retries(sim):
    sim.faults = Faults(seed=3, rest_5xx=0.2, rest_429=0.1, api_error=0.1, bad_body=0.05, drop=0.05, retry_after=0)
    client = client_for(sim, max_attempts=10, sleep=Sleeps())
    pages = [client.search(text="stonehenge", has_geo="1") for _ in range(20)]
    assert all(page.total == pages[0].total for page in pages)
    assert client.stats.retries > 0 and client.stats.calls == 20 + client.stats.retries


def test_expired_key_after_overspending_is_permanent(simulator_cache):
    budget = Budget(calls=3, window_seconds=60, expire_after=2)
    with Simulator(seed=7, cache_dir=simulator_cache, budget=budget) as sim:
        client = client_for(sim, max_attempts=10, sleep=Sleeps())
        for _ in range(3):
            client.search(text="colosseum")
        with pytest.raises(PermanentFlickrError, match=r"Key has expired") as caught:
            client.search(text="colosseum")
    assert caught.value.code == 100 and "FLICKR_API_KEY" in str(caught.value)
    assert client.stats.errors["http_429"] == 2 and client.stats.errors["api_100"] == 1


def test_the_key_never_reaches_logs_or_errors(sim, caplog):
    caplog.set_level(logging.DEBUG)  # the root logger at DEBUG, restored after the test
    sim.faults = Faults(rest_429=0.5, rest_5xx=0.3, seed=1, retry_after=0)
    client = client_for(sim, max_attempts=10, sleep=Sleeps())
    client.search(text="colosseum")
    with pytest.raises(PermanentFlickrError) as caught:
        client_for(sim, key="f" * 32).search(text="colosseum")
    text = caplog.text + str(caught.value) + repr(client)
    assert "urllib3" in caplog.text or "retrying" in caplog.text  # debug logging was really on
    for secret in (DEMO_API_KEY, DEMO_API_SECRET, "f" * 32):
        assert secret not in text


class _TricklingHandler(http.server.BaseHTTPRequestHandler):
    """An API endpoint sending its answer a byte at a time: no single wait reaches the client's timeout."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        body = b'{"stat": "ok", "photos": {"page": 1, "pages": 1, "perpage": 100, "total": 0, "photo": []}}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        trickle(self, body, 0.3)

    def log_message(self, *args: object) -> None:
        pass


def test_an_answer_trickling_in_ends_the_call_in_bounded_time():
    started = time.monotonic()
    with serving(_TricklingHandler) as base:
        url = f"{base}/services/rest/"
        client = FlickrClient(DEMO_API_KEY, DEMO_API_SECRET, rest_url=url, timeout=1.0, max_attempts=2, sleep=Sleeps())
        with pytest.raises(TransientFlickrError, match=r"answer to flickr\.photos\.search was refused: body too slow"):
            client.search(text="colosseum")
    assert time.monotonic() - started < 10 and client.stats.errors["bad_body"] == 2


class _CutShortHandler(http.server.BaseHTTPRequestHandler):
    """Promises 1,000 bytes, sends 8, closes: a connection lost in the middle of an answer."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "1000")
        self.end_headers()
        self.wfile.write(b'{"stat":')
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


def test_an_answer_cut_short_is_a_lost_connection_and_retried():
    with serving(_CutShortHandler) as base:
        client = FlickrClient(
            DEMO_API_KEY, DEMO_API_SECRET, rest_url=f"{base}/services/rest/", max_attempts=3, sleep=Sleeps()
        )
        with pytest.raises(TransientFlickrError, match=r"connection to Flickr lost during flickr\.photos\.search"):
            client.search(text="colosseum")
    assert client.stats.retries == 2 and client.stats.errors["connection"] == 3
