"""The simulator: one threaded HTTP/1.1 server on 127.0.0.1 playing Flickr's REST API and static photo host."""

import random
import re
import socket
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

import numpy as np

from . import responses
from .faults import REST_KINDS, STATIC_KINDS, Budget, BudgetTracker, FaultPicker, Faults
from .images import ImageStore, RenderKey, placeholder_png
from .photos import secret, server, sizes
from .responses import HTML_5XX, HTML_429, Format
from .search import ApiError, search
from .spec import DEMO_API_KEY, DEMO_API_SECRET, SUFFIX_TO_SIZE, UniverseSpec
from .stats import Stats
from .truth import GroundTruth
from .universe import NORMAL, ZOO_KINDS, Universe, universe_for

REST_PATH = "/services/rest/"
PLACEHOLDER_PATH = "/pw/images/en-us/photo_unavailable.png"
PLACEHOLDER_LARGE_PATH = "/pw/images/en-us/photo_unavailable_l.png"
_STATIC = re.compile(r"^/(\d+)/(\d+)_([0-9a-f]+)(?:_([a-z0-9]+))?\.(jpg|png|gif)$")
_OAUTH_KEY = re.compile(r'oauth_consumer_key="([^"]*)"')
_KEY_FORMAT = re.compile(r"^[0-9a-f]{32}$")
_CALLBACK = re.compile(r"^[A-Za-z_$][\w$.]{0,63}$")
_SECRETS_IN_LOGS = re.compile(r"(api_key|oauth_consumer_key|oauth_signature)=[^&\s\"]*")


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


