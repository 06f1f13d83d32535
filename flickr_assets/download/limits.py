"""Per-host manners: a cap on concurrent requests per host (a lower cap and a minimum spacing for Originals)
and a pause of a host after it answers 429, for every fetcher at once. Flickr's host throttles Originals at
low rates without saying how long to wait: each such 429 on an Original also widens their spacing (doubling,
up to :data:`MAX_EXTRA_SPACING`), which then narrows again by a few percent per request.

:class:`HostLimiter` works across threads and, built from :class:`SharedLimits`, across the download's
worker processes (each worker fetches its own images): the caps are then process-shared semaphores and the
spacing / pause times live in shared memory (``time.monotonic`` is one system-wide clock on Linux). Shared
limits are made before the workers start, so hosts map onto a fixed number of buckets; two hosts sharing a
bucket share its cap, which is only ever stricter. A worker killed while holding slots (SIGKILL, the OOM
killer) would keep them forever and could stall every other worker: each worker's slots are counted in
shared memory, and the download process gives back those of a dead worker (:meth:`SharedLimits.release_held`).
"""

import contextlib
import multiprocessing.context
import threading
import time
import urllib.parse
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from flickr_assets.download.classify import is_original_url

#: Buckets per request class (Large / Original) of shared limits.
SHARED_BUCKETS = 8
#: Spacing added between Originals after a 429 that gave no Retry-After: first step, cap, and the share kept
#: after each request (0.97: halved after ~23 requests without a 429).
FIRST_EXTRA_SPACING = 0.5
MAX_EXTRA_SPACING = 10.0
EXTRA_SPACING_DECAY = 0.97
#: Doubles of state per gate: earliest next start, end of a pause, extra spacing.
_STATE = 3


class _Held:
    """Slots this process holds, per gate, mirrored into shared memory (``counts[at]``) for the download
    process to give back if this process dies holding them."""

    def __init__(self, counts: Any, at: int) -> None:
        self._counts = counts
        self._at = at
        self._mine = 0
        self._lock = threading.Lock()  # fetch threads of one process update one count

    def add(self, step: int) -> None:
        with self._lock:
            self._mine += step
            self._counts[self._at] = self._mine  # one store: the shared count is never half-updated


class _Gate:
    """Concurrency cap, minimum spacing and pause for one (host, class) pair. ``state[offset]`` is the
    earliest next start (spacing), ``state[offset + 1]`` the end of a pause, ``state[offset + 2]`` the spacing
    added after throttling."""

    def __init__(
        self, slots: Any, lock: Any, state: Any, offset: int, interval: float, held: _Held | None = None
    ) -> None:
        self._slots = slots
        self._lock = lock
        self._state = state
        self._offset = offset
        self._interval = interval
        self._held = held

    def acquire(self) -> None:
        self._slots.acquire()
        if self._held is not None:
            self._held.add(1)
        state, offset = self._state, self._offset
        try:
            while True:
                with self._lock:
                    now = time.monotonic()
                    start = max(state[offset], state[offset + 1])
                    if now >= start:
                        extra = state[offset + 2]
                        state[offset] = now + self._interval + extra
                        state[offset + 2] = extra * EXTRA_SPACING_DECAY if extra > 0.01 else 0.0
                        return
                time.sleep(start - now)
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        # Counted down first: a death between the two steps loses one slot, never gives one back twice.
        if self._held is not None:
            self._held.add(-1)
        self._slots.release()

    def pause(self, seconds: float, widen: bool = False) -> None:
        with self._lock:
            index = self._offset + 1
            self._state[index] = max(self._state[index], time.monotonic() + seconds)
            if widen:
                extra = self._state[self._offset + 2]
                self._state[self._offset + 2] = min(MAX_EXTRA_SPACING, max(FIRST_EXTRA_SPACING, 2 * extra))

    def extra_spacing(self) -> float:
        return self._state[self._offset + 2]


