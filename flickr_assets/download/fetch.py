"""One HTTP attempt at a static image URL, with keep-alive connections and per-host manners.

:class:`Fetcher` makes one attempt (following redirects by hand, so the placeholder redirect is seen and
never fetched) within the :class:`~flickr_assets.download.limits.HostLimiter`'s limits and sorts the answer
into an :class:`Answer`; the retry policy lives with the caller.
"""

import urllib.parse
from dataclasses import dataclass
from typing import Literal

import urllib3

from flickr_assets.download.classify import (
    describe_body,
    is_missing_status,
    is_placeholder_body,
    is_placeholder_url,
    is_retryable_status,
    is_text_body,
)
from flickr_assets.download.limits import HostLimiter
from flickr_assets.http_read import BodyError, BodyTooLarge, read_body
from flickr_assets.imaging.decode import sniff_format
from flickr_assets.retry_after import retry_after_seconds

MAX_REDIRECTS = 5

#: Seconds every request to a host waits after a 429 that says nothing of how long (no Retry-After).
THROTTLED_PAUSE = 2.0

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
        max_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self._limiter = limiter
        self._retry_after_max = retry_after_max
        self._timeout = timeout
        self._max_bytes = max_bytes
        # Retries are ours (status-aware, with backoff), so urllib3 must not add its own.
        self._pool = urllib3.PoolManager(
            num_pools=32,
            maxsize=connections_per_host,
            block=False,
            retries=False,
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
            # identity: a compressed body would not match its Content-Length, and could be a zip bomb
            headers={"User-Agent": user_agent, "Accept": "image/*", "Accept-Encoding": "identity"},
        )

    def close(self) -> None:
        """Close every pooled connection."""
        self._pool.clear()

    def get(self, url: str) -> Answer:
        """One attempt at ``url``: redirects followed by hand, the answer classified, with the requests made
        and bytes received on the way."""
        requests_made = received = 0
        if not _fetchable(url):  # from a record: a file:// or ftp:// URL, or one that does not parse
            return Answer("refused", url, f"not an http(s) URL: {url[:100]!r}")
        for _ in range(MAX_REDIRECTS + 1):
            requests_made += 1
            with self._limiter.slot(url):
                try:
                    response = self._pool.request(
                        "GET", url, redirect=False, retries=False, preload_content=False, decode_content=False
                    )
                    body = read_body(response, self._timeout, self._max_bytes)
                except BodyError as error:
                    answer = Answer("refused" if isinstance(error, BodyTooLarge) else "retry", url, str(error))
                    break
                except urllib3.exceptions.TimeoutError:
                    answer = Answer("retry", url, "timeout")
                    break
                except urllib3.exceptions.HTTPError as error:
                    answer = Answer("retry", url, _network_reason(error))
                    break
            received += len(body)
            status = response.status
            if 300 <= status < 400:
                location = response.headers.get("Location")
                if not location:
                    answer = Answer("refused", url, f"HTTP {status} redirect without Location", status=status)
                    break
                try:
                    target = urllib.parse.urljoin(url, location)
                    urllib3.util.parse_url(target)
                except ValueError:  # e.g. "http://[::1/x.jpg": an answer retrying will not change
                    answer = Answer("refused", url, f"HTTP {status} redirect to a bad URL {location[:100]!r}")
                    break
                if is_placeholder_url(target):
                    reason = f"redirected to the photo_unavailable placeholder (HTTP {status})"
                    answer = Answer("unavailable", target, reason, status=status)
                    break
                url = target
                continue
            answer = self._classify(url, status, response, body)
            break
        else:
            answer = Answer("refused", url, f"more than {MAX_REDIRECTS} redirects")
        answer.requests, answer.bytes_received = requests_made, received
        return answer

    def _classify(self, url: str, status: int, response: urllib3.BaseHTTPResponse, body: bytes) -> Answer:
        if is_missing_status(status):
            return Answer("not_found", url, f"HTTP {status}", status=status)
        if is_retryable_status(status):
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            if wait is not None:
                wait = min(wait, self._retry_after_max)
                if status in (429, 503):
                    self._limiter.pause(url, wait)
            elif status == 429:  # throttled without a word of how long (as Flickr's were seen): everyone waits
                self._limiter.throttled(url, THROTTLED_PAUSE)
            return Answer("retry", url, f"HTTP {status}", status=status, retry_after=wait)
        if status != 200:
            return Answer("refused", url, f"HTTP {status}", status=status)
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.isdecimal() and int(declared) != len(body):
            return Answer("retry", url, f"truncated body ({len(body)} of {declared} bytes)", status=status)
        if is_placeholder_url(url):
            return Answer("unavailable", url, "served the photo_unavailable placeholder", status=status)
        content_type = response.headers.get("Content-Type")
        if sniff_format(body) is None and is_text_body(body, content_type):
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


def _fetchable(url: str) -> bool:
    """Whether ``url`` is an http(s) URL urllib3 can ask for."""
    try:
        parsed = urllib3.util.parse_url(url)
    except ValueError:
        return False
    return parsed.scheme in ("http", "https") and bool(parsed.host)