class Simulator:
    """Flickr on 127.0.0.1: REST at ``rest_url``, photos on ``base_url``; ``truth`` and ``stats`` for tests.

    ``faults`` may be replaced at any time; ``budget`` limits REST calls per key. Use as a context manager
    or call ``start()`` / ``stop()``.
    """

    def __init__(
        self,
        seed: int = 7,
        cache_dir: Path | str = Path(".simulator-cache"),
        spec: UniverseSpec | None = None,
        faults: Faults | None = None,
        budget: Budget | None = None,
        api_keys: dict[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        self.seed = seed
        self.spec = spec or UniverseSpec()
        self.universe: Universe = universe_for(seed, self.spec)
        self.images = ImageStore(Path(cache_dir), self.spec.digest(seed), seed)
        self.api_keys = dict(api_keys) if api_keys is not None else {DEMO_API_KEY: DEMO_API_SECRET}
        self.budget = BudgetTracker(budget)
        self.faults = faults or Faults()
        self.stats = Stats()
        self.truth = GroundTruth(lambda: self.universe)
        self._host, self._port = host, port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._placeholders = {PLACEHOLDER_PATH: placeholder_png(False), PLACEHOLDER_LARGE_PATH: placeholder_png(True)}
        self._rng = np.random.default_rng()
        self._rng_lock = threading.Lock()

    @property
    def faults(self) -> Faults:
        return self._picker.faults

    @faults.setter
    def faults(self, value: Faults) -> None:
        self._picker = FaultPicker(value)

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def start(self) -> "Simulator":
        if self._server is not None:
            return self
        httpd = _Server((self._host, self._port), _Handler)
        httpd.simulator = self
        self._server = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, name="flickr-simulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> "Simulator":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("Simulator is not running: call start() or use it as a context manager")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def rest_url(self) -> str:
        return self.base_url + REST_PATH

    # -- changing the world ------------------------------------------------------------------------------------
    def upload(self, keyword: str, count: int, when: int | None = None) -> list[int]:
        """Add ``count`` photos matching ``keyword``, uploaded now (or at unix time ``when``); visible at once."""
        return self.universe.upload(keyword, count, int(time.time()) if when is None else int(when))

    def delete(self, photo_id: int) -> None:
        """Make a photo unavailable: its images answer the placeholder redirect from now on."""
        self.universe.delete(int(photo_id))

    def random(self) -> np.random.Generator:
        """A fresh per-call generator (results shift between identical calls, like Flickr's)."""
        with self._rng_lock:
            return np.random.default_rng(self._rng.integers(0, 2**63))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    simulator: Simulator


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "flickr-simulator"
    sys_version = ""
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle + delayed ACK add ~40 ms to each.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: object) -> None:  # quiet; never log keys
        return

    def do_GET(self) -> None:
        self._route(head=False)

    def do_HEAD(self) -> None:
        self._route(head=True)

    def do_POST(self) -> None:
        self._route(head=False)

    # -- routing -----------------------------------------------------------------------------------------------
    def _route(self, head: bool) -> None:
        sim = self.server.simulator
        url = urlsplit(self.path)
        path = url.path
        body = b""
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            body = self.rfile.read(length)
        if path in ("/services/rest", REST_PATH):
            self._rest(sim, url.query, body, head)
        elif path in sim._placeholders:
            sim.stats.static(path)
            self._send(200, sim._placeholders[path], "image/png", head=head)
        elif (match := _STATIC.match(path)) is not None:
            sim.stats.static(path)
            self._static(sim, match, head)
        else:
            self._send(
                404, b"<html><body><h1>404 Not Found</h1></body></html>\n", "text/html; charset=utf-8", head=head
            )

    # -- REST --------------------------------------------------------------------------------------------------
    def _rest(self, sim: Simulator, query: str, body: bytes, head: bool) -> None:
        args = dict(parse_qsl(query, keep_blank_values=True))
        if body and "form" in self.headers.get("Content-Type", "application/x-www-form-urlencoded"):
            args.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        method = args.get("method", "")
        key = args.get("api_key") or _oauth_key(self.headers.get("Authorization", ""))
        sim.stats.rest(method, key)
        fmt_name = args.get("format", "rest") or "rest"
        if fmt_name == "json":
            callback = None if args.get("nojsoncallback") == "1" else args.get("jsoncallback") or "jsonFlickrApi"
            fmt = Format("json", callback if callback is None or _CALLBACK.match(callback) else "jsonFlickrApi")
        else:
            fmt = Format("rest")
        if fmt_name not in ("rest", "json"):
            return self._api(fmt, responses.fail(fmt, 111, f'Format "{fmt_name}" not found'), head)
        if not key or not _KEY_FORMAT.match(key):
            return self._api(fmt, responses.fail(fmt, 100, "Invalid API Key (Key has invalid format)"), head)
        if key not in sim.api_keys:
            return self._api(fmt, responses.fail(fmt, 100, "Invalid API Key (Key not found)"), head)
        if key in sim.budget.expired:
            return self._api(fmt, responses.fail(fmt, 100, "Invalid API Key (Key has expired)"), head)
        if not sim.budget.admit(key):
            sim.stats.budget_rejection()
            return self._send(429, HTML_429, "text/html; charset=utf-8", head=head, retry_after=3600)
        slow, fault = sim._picker.pick(REST_KINDS)
        if slow:
            sim.stats.fault("slow")
            time.sleep(sim.faults.slow_seconds)
        if fault is not None:
            sim.stats.fault(fault)
            if self._rest_fault(sim, fault, fmt, head):
                return
        try:
            payload = self._dispatch(sim, method, args)
        except ApiError as error:
            return self._api(fmt, responses.fail(fmt, error.code, error.message), head)
        self._api(fmt, responses.ok(fmt, payload), head)

    def _dispatch(self, sim: Simulator, method: str, args: dict[str, str]) -> list[responses.Element]:
        if method == "flickr.photos.search":
            result = search(sim.universe, args, int(time.time()), sim.random())
            extras = {e.strip().lower() for e in args.get("extras", "").split(",") if e.strip()}
            return responses.photos_payload(sim.universe, result, extras, sim.base_url)
        if method == "flickr.photos.licenses.getInfo":
            return responses.licenses_payload()
        if method == "flickr.test.echo":
            return responses.echo_payload(args)
        raise ApiError(112, f'Method "{method}" not found')

    def _rest_fault(self, sim: Simulator, fault: str, fmt: Format, head: bool) -> bool:
        """Answer with the injected fault; False when the fault does not replace the answer."""
        if fault == "drop":
            self.close_connection = True
            return True
        if fault == "rest_429":
            self._send(429, HTML_429, "text/html; charset=utf-8", head=head, retry_after=sim.faults.retry_after)
        elif fault == "rest_5xx":
            self._send(sim._picker.choice([500, 502, 503]), HTML_5XX, "text/html; charset=utf-8", head=head)  # type: ignore[arg-type]
        elif fault == "api_error":
            code, message = sim._picker.choice(  # type: ignore[misc]
                [
                    (105, "Service currently unavailable"),
                    (201, "Sorry, the Flickr API service is not currently available."),
                ]
            )
            self._api(fmt, responses.fail(fmt, code, message), head)
        elif fault == "bad_body":
            if sim._picker.choice([True, False]):
                self._send(
                    200,
                    b"<!DOCTYPE html><html><body>Flickr is having a massage.</body></html>",
                    "text/html; charset=utf-8",
                    head=head,
                )
            else:  # the other format than the one asked for
                other = Format("json", None) if fmt.kind == "rest" else Format("rest")
                self._api(
                    other, responses.fail(other, 201, "Sorry, the Flickr API service is not currently available."), head
                )
        elif fault == "garbled":
            self._api(fmt, sim._picker.choice(GARBLED_JSON if fmt.kind == "json" else GARBLED_XML), head)  # type: ignore[arg-type]
        return True

    def _api(self, fmt: Format, body: bytes, head: bool) -> None:
        self._send(200, body, fmt.content_type, head=head)

    # -- static host -------------------------------------------------------------------------------------------
    def _static(self, sim: Simulator, match: re.Match[str], head: bool) -> None:
        srv, photo_id, given_secret, suffix, ext = (
            match.group(1),
            int(match.group(2)),
            match.group(3),
            match.group(4),
            match.group(5),
        )
        universe = sim.universe
        row = universe.row_of(photo_id)
        if row is None:
            return self._send(
                404, b"<html><body><h1>404 Not Found</h1></body></html>\n", "text/html; charset=utf-8", head=head
            )
        slow, fault = sim._picker.pick(STATIC_KINDS)
        if slow:
            sim.stats.fault("slow")
            time.sleep(sim.faults.slow_seconds)
        if fault == "drop":
            sim.stats.fault(fault)
            self.close_connection = True
            return
        cols = universe.cols
        suffix = suffix or ""
        original = suffix == "o"
        expected = secret(universe.seed, photo_id, "o" if original else "s")
        photo_sizes = {s.suffix: s for s in sizes(universe, row)}
        size = photo_sizes.get(suffix)
        good = (
            size is not None
            and given_secret == expected
            and srv == server(photo_id, int(cols.upload[row]))
            and ext == "jpg"
            and (original or suffix in SUFFIX_TO_SIZE)
        )
        if not good or cols.deleted[row]:
            target = PLACEHOLDER_LARGE_PATH if suffix == "b" else PLACEHOLDER_PATH
            return self._send(302, b"", "text/html; charset=utf-8", head=head, location=sim.base_url + target)
        if fault in ("static_429", "static_5xx", "html"):
            sim.stats.fault(fault)
            if fault == "static_429":
                return self._send(
                    429, HTML_429, "text/html; charset=utf-8", head=head, retry_after=sim.faults.retry_after
                )
            if fault == "static_5xx":
                return self._send(
                    sim._picker.choice([500, 502, 503, 504]), HTML_5XX, "text/html; charset=utf-8", head=head
                )  # type: ignore[arg-type]
            return self._send(
                200,
                b"<!DOCTYPE html><html><head><title>Flickr</title></head><body>Oops</body></html>",
                "text/html; charset=utf-8",
                head=head,
            )
        zoo = ZOO_KINDS[cols.zoo[row]][0] if cols.zoo[row] != NORMAL else ""
        key = RenderKey(
            content=int(cols.content[row]),
            variant=int(cols.variant[row]),
            width=size.width if not size.square else int(cols.width[row]),
            height=size.height if not size.square else int(cols.height[row]),
            frame=int(cols.frame[row]),
            frame_fraction=float(cols.frame_fraction[row]),
            orientation=int(cols.orientation[row]) if original else 1,
            square=size.square,
            zoo=zoo if zoo not in ("one_side_frame", "tiny") else "",
        )
        if key.square:  # square thumbnails: the photo scaled so its shorter side is the edge, then cropped
            scale = key.square / min(key.width, key.height)
            key = replace(
                key, width=max(key.square, round(key.width * scale)), height=max(key.square, round(key.height * scale))
            )
        rendered_before = sim.images.rendered
        data = sim.images.get(key)
        if sim.images.rendered != rendered_before:
            sim.stats.rendered()
        if fault == "truncate" and len(data) > 16:
            sim.stats.fault(fault)
            return self._send(200, data, "image/jpeg", head=head, truncate_to=len(data) // 2)
        if fault == "corrupt" and len(data) > 1_000:
            sim.stats.fault(fault)
            data = _garble(data, sim._picker.choice(list(range(1_000_000))))  # type: ignore[arg-type]
        self._send(200, data, "image/jpeg", head=head)

    # -- writing -----------------------------------------------------------------------------------------------
    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        head: bool = False,
        retry_after: int | None = None,
        location: str | None = None,
        truncate_to: int | None = None,
    ) -> None:
        self.server.simulator.stats.status(status)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if retry_after is not None:
            self.send_header("Retry-After", str(retry_after))
        if location is not None:
            self.send_header("Location", location)
        self.end_headers()
        if head:
            return
        if truncate_to is not None:
            self.wfile.write(body[:truncate_to])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


def _oauth_key(header: str) -> str | None:
    if not header.startswith("OAuth "):
        return None
    match = _OAUTH_KEY.search(header)
    return None if match is None else unquote(match.group(1))


def _garble(data: bytes, seed: int) -> bytes:
    """Same length, but the JPEG's tables (right after the start marker) overwritten with junk."""
    rng = random.Random(seed)
    out = bytearray(data)
    for i in range(2, min(len(out) - 2, 602)):
        out[i] = rng.randrange(256)
    return bytes(out)