@dataclass
class SharedLimits:
    """Process-shared state of a :class:`HostLimiter`; pass it to worker processes when starting them."""

    per_host: int
    per_host_original: int
    original_interval: float
    slots: list[Any]  # semaphores: SHARED_BUCKETS for Large, then SHARED_BUCKETS for Originals
    lock: Any  # guards ``state``; held for a few instructions only, never across a wait
    state: Any  # RawArray of doubles, ``_STATE`` per semaphore
    held: Any  # RawArray of ints: slots held by worker w on semaphore g at w * len(slots) + g

    @classmethod
    def create(
        cls,
        context: multiprocessing.context.BaseContext,
        per_host: int,
        per_host_original: int,
        interval: float,
        workers: int = 1,
    ) -> "SharedLimits":
        """Fresh limits (nothing in flight, no pause) for ``workers`` numbered processes, made with
        ``context``'s primitives."""
        limits = [per_host] * SHARED_BUCKETS + [per_host_original] * SHARED_BUCKETS
        return cls(
            per_host,
            per_host_original,
            interval,
            [context.BoundedSemaphore(limit) for limit in limits],
            context.Lock(),
            context.RawArray("d", _STATE * len(limits)),
            context.RawArray("i", workers * len(limits)),
        )

    def release_held(self, worker: int) -> int:
        """Give back the slots that ``worker`` (dead) still held, and the state lock if it died holding it;
        returns the number of slots given back. Call only once the process is gone."""
        given = 0
        for index, slots in enumerate(self.slots):
            at = worker * len(self.slots) + index
            for _ in range(self.held[at]):
                with contextlib.suppress(ValueError):  # never more than the cap
                    slots.release()
                    given += 1
            self.held[at] = 0
        # Live holders keep the lock for microseconds: still taken after a second, it was the dead worker's.
        if self.lock.acquire(timeout=1.0):
            self.lock.release()
        else:
            with contextlib.suppress(ValueError):
                self.lock.release()
        return given


class HostLimiter:
    """Per-host request limits shared by all fetch threads (and processes, see :meth:`shared`)."""

    def __init__(self, per_host: int, per_host_original: int, original_interval: float) -> None:
        self._per_host = per_host
        self._per_host_original = per_host_original
        self._original_interval = original_interval
        self._gates: dict[tuple[str, bool], _Gate] = {}
        self._lock = threading.Lock()
        self._shared: SharedLimits | None = None
        self._worker = 0
        self._held: dict[int, _Held] = {}  # per shared semaphore: two hosts in one bucket count together

    @classmethod
    def shared(cls, limits: SharedLimits, worker: int = 0) -> "HostLimiter":
        """A limiter whose caps, spacing and pauses hold across every process given the same ``limits``;
        ``worker`` numbers this process among them (where its held slots are counted)."""
        limiter = cls(limits.per_host, limits.per_host_original, limits.original_interval)
        limiter._shared = limits
        limiter._worker = worker
        return limiter

    def _gate(self, url: str) -> _Gate:
        key = (urllib.parse.urlsplit(url).netloc.lower(), is_original_url(url))
        with self._lock:
            gate = self._gates.get(key)
            if gate is None:
                interval = self._original_interval if key[1] else 0.0
                shared = self._shared
                if shared is None:
                    limit = self._per_host_original if key[1] else self._per_host
                    gate = _Gate(threading.BoundedSemaphore(limit), threading.Lock(), [0.0] * _STATE, 0, interval)
                else:
                    index = zlib.crc32(key[0].encode()) % SHARED_BUCKETS + (SHARED_BUCKETS if key[1] else 0)
                    held = self._held.get(index)
                    if held is None:
                        held = self._held[index] = _Held(shared.held, self._worker * len(shared.slots) + index)
                    gate = _Gate(shared.slots[index], shared.lock, shared.state, _STATE * index, interval, held)
                self._gates[key] = gate
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

    def throttled(self, url: str, seconds: float) -> None:
        """A 429 without Retry-After for ``url``: pause its host and class for ``seconds``, and if it is an
        Original, widen the spacing of Originals."""
        self._gate(url).pause(seconds, widen=is_original_url(url))

    def extra_spacing(self, url: str) -> float:
        """Seconds currently added between requests of ``url``'s host and class after throttling."""
        return self._gate(url).extra_spacing()
