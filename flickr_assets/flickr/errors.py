"""What can go wrong talking to Flickr, split by what to do about it.

:class:`TransientFlickrError` is worth retrying (overload, network, a garbled body);
:class:`PermanentFlickrError` is not (a bad or expired key, bad arguments): retrying only burns budget.
Messages are one actionable line and never contain the API key or secret.
"""

KEY_HELP = "get a key at https://www.flickr.com/services/apps/create/ and export FLICKR_API_KEY / FLICKR_API_SECRET"

#: Flickr API codes that mean "try again later": 105 service unavailable, 10 search unavailable,
#: 201 (undocumented, seen under load), 0 (seen once with the 201 message).
TRANSIENT_API_CODES = frozenset({0, 10, 105, 201})


class FlickrError(Exception):
    """A failed Flickr call. ``code`` is Flickr's API error code, or None for transport problems."""

    def __init__(self, message: str, code: int | None = None, http_status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = http_status

    @property
    def kind(self) -> str:
        """A short label for counters: ``api_<code>``, ``http_<status>`` or the class of problem."""
        if self.code is not None:
            return f"api_{self.code}"
        if self.http_status is not None:
            return f"http_{self.http_status}"
        return type(self).__name__


class PermanentFlickrError(FlickrError):
    """A failure that will not go away by retrying: fix the key, the keyword or the settings."""


class TransientFlickrError(FlickrError):
    """A failure that may pass: overload, timeouts, dropped connections, a malformed body."""

    def __init__(
        self,
        message: str,
        code: int | None = None,
        http_status: int | None = None,
        retry_after: float | None = None,
        kind: str | None = None,
    ) -> None:
        super().__init__(message, code, http_status)
        self.retry_after = retry_after
        self._kind = kind

    @property
    def kind(self) -> str:
        return self._kind or super().kind


def api_error(method: str, code: int, message: str) -> FlickrError:
    """The exception for an in-band ``stat=fail`` answer to ``method``."""
    if code in TRANSIENT_API_CODES:
        return TransientFlickrError(f"Flickr is unavailable ({method}: error {code}: {message})", code=code)
    if code == 100:
        return PermanentFlickrError(f"Flickr rejected FLICKR_API_KEY: {message} — {KEY_HELP}", code=code)
    if code in (95, 96, 97, 98, 99):
        return PermanentFlickrError(
            f"Flickr refused the request signature or login ({method}: error {code}: {message}) — "
            "check FLICKR_API_SECRET",
            code=code,
        )
    if code == 3:
        return PermanentFlickrError(
            f"Flickr refused a search without criteria ({method}: error 3: {message}) — "
            "give the keyword a text or tags",
            code=code,
        )
    return PermanentFlickrError(f"Flickr rejected the call {method}: error {code}: {message}", code=code)


def http_error(method: str, status: int, retry_after: float | None, oauth_problem: str | None = None) -> FlickrError:
    """The exception for a non-200 HTTP answer to ``method`` (``oauth_problem``: what a 401 body named)."""
    if status == 401 and oauth_problem == "signature_invalid":
        return PermanentFlickrError(
            f"Flickr refused the request signature ({oauth_problem} on {method}) — check FLICKR_API_SECRET: it "
            "must be the secret issued with FLICKR_API_KEY",
            http_status=status,
        )
    if status == 401 and oauth_problem:  # timestamp_refused, nonce_used...: OAuth's words, no secret to blame
        hint = " — check this machine's clock" if "timestamp" in oauth_problem else ""
        return PermanentFlickrError(
            f"Flickr refused the request ({oauth_problem} on {method}){hint}", http_status=status
        )
    if status == 429:
        message = f"Flickr says too many requests (HTTP 429 on {method}); slowing down"
        return TransientFlickrError(message, http_status=status, retry_after=retry_after)
    if status >= 500 or status == 408:
        message = f"Flickr answered HTTP {status} to {method}"
        return TransientFlickrError(message, http_status=status, retry_after=retry_after)
    return PermanentFlickrError(
        f"Flickr answered HTTP {status} to {method} — check FLICKR_API_URL and the request", http_status=status
    )
