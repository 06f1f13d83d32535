"""Fetcher behaviour: what the simulator cannot play (a server closing kept connections, redirect loops), and
a 429 without Retry-After against the simulator."""

import gzip
import http.server
import threading
import time
from collections.abc import Iterator
from typing import ClassVar

import pytest

from flickr_assets.download.fetch import THROTTLED_PAUSE, Fetcher
from flickr_assets.download.limits import HostLimiter
from flickr_assets.simulator import Faults
from flickr_assets_tests.stub_http import serving, trickle

BODY = b"\xff\xd8\xff\xe0" + b"x" * 5000 + b"\xff\xd9"


class _ClosingHandler(http.server.BaseHTTPRequestHandler):
    """Answers HTTP/1.1 (keep-alive implied), then closes the connection without saying so, like a server
    whose idle timeout ends a kept connection between two requests."""

    protocol_version = "HTTP/1.1"
    connections = 0

    def setup(self) -> None:
        type(self).connections += 1
        super().setup()

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def closing_server() -> Iterator[str]:
    _ClosingHandler.connections = 0
    with serving(_ClosingHandler) as base:
        yield base


def test_a_kept_connection_closed_by_the_server_costs_no_attempt(closing_server):
    fetcher = Fetcher(HostLimiter(4, 2, 0.0), timeout=5, user_agent="test", retry_after_max=10)
    try:
        answers = []
        for n in range(3):
            answers.append(fetcher.get(f"{closing_server}/{n}_abc_b.jpg"))
            # Let the server's close arrive before the next request, as after an idle timeout.
            threading.Event().wait(0.05)
    finally:
        fetcher.close()
    assert [(a.kind, a.body, a.requests) for a in answers] == [("body", BODY, 1)] * 3
    assert _ClosingHandler.connections == 3  # each request on a fresh connection, none failed on a dead one


class _RedirectHandler(http.server.BaseHTTPRequestHandler):
    """``/loop/N`` redirects to ``/loop/N+1`` forever (a body with each); ``/nowhere`` redirects with no Location;
    ``/broken`` to a URL that cannot be parsed."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b"moved"
        self.send_response(302)
        if self.path.startswith("/loop/"):
            self.send_header("Location", f"/loop/{int(self.path.rsplit('/', 1)[1]) + 1}")
        elif self.path == "/broken":
            self.send_header("Location", "http://[::1/x.jpg")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def redirect_server() -> Iterator[str]:
    with serving(_RedirectHandler) as base:
        yield base


def test_bad_redirects_are_refused_with_every_request_and_byte_counted(redirect_server):
    fetcher = Fetcher(HostLimiter(4, 2, 0.0), timeout=5, user_agent="test", retry_after_max=10)
    try:
        loop = fetcher.get(f"{redirect_server}/loop/0")
        nowhere = fetcher.get(f"{redirect_server}/nowhere")
        broken = fetcher.get(f"{redirect_server}/broken")
    finally:
        fetcher.close()
    assert (loop.kind, loop.reason) == ("refused", "more than 5 redirects")
    assert (loop.requests, loop.bytes_received) == (6, 6 * len(b"moved"))
    assert (nowhere.kind, nowhere.reason) == ("refused", "HTTP 302 redirect without Location")
    assert (nowhere.requests, nowhere.bytes_received) == (1, len(b"moved"))
    assert (broken.kind, broken.reason) == ("refused", "HTTP 302 redirect to a bad URL 'http://[::1/x.jpg'")


def test_a_429_without_retry_after_pauses_the_host_for_everyone(sim, harvested):
    urls = [url for url in harvested("stonehenge")["url_l"].to_pylist() if url][:2]
    fetcher = Fetcher(HostLimiter(4, 2, 0.0), timeout=5, user_agent="test", retry_after_max=10)
    try:
        sim.faults = Faults(static_429=1.0, retry_after=None)  # as Flickr's static host was seen to answer
        throttled = fetcher.get(urls[0])
        sim.faults = Faults()
        started = time.monotonic()
        answer = fetcher.get(urls[1])  # another photo, same host
        waited = time.monotonic() - started
    finally:
        fetcher.close()
    assert (throttled.kind, throttled.reason, throttled.retry_after) == ("retry", "HTTP 429", None)
    assert answer.kind == "body" and waited >= THROTTLED_PAUSE - 0.05


class _HostileHandler(http.server.BaseHTTPRequestHandler):
    """Bodies no simulator of Flickr would send: a trickle, a gzip bomb, a huge image."""

    protocol_version = "HTTP/1.1"
    encodings: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        type(self).encodings.append(self.headers.get("Accept-Encoding"))
        if self.path == "/trickle.jpg":  # one byte a second: no single wait reaches the timeout
            self._head(len(BODY))
            trickle(self, BODY, 0.4)
        elif self.path == "/gzip.jpg":  # 1 MiB of zeros, compressed, and sent compressed although not asked to
            packed = gzip.compress(b"\0" * (1 << 20))
            self._head(len(packed), {"Content-Encoding": "gzip"})
            self.wfile.write(packed)
        else:
            self._head(3 * len(BODY))
            self.wfile.write(BODY * 3)

    def _head(self, length: int, extra: dict[str, str] | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(length))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_trickling_an_encoded_or_an_oversized_body_or_an_odd_url_ends_the_attempt():
    _HostileHandler.encodings = []
    with serving(_HostileHandler) as base:
        fetcher = Fetcher(
            HostLimiter(4, 2, 0.0), timeout=1.0, user_agent="test", retry_after_max=10, max_bytes=2 * len(BODY)
        )
        started = time.monotonic()
        trickle = fetcher.get(f"{base}/trickle.jpg")
        assert trickle.kind == "retry" and trickle.reason.startswith("body too slow: ")
        assert time.monotonic() - started < 10
        encoded = fetcher.get(f"{base}/gzip.jpg")  # the bytes as sent: not an image, never inflated
        assert encoded.kind != "body" or len(encoded.body) < 10_000
        for url in ("file:///etc/passwd", "ftp://127.0.0.1/x.jpg", "http://[::1/x.jpg"):  # as a hostile record may
            odd = fetcher.get(url)
            assert (odd.kind, odd.requests, odd.reason) == ("refused", 0, f"not an http(s) URL: {url!r}")
        huge = fetcher.get(f"{base}/huge.jpg")
        assert (huge.kind, huge.reason) == ("refused", f"body larger than {2 * len(BODY):,} bytes")
        fetcher.close()
    assert set(_HostileHandler.encodings) == {"identity"}
