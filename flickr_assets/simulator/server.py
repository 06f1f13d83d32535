"""The simulator: one threaded HTTP/1.1 server on 127.0.0.1 playing Flickr's REST API and static photo host.

This module holds :class:`Simulator` (lifecycle, the world's changes) and the HTTP handler that routes each
request and writes its :class:`~.reply.Reply`; the answers themselves come from ``rest.py`` and ``static.py``.
"""

import socket
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from . import rest, static
from .faults import Budget, BudgetTracker, FaultPicker, Faults, T
from .images import ImageStore, placeholder_png
from .reply import NOT_FOUND, Reply
from .rest import REST_PATH
from .spec import DEMO_API_KEY, DEMO_API_SECRET, UniverseSpec
from .static import PLACEHOLDER_LARGE_PATH, PLACEHOLDER_PATH
from .stats import Stats
from .truth import GroundTruth
from .universe import Universe, universe_for


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
    ) -> None:
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
        """The fault probabilities in force (setting new ones restarts the fault generator from their seed)."""
        return self._picker.faults

    @faults.setter
    def faults(self, value: Faults) -> None:
        self._picker = FaultPicker(value)

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def start(self) -> "Simulator":
        """Start serving on a background thread (a no-op when already running); returns ``self``."""
        if self._server is not None:
            return self
        httpd = _Server((self._host, self._port), _Handler)
        httpd.simulator = self
        self._server = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, name="flickr-simulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (a no-op when not running)."""
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
        """``http://<host>:<port>``: the static host's root (the port is known once started)."""
        if self._server is None:
            raise RuntimeError("Simulator is not running: call start() or use it as a context manager")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def rest_url(self) -> str:
        """The REST endpoint, as ``FLICKR_API_URL`` takes it."""
        return self.base_url + REST_PATH

    # -- changing the world ------------------------------------------------------------------------------------
    def upload(self, keyword: str, count: int, when: int | None = None) -> list[int]:
        """Add ``count`` photos matching ``keyword``, uploaded now (or at unix time ``when``); visible at once."""
        return self.universe.upload(keyword, count, int(time.time()) if when is None else int(when))

    def delete(self, photo_id: int) -> None:
        """Make a photo unavailable: its images answer the placeholder redirect from now on."""
        self.universe.delete(int(photo_id))

    def rotate_secret(self, photo_id: int) -> None:
        """Give a photo new secrets, as Flickr does when its owner replaces it: old image URLs answer the
        placeholder, searches show the new secret (and Original secret)."""
        self.universe.rotate_secret(int(photo_id))

    def edit_photo(self, photo_id: int, *, title: str | None = None, license: int | None = None) -> None:
        """Change a photo's title and/or licence (its owner edited it): searches show the new values."""
        self.universe.edit(int(photo_id), title=title, license=license)

    def draw_fault(self, kinds: tuple[str, ...]) -> str | None:
        """The fault of one request that may suffer ``kinds`` (None: answer normally), after the delay of a
        slow answer when one is drawn too."""
        slow, fault = self._picker.pick(kinds)
        if slow:
            self.stats.fault("slow")
            time.sleep(self.faults.slow_seconds)
        return fault

    def original_throttled(self) -> bool:
        """Whether this request for an Original exceeds ``faults.originals_per_second``."""
        return self._picker.original_throttled()

    def fault_choice(self, options: Sequence[T]) -> T:
        """One of ``options`` (which 5xx, which garbled body, ...), from the faults' seeded generator."""
        return self._picker.choice(options)

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
            reply = rest.answer(sim, url.query, body, self.headers, self.command, url.path)
        elif path in sim._placeholders:
            sim.stats.static(path)
            reply = Reply(200, sim._placeholders[path], "image/png")
        elif (match := static.PHOTO_PATH.match(path)) is not None:
            sim.stats.static(path)
            reply = static.answer(sim, match)
        else:
            reply = NOT_FOUND
        self._send(reply, head)

    # -- writing -----------------------------------------------------------------------------------------------
    def _send(self, reply: Reply, head: bool) -> None:
        if reply.drop:
            self.close_connection = True
            return
        self.server.simulator.stats.status(reply.status)
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        if reply.retry_after is not None:
            self.send_header("Retry-After", str(reply.retry_after))
        if reply.location is not None:
            self.send_header("Location", reply.location)
        self.end_headers()
        if head:
            return
        if reply.truncate_to is not None:
            self.wfile.write(reply.body[: reply.truncate_to])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(reply.body)
