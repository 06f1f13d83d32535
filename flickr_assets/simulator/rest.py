"""The REST endpoint: arguments, API key and budget checks, injected faults and the methods Flickr answers."""

import re
import time
from email.message import Message
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote, unquote

from oauthlib.common import Request
from oauthlib.oauth1.rfc5849 import signature as oauth

from . import responses
from .faults import REST_KINDS
from .reply import DROP, HTML, Reply
from .responses import HTML_5XX, HTML_429, Format
from .search import ApiError, search

if TYPE_CHECKING:  # server.py imports this module to answer requests
    from .server import Simulator

REST_PATH = "/services/rest/"
_OAUTH_KEY = re.compile(r'oauth_consumer_key="([^"]*)"')
_KEY_FORMAT = re.compile(r"^[0-9a-f]{32}$")
_CALLBACK = re.compile(r"^[A-Za-z_$][\w$.]{0,63}$")

# Answers in the format asked for that still make no sense: cut short, wrong types, missing parts, absurd totals.
GARBLED_JSON: tuple[bytes, ...] = (
    b'{"photos":{"page":1,"pages":3,"perpage":250,"total":612,"photo":[{"id":"2000261165","owner":"12',
    b'{"photos":{"page":"one","pages":null,"perpage":[],"total":{"n":1},"photo":"none"},"stat":"ok"}',
    b'{"stat":"ok"}',
    b'{"photos":{"page":1,"pages":1,"perpage":250,"total":-5,"photo":[]},"stat":"ok"}',
    b'{"photos":{"page":1,"pages":40000000,"perpage":250,"total":999999999999999,"photo":[]},"stat":"ok"}',
)
GARBLED_XML: tuple[bytes, ...] = (
    b'<?xml version="1.0" encoding="utf-8" ?>\n<rsp stat="ok">\n<photos page="1" pages="3" perpage="250" tot',
    b'<?xml version="1.0" encoding="utf-8" ?>\n<rsp stat="ok">\n</rsp>',
)


def answer(
    sim: "Simulator", query: str, body: bytes, headers: Message, http_method: str = "GET", path: str = REST_PATH
) -> Reply:
    """The answer to one REST call (URL query plus form body), after key, signature, budget and fault checks."""
    args = dict(parse_qsl(query, keep_blank_values=True))
    if body and "form" in headers.get("Content-Type", "application/x-www-form-urlencoded"):
        args.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    method = args.get("method", "")
    key = args.get("api_key") or _oauth_key(headers.get("Authorization", ""))
    sim.stats.rest(method, key)
    fmt_name = args.get("format", "rest") or "rest"
    if fmt_name == "json":
        callback = None if args.get("nojsoncallback") == "1" else args.get("jsoncallback") or "jsonFlickrApi"
        fmt = Format("json", callback if callback is None or _CALLBACK.match(callback) else "jsonFlickrApi")
    else:
        fmt = Format("rest")
    if fmt_name not in ("rest", "json"):
        return _api(fmt, responses.fail(fmt, 111, f'Format "{fmt_name}" not found'))
    if not key or not _KEY_FORMAT.match(key):
        return _api(fmt, responses.fail(fmt, 100, "Invalid API Key (Key has invalid format)"))
    if key not in sim.api_keys:
        return _api(fmt, responses.fail(fmt, 100, "Invalid API Key (Key not found)"))
    # The signed URL is the one the client asked for: the Host it named and the path it used.
    url = f"http://{headers.get('Host') or sim.base_url.removeprefix('http://')}{path}"
    base = _bad_signature(url, http_method, query, body, headers, sim.api_keys[key])
    if base is not None:
        # Flickr checks an OAuth-signed call's signature against the key's secret (unsigned calls need only
        # the key) and answers a bad one in OAuth's words, outside the API's envelope.
        sim.stats.signature_rejection()
        return Reply(401, b"oauth_problem=signature_invalid&debug_sbs=" + quote(base).encode(), "text/plain")
    if key in sim.budget.expired:
        return _api(fmt, responses.fail(fmt, 100, "Invalid API Key (Key has expired)"))
    if not sim.budget.admit(key):
        sim.stats.budget_rejection()
        return Reply(429, HTML_429, retry_after=3600)
    fault = sim.draw_fault(REST_KINDS)
    if fault is not None:
        sim.stats.fault(fault)
        return _fault(sim, fault, fmt)
    try:
        payload = _dispatch(sim, method, args)
    except ApiError as error:
        return _api(fmt, responses.fail(fmt, error.code, error.message))
    return _api(fmt, responses.ok(fmt, payload))


