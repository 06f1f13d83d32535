"""One HTTP attempt at a static image URL, with keep-alive connections and per-host manners.

:class:`HostLimiter` caps concurrent requests per host (a lower cap and a minimum spacing for Originals)
and pauses a host after it answers 429 with ``Retry-After``, for every thread at once. :class:`Fetcher`
makes one attempt (following redirects by hand, so the placeholder redirect is seen and never fetched)
and sorts the answer into an :class:`Answer`; the retry policy lives with the caller.
"""

import contextlib
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import urllib3

from flickr_assets.download.classify import (
    describe_body,
    is_missing_status,
    is_original_url,
    is_placeholder_body,
    is_placeholder_url,
    is_retryable_status,
    is_text_body,
    retry_after_seconds,
    sniff_image,
)

MAX_REDIRECTS = 5

#: body: image bytes to process; unavailable / not_found: final; retry: may succeed later;
#: refused: an answer that retrying now will not change (e.g. 403), tried again on the next run.
AnswerKind = Literal["body", "unavailable", "not_found", "retry", "refused"]


@dataclass
class Answer:
    """The outcome of one attempt at a URL."""

    kind: AnswerKind
    url: str  # the URL finally answered (after redirects)
    reason: str | None = None
    body: bytes | None = None
    status: int | None = None
    retry_after: float | None = None
    bytes_received: int = 0
    requests: int = 0


class _Gate:
    """Concurrency cap, minimum spacing and pause for one (host, class) pair."""

    def __init__(self, limit: int, interval: float) -> None:
        self._slots = threading.BoundedSemaphore(limit)
        self._lock = threading.Lock()
        self._interval = interval
        self._next_start = 0.0
        self._paused_until = 0.0

    def acquire(self) -> None:
        self._slots.acquire()
        while True:
            with self._lock:
                now = time.monotonic()
                start = max(self._next_start, self._paused_until)
                if now >= start:
                    self._next_start = now + self._interval
                    return
            time.sleep(start - now)

    def release(self) -> None:
        self._slots.release()

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)


class HostLimiter:
    """Per-host request limits shared by all fetch threads."""

    def __init__(self, per_host: int, per_host_original: int, original_interval: float) -> None:
        self._per_host = per_host
        self._per_host_original = per_host_original
        self._original_interval = original_interval
        self._gates: dict[tuple[str, bool], _Gate] = {}
        self._lock = threading.Lock()

    def _gate(self, url: str) -> _Gate:
        key = (urllib.parse.urlsplit(url).netloc.lower(), is_original_url(url))
        with self._lock:
            gate = self._gates.get(key)
            if gate is None:
                limit, interval = (
                    (self._per_host_original, self._original_interval) if key[1] else (self._per_host, 0.0)
                )
                gate = self._gates[key] = _Gate(limit, interval)
            return gate

    @contextlib.contextmanager
    def slot(self, url: str) -> Iterator[None]:
        """Hold one request slot for ``url``'s host (waiting for a pause or spacing to pass)."""
        gate = self._gate(url)
        gate.acquire()
        try:
            yield
        finally:
            gate.release()

    def pause(self, url: str, seconds: float) -> None:
        """Hold back every request of ``url``'s host and class for ``seconds`` (after a 429)."""
        self._gate(url).pause(seconds)


class Fetcher:
    """Makes single attempts at image URLs over one shared keep-alive connection pool (urllib3, thread-safe;
    a third of the CPU per request of ``requests``, which matters when the CPU is the bottleneck)."""

    def __init__(
        self,
        limiter: HostLimiter,
        timeout: float,
        user_agent: str,
        retry_after_max: float,
        connections_per_host: int = 16,
    ) -> None:
        self._limiter = limiter
        self._retry_after_max = retry_after_max
        # Retries are ours (status-aware, with backoff), so urllib3 must not add its own.
        self._pool = urllib3.PoolManager(
            num_pools=32,
            maxsize=connections_per_host,
            block=False,
            retries=False,
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
            headers={"User-Agent": user_agent, "Accept": "image/*"},
        )

    def close(self) -> None:
        """Close every pooled connection."""
        self._pool.clear()

    def get(self, url: str) -> Answer:
        """One attempt at ``url``: redirects followed by hand, the answer classified."""
        requests_made = 0
        received = 0
        for _ in range(MAX_REDIRECTS + 1):
            requests_made += 1
            with self._limiter.slot(url):
                try:
                    response = self._pool.request("GET", url, redirect=False, retries=False)
                    body = response.data
                except urllib3.exceptions.TimeoutError:
                    return Answer("retry", url, "timeout", requests=requests_made, bytes_received=received)
                except urllib3.exceptions.HTTPError as error:
                    return Answer("retry", url, _network_reason(error), requests=requests_made, bytes_received=received)
            received += len(body)
            status = response.status
            if 300 <= status < 400:
                location = response.headers.get("Location")
                if not location:
                    return Answer("refused", url, f"HTTP {status} redirect without Location", status=status)
                target = urllib.parse.urljoin(url, location)
                if is_placeholder_url(target):
                    reason = f"redirected to the photo_unavailable placeholder (HTTP {status})"
                    return Answer("unavailable", target, reason, status=status, requests=requests_made)
                url = target
                continue
            answer = self._classify(url, status, response, body)
            answer.requests = requests_made
            answer.bytes_received = received
            return answer
        return Answer("refused", url, f"more than {MAX_REDIRECTS} redirects", requests=requests_made)

    def _classify(self, url: str, status: int, response: urllib3.BaseHTTPResponse, body: bytes) -> Answer:
        if is_missing_status(status):
            return Answer("not_found", url, f"HTTP {status}", status=status)
        if is_retryable_status(status):
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            if wait is not None:
                wait = min(wait, self._retry_after_max)
                if status in (429, 503):
                    self._limiter.pause(url, wait)
            return Answer("retry", url, f"HTTP {status}", status=status, retry_after=wait)
        if status != 200:
            return Answer("refused", url, f"HTTP {status}", status=status)
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) != len(body):
            return Answer("retry", url, f"truncated body ({len(body)} of {declared} bytes)", status=status)
        if is_placeholder_url(url):
            return Answer("unavailable", url, "served the photo_unavailable placeholder", status=status)
        content_type = response.headers.get("Content-Type")
        if sniff_image(body) is None and is_text_body(body, content_type):
            return Answer("retry", url, describe_body(body, content_type), status=status)
        if is_placeholder_body(body):
            return Answer("unavailable", url, "served the photo_unavailable placeholder image", status=status)
        # Anything else goes to the decoder: an empty or corrupt body fails there, and the same failure on
        # every attempt makes the photo final ``invalid``.
        return Answer("body", url, body=body, status=status)


def _network_reason(error: urllib3.exceptions.HTTPError) -> str:
    text = str(error)
    if isinstance(error, urllib3.exceptions.ProtocolError) and ("IncompleteRead" in text or "broken" in text):
        return "truncated body (connection broken)"
    if isinstance(error, urllib3.exceptions.ProtocolError | urllib3.exceptions.NewConnectionError):
        return "connection error"
    return f"request error ({type(error).__name__})"
