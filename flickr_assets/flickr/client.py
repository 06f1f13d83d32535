"""A Flickr REST client on top of ``flickrapi``: one shared budget, retries that know what is worth retrying.

``flickrapi`` 2.4 signs every call with OAuth (the key travels in the ``Authorization`` header, never in the
URL or body) and parses JSON, but reports an HTTP 429 or 503 only as ``FlickrError('do_request: Status code
429 received')``. Each client therefore gets its own ``requests.Session`` whose response hook records the
status code and ``Retry-After`` so the error can be classified.
"""

import logging
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qs

import flickrapi
import flickrapi.exceptions
import requests
import urllib3.exceptions

from flickr_assets.flickr.errors import (
    KEY_HELP,
    FlickrError,
    PermanentFlickrError,
    TransientFlickrError,
    api_error,
    http_error,
)
from flickr_assets.http_read import BodyError, read_body
from flickr_assets.retry_after import retry_after_seconds

FLICKR_REST_URL = "https://api.flickr.com/services/rest/"
#: The longest ``Retry-After`` obeyed per attempt (as the image download): a server asking for an hour would
#: otherwise hold the run, and every run sharing the key's budget, silently for hours; after its attempts the run
#: fails, naming the 429, and the asset's retry policy tries again later.
RETRY_AFTER_MAX_S = 120.0
#: The largest answer read (a page of 500 photos with every extra is about 1 MB).
MAX_ANSWER_BYTES = 32 * 1024 * 1024

log = logging.getLogger(__name__)

# oauthlib / requests_oauthlib log the signed Authorization header (which holds the key) at DEBUG, flickrapi
# logs repr(FlickrAPI) (which holds the key) at DEBUG and dumps every non-200 body at ERROR. Cap them so a
# DEBUG root logger can never print the key.
for _name in ("oauthlib", "requests_oauthlib", "flickrapi"):
    logging.getLogger(_name).setLevel(logging.INFO)
logging.getLogger("flickrapi.auth").setLevel(logging.CRITICAL)


class _BoundedAnswers(requests.adapters.HTTPAdapter):
    """Reads every answer's body within bounds (:func:`flickr_assets.http_read.read_body`): requests' timeout
    bounds each wait for bytes, so a server trickling them would hold a call, its lock and its pool slot
    forever."""

    def __init__(self, grace: float) -> None:
        super().__init__()
        self._grace = grace

    def send(self, request: requests.PreparedRequest, stream: bool = False, **kwargs: Any) -> requests.Response:
        response = super().send(request, stream=True, **kwargs)
        if not stream:
            # urllib3's errors as requests words them when it reads a body itself (iter_content), which is
            # what the client's retries know.
            try:
                response._content = read_body(response.raw, self._grace, MAX_ANSWER_BYTES, decode=True)
            except BodyError as error:
                raise _BadAnswerBody(str(error)) from None
            except urllib3.exceptions.ReadTimeoutError as error:
                raise requests.exceptions.ReadTimeout(error, request=request) from None
            except urllib3.exceptions.ProtocolError as error:
                raise requests.exceptions.ChunkedEncodingError(error, request=request) from None
            except urllib3.exceptions.DecodeError as error:
                raise _BadAnswerBody(f"body does not decode ({type(error).__name__})") from None
            except urllib3.exceptions.SSLError as error:
                raise requests.exceptions.SSLError(error, request=request) from None
        return response


class _BadAnswerBody(requests.RequestException):
    """An answer whose body came too slowly or was too large."""


class _FlickrAPI(flickrapi.FlickrAPI):
    """flickrapi's class, minus the API key in its repr."""

    def __repr__(self) -> str:
        return "[FlickrAPI]"


class Limiter(Protocol):
    """What the client needs from a call budget (see :class:`flickr_assets.flickr.ratelimit.ApiBudget`)."""

    def acquire(self) -> float: ...

    def penalize(self, seconds: float) -> None: ...


class NoLimit:
    """A budget that never waits (for tools and tests that do their own pacing)."""

    def acquire(self) -> float:
        return 0.0

    def penalize(self, seconds: float) -> None:
        return None


@dataclass(frozen=True)
class SearchPage:
    """One page of ``flickr.photos.search``: the envelope as ints, and the raw photo dicts."""

    page: int
    pages: int
    per_page: int
    total: int
    photos: list[dict[str, Any]]


@dataclass
class ClientStats:
    """Counters of one client: HTTP requests sent, retries, errors by kind, seconds slept in backoff and
    waiting for the call budget."""

    calls: int = 0
    retries: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    backoff_seconds: float = 0.0
    budget_wait_seconds: float = 0.0