def _dispatch(sim: "Simulator", method: str, args: dict[str, str]) -> list[responses.Element]:
    if method == "flickr.photos.search":
        result = search(sim.universe, args, int(time.time()), sim.random(), sim.faults.hidden_mask)
        extras = {e.strip().lower() for e in args.get("extras", "").split(",") if e.strip()}
        return responses.photos_payload(sim.universe, result, extras, sim.base_url)
    if method == "flickr.photos.licenses.getInfo":
        return responses.licenses_payload()
    if method == "flickr.test.echo":
        return responses.echo_payload(args)
    raise ApiError(112, f'Method "{method}" not found')


def _fault(sim: "Simulator", fault: str, fmt: Format) -> Reply:
    """The answer replacing the real one for an injected REST fault (one of ``REST_KINDS``)."""
    if fault == "drop":
        return DROP
    if fault == "rest_429":
        return Reply(429, HTML_429, retry_after=sim.faults.retry_after)
    if fault == "rest_5xx":
        return Reply(sim.fault_choice([500, 502, 503]), HTML_5XX)
    if fault == "api_error":
        code, message = sim.fault_choice(
            [
                (105, "Service currently unavailable"),
                (201, "Sorry, the Flickr API service is not currently available."),
            ]
        )
        return _api(fmt, responses.fail(fmt, code, message))
    if fault == "bad_body":
        if sim.fault_choice([True, False]):
            return Reply(200, b"<!DOCTYPE html><html><body>Flickr is having a massage.</body></html>", HTML)
        other = Format("json", None) if fmt.kind == "rest" else Format("rest")  # the other format than asked for
        return _api(other, responses.fail(other, 201, "Sorry, the Flickr API service is not currently available."))
    if fault == "garbled":
        return _api(fmt, sim.fault_choice(GARBLED_JSON if fmt.kind == "json" else GARBLED_XML))
    raise ValueError(f"unknown REST fault kind {fault!r}; expected one of {REST_KINDS}")


def _api(fmt: Format, body: bytes) -> Reply:
    return Reply(200, body, fmt.content_type)


def _bad_signature(url: str, http_method: str, query: str, body: bytes, headers: Message, secret: str) -> str | None:
    """None when the call is unsigned or its OAuth 1.0a HMAC-SHA1 signature was made with ``secret``; else the
    signature base string, which Flickr echoes as ``debug_sbs`` (the key is in it)."""
    authorization = headers.get("Authorization", "")
    if not authorization.startswith("OAuth "):
        return None
    form = body.decode("utf-8", "replace") if "form" in headers.get("Content-Type", "") else None
    try:
        collected = oauth.collect_parameters(
            query, form, {"Authorization": authorization}, exclude_oauth_signature=False
        )
    except ValueError:  # a malformed header
        return f"{http_method}&"
    params = [(name, value) for name, value in collected if name != "oauth_signature"]
    base = oauth.signature_base_string(http_method, oauth.base_string_uri(url), oauth.normalize_parameters(params))
    request = Request(url, http_method, form)
    request.params, request.signature = params, dict(collected).get("oauth_signature")
    fine = dict(params).get("oauth_signature_method") == "HMAC-SHA1" and request.signature is not None
    return None if fine and oauth.verify_hmac_sha1(request, client_secret=secret) else base


def _oauth_key(header: str) -> str | None:
    if not header.startswith("OAuth "):
        return None
    match = _OAUTH_KEY.search(header)
    return None if match is None else unquote(match.group(1))
