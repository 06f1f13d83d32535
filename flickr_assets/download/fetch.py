"""One HTTP attempt at a static image URL, with keep-alive connections and per-host manners.

:class:`Fetcher` makes one attempt (following redirects by hand, so the placeholder redirect is seen and
never fetched) within the :class:`~flickr_assets.download.limits.HostLimiter`'s limits and sorts the answer
into an :class:`Answer`; the retry policy lives with the caller.
"""

import http.client
import select
import ssl
import threading
import urllib.parse
from dataclasses import dataclass
from email.message import Message
from typing import Literal

from flickr_assets.download.classify import (
    describe_body,
    is_missing_status,
    is_placeholder_body,
    is_placeholder_url,
    is_retryable_status,
    is_text_body,
    retry_after_seconds,
    sniff_image,
)
from flickr_assets.download.limits import HostLimiter

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


class _BodyError(Exception):
    """The connection failed after the status line, while the body was arriving."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class Fetcher:
    """Makes single attempts at image URLs; each calling thread keeps one keep-alive connection per host.

    Plain ``http.client`` rather than urllib3's pool: under half the CPU per request, which matters when the
    CPU is the bottleneck. Like urllib3, a kept connection the server has closed meanwhile is noticed before
    it is reused (never an attempt lost to it), and nothing is retried here: retries are the caller's,
    status-aware and with backoff.
    """

    def __init__(self, limiter: HostLimiter, timeout: float, user_agent: str, retry_after_max: float) -> None:
        self._limiter = limiter
        self._timeout = timeout
        self._retry_after_max = retry_after_max
        self._headers = {"User-Agent": user_agent, "Accept": "image/*"}
        self._local = threading.local()
        self._opened: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close every kept connection (of every thread)."""
        with self._lock:
            opened, self._opened = self._opened, []
        for connection in opened:
            connection.close()

    def get(self, url: str) -> Answer:
        """One attempt at ``url``: redirects followed by hand, the answer classified."""
        requests_made = 0
        received = 0
        for _ in range(MAX_REDIRECTS + 1):
            parts = urllib.parse.urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                return Answer("refused", url, f"not an http(s) URL: {url[:200]}", requests=requests_made)
            requests_made += 1
            with self._limiter.slot(url):
                try:
                    status, headers, body = self._request(parts)
                except TimeoutError:
                    return Answer("retry", url, "timeout", requests=requests_made, bytes_received=received)
                except (_BodyError, http.client.HTTPException, OSError) as error:
                    return Answer("retry", url, _network_reason(error), requests=requests_made, bytes_received=received)
            received += len(body)
            if 300 <= status < 400:
                location = headers.get("Location")
                if not location:
                    return Answer("refused", url, f"HTTP {status} redirect without Location", status=status)
                target = urllib.parse.urljoin(url, location)
                if is_placeholder_url(target):
                    reason = f"redirected to the photo_unavailable placeholder (HTTP {status})"
                    return Answer("unavailable", target, reason, status=status, requests=requests_made)
                url = target
                continue
            answer = self._classify(url, status, headers, body)
            answer.requests = requests_made
            answer.bytes_received = received
            return answer
        return Answer("refused", url, f"more than {MAX_REDIRECTS} redirects", requests=requests_made)

    def _request(self, parts: urllib.parse.SplitResult) -> tuple[int, Message, bytes]:
        """Status, headers and whole body of one GET on this thread's connection to the URL's host."""
        connection = self._connection(parts.scheme, parts.netloc)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            connection.request("GET", target, headers=self._headers)
            response = connection.getresponse()
        except BaseException:
            connection.close()
            raise
        try:
            body = response.read()
        except TimeoutError:
            connection.close()
            raise
        except (http.client.HTTPException, OSError) as error:
            connection.close()
            raise _BodyError(error) from error
        return response.status, response.headers, body

    def _connection(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        connections: dict[tuple[str, str], http.client.HTTPConnection] | None = getattr(self._local, "by_host", None)
        if connections is None:
            connections = self._local.by_host = {}
        connection = connections.get((scheme, netloc))
        if connection is None:
            kind = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
            connection = connections[(scheme, netloc)] = kind(netloc, timeout=self._timeout)
            with self._lock:
                self._opened.append(connection)
        elif connection.sock is not None and _dropped(connection.sock):
            connection.close()  # reopened by the next request
        return connection

    def _classify(self, url: str, status: int, headers: Message, body: bytes) -> Answer:
        if is_missing_status(status):
            return Answer("not_found", url, f"HTTP {status}", status=status)
        if is_retryable_status(status):
            wait = retry_after_seconds(headers.get("Retry-After"))
            if wait is not None:
                wait = min(wait, self._retry_after_max)
                if status in (429, 503):
                    self._limiter.pause(url, wait)
            return Answer("retry", url, f"HTTP {status}", status=status, retry_after=wait)
        if status != 200:
            return Answer("refused", url, f"HTTP {status}", status=status)
        declared = headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) != len(body):
            return Answer("retry", url, f"truncated body ({len(body)} of {declared} bytes)", status=status)
        if is_placeholder_url(url):
            return Answer("unavailable", url, "served the photo_unavailable placeholder", status=status)
        content_type = headers.get("Content-Type")
        if sniff_image(body) is None and is_text_body(body, content_type):
            return Answer("retry", url, describe_body(body, content_type), status=status)
        if is_placeholder_body(body):
            return Answer("unavailable", url, "served the photo_unavailable placeholder image", status=status)
        # Anything else goes to the decoder: an empty or corrupt body fails there, and the same failure on
        # every attempt makes the photo final ``invalid``.
        return Answer("body", url, body=body, status=status)


def _dropped(sock: object) -> bool:
    """Whether an idle kept connection was closed by the server (readable with nothing asked means EOF or
    garbage: either way it cannot carry the next request)."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


def _network_reason(error: BaseException) -> str:
    if isinstance(error, _BodyError):
        return "truncated body (connection broken)"
    if isinstance(error, ssl.SSLError):
        return f"request error ({type(error).__name__})"
    if isinstance(error, OSError | http.client.HTTPException):
        return "connection error"
    return f"request error ({type(error).__name__})"