class FlickrClient:
    """Calls Flickr's REST API through ``flickrapi``, drawing every request from ``limiter``.

    Transient failures are retried up to ``max_attempts`` times in all, with exponential backoff and full
    jitter (``backoff_base`` · 2^n seconds, capped at ``backoff_max``), never sooner than ``Retry-After``;
    permanent ones raise at once. Not thread-safe: give each thread its own client (they can share a budget).
    """

    def __init__(
        self,
        api_key: str | None,
        api_secret: str | None,
        rest_url: str = FLICKR_REST_URL,
        limiter: Limiter | None = None,
        timeout: float = 15.0,
        max_attempts: int = 6,
        backoff_base: float = 1.0,
        backoff_max: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if not api_key or not api_key.strip():
            raise PermanentFlickrError(f"FLICKR_API_KEY is not set — {KEY_HELP}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {max_attempts}")
        self._key = api_key.strip()
        self._secret = (api_secret or "").strip()
        self.rest_url = rest_url
        self.limiter: Limiter = limiter or NoLimit()
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.stats = ClientStats()
        self._last = threading.local()
        self._answered = False  # any HTTP answer at all from rest_url (a refusal before one is a wrong URL)

        self._api = _FlickrAPI(self._key, self._secret, format="parsed-json", store_token=False)
        self._api.REST_URL = rest_url
        session = requests.Session()
        for prefix in ("http://", "https://"):
            session.mount(prefix, _BoundedAnswers(grace=timeout))
        session.hooks["response"].append(self._record_response)
        # OAuthFlickrInterface.session is a class attribute shared by every FlickrAPI; shadow it per client.
        self._api.flickr_oauth.session = session
        self.session = session

    def __repr__(self) -> str:  # never show the key
        return f"FlickrClient(rest_url={self.rest_url!r})"

    # --- public calls ----------------------------------------------------------------------------
    def call(self, method: str, **args: Any) -> dict[str, Any]:
        """Call ``method`` (e.g. ``flickr.test.echo``) and return the parsed JSON answer."""
        return self._with_retries(method, args, lambda answer: answer)

    def search(self, **args: Any) -> SearchPage:
        """``flickr.photos.search`` with ``args``; a malformed envelope counts as a transient failure."""
        return self._with_retries("flickr.photos.search", args, _search_page)

    def close(self) -> None:
        """Close the pooled connections (the client and its session refer to each other: without this, the
        sockets stay open until the garbage collector finds the cycle)."""
        self.session.close()

    def __enter__(self) -> "FlickrClient":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- internals -------------------------------------------------------------------------------
    def _with_retries(self, method: str, args: dict[str, Any], parse: Callable[[dict[str, Any]], Any]) -> Any:
        attempt = 0
        while True:
            attempt += 1
            try:
                return parse(self._once(method, args))
            except PermanentFlickrError as error:
                self.stats.errors[error.kind] += 1
                raise
            except TransientFlickrError as error:
                self.stats.errors[error.kind] += 1
                refused = error.kind == "refused"
                if attempt >= self.max_attempts and refused and not self._answered:
                    # Flickr never refuses connections: nothing listens where FLICKR_API_URL points, and the
                    # asset's retries would only add minutes before saying so.
                    raise PermanentFlickrError(str(error)) from None
                if attempt >= self.max_attempts:
                    raise TransientFlickrError(
                        f"{error} (gave up after {attempt} attempts)",
                        code=error.code,
                        http_status=error.http_status,
                        kind=error.kind,
                    ) from None
                delay = self._backoff(attempt, error.retry_after, throttled=error.http_status == 429, refused=refused)
                log.info("retrying %s in %.2fs after: %s", method, delay, error)
                self.stats.retries += 1
                self.stats.backoff_seconds += delay
                self._sleep(delay)

    def _backoff(
        self, attempt: int, retry_after: float | None, throttled: bool = False, refused: bool = False
    ) -> float:
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        # A refusal costs the server nothing: wait the whole backoff, so that a server (or proxy) restarting
        # gets its ~30 s over the attempts before a refused URL counts as a wrong one.
        delay = ceiling if refused else self._rng.uniform(0, ceiling)
        if retry_after is not None and retry_after > 0:
            retry_after = min(retry_after, RETRY_AFTER_MAX_S)
            self.limiter.penalize(retry_after)  # everyone sharing the key waits, not just this run
            delay = max(delay, retry_after)
        elif throttled:  # a 429 that does not say how long (none was seen to): everyone waits our backoff
            self.limiter.penalize(delay)
        return delay

    def _once(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        self.stats.budget_wait_seconds += self.limiter.acquire()
        self.stats.calls += 1
        self._last.status = None
        self._last.retry_after = None
        self._last.oauth_problem = None
        try:
            answer = self._api.do_flickr_call(method, timeout=self.timeout, **args)
        except flickrapi.exceptions.FlickrError as error:
            status = getattr(self._last, "status", None)
            if error.code is not None:
                raise api_error(method, error.code, self._redact(_flickr_message(error))) from None
            if status is not None and status != 200:
                raise http_error(method, status, self._last.retry_after, self._last.oauth_problem) from None
            raise TransientFlickrError(f"Flickr call {method} failed: {self._redact(str(error))}") from None
        except _BadAnswerBody as error:
            raise TransientFlickrError(f"Flickr's answer to {method} was refused: {error}", kind="bad_body") from None
        except requests.Timeout:
            raise TransientFlickrError(
                f"Flickr did not answer {method} within {self.timeout:g}s", kind="timeout"
            ) from None
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as error:
            if (not_made := _connection_not_made(error)) is not None:
                # A wrong FLICKR_API_URL looks like this too: say where we tried, so the user can check it.
                refused = isinstance(not_made.__cause__ or not_made.__context__, ConnectionRefusedError)
                raise TransientFlickrError(
                    f"cannot connect to Flickr at {self.rest_url} ({_connect_reason(error)}) — "
                    "check FLICKR_API_URL and the network",
                    kind="refused" if refused else "connection",
                ) from None
            raise TransientFlickrError(
                f"connection to Flickr lost during {method} ({type(error).__name__})", kind="connection"
            ) from None
        except requests.RequestException as error:
            raise PermanentFlickrError(
                f"cannot call Flickr at {self.rest_url}: {self._redact(str(error))} — check FLICKR_API_URL"
            ) from None
        except (ValueError, KeyError, TypeError, AttributeError):  # an HTML page, XML, JSONP, a fail without code
            raise TransientFlickrError(
                f"Flickr answered {method} with a body that is not JSON", kind="bad_body"
            ) from None
        if not isinstance(answer, dict) or answer.get("stat") != "ok":
            raise TransientFlickrError(f"Flickr answered {method} without stat=ok", kind="bad_body")
        return answer

    def _record_response(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self._answered = True
        self._last.status = response.status_code
        self._last.retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        # OAuth's refusals ("oauth_problem=signature_invalid&debug_sbs=…"): keep only the problem's name (the
        # rest echoes the signed request, key included).
        problem = parse_qs(response.text).get("oauth_problem", [None])[0] if response.status_code == 401 else None
        self._last.oauth_problem = problem if problem and problem.replace("_", "").isalnum() else None

    def _redact(self, text: str) -> str:
        for secret in (self._key, self._secret):
            if secret:
                text = text.replace(secret, "***")
        return text


def _connection_not_made(error: Exception) -> urllib3.exceptions.NewConnectionError | None:
    """The failure to connect at all (refused, unknown host) behind ``error``; None for one lost midway."""
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return reason if isinstance(reason, urllib3.exceptions.NewConnectionError) else None


def _connect_reason(error: Exception) -> str:
    """``connection refused``, ``Name or service not known``...: the OS's words, without urllib3's wrapping."""
    found = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", str(error))
    return found.group(1).strip().lower() if found else "no connection"


def _flickr_message(error: flickrapi.exceptions.FlickrError) -> str:
    # flickrapi formats in-band failures as "Error: <code>: <message>"; keep the message part.
    text = str(error)
    prefix = f"Error: {error.code}: "
    return text[len(prefix) :] if text.startswith(prefix) else text


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise TransientFlickrError(f"search envelope field {name!r} is not a number: {value!r}", kind="bad_body")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdecimal():
        return int(value)
    raise TransientFlickrError(f"search envelope field {name!r} is not a number: {value!r:.40}", kind="bad_body")


def _search_page(answer: dict[str, Any]) -> SearchPage:
    photos = answer.get("photos")
    if not isinstance(photos, dict):
        raise TransientFlickrError("search answer has no 'photos' object", kind="bad_body")
    items = photos.get("photo", [])
    if not isinstance(items, list):
        raise TransientFlickrError(f"search answer's photo list is a {type(items).__name__}", kind="bad_body")
    page = SearchPage(
        page=_int(photos.get("page"), "page"),
        pages=_int(photos.get("pages"), "pages"),
        per_page=_int(photos.get("perpage", photos.get("per_page")), "perpage"),
        total=_int(photos.get("total"), "total"),
        photos=items,
    )
    problem = _implausible(page)
    if problem:
        raise TransientFlickrError(f"search answer is implausible: {problem}", kind="bad_body")
    return page


MAX_TOTAL = 10_000_000_000  # more photos than Flickr holds


def _implausible(page: SearchPage) -> str | None:
    """Why an envelope that parsed cannot be right (so that the harvest never ends a walk on nonsense)."""
    if page.page < 1 or page.per_page < 1 or page.pages < 0:
        return f"page {page.page} of {page.pages} at {page.per_page} per page"
    if not 0 <= page.total <= MAX_TOTAL:
        return f"total {page.total}"
    if len(page.photos) > page.per_page:
        return f"{len(page.photos)} photos on a page of {page.per_page}"
    if page.page == 1 and not page.photos and page.total > page.per_page:
        return f"an empty first page although the total is {page.total}"
    return None


__all__ = [
    "FLICKR_REST_URL",
    "ClientStats",
    "FlickrClient",
    "FlickrError",
    "NoLimit",
    "SearchPage",
]
