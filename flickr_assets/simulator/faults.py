"""Fault injection (per-request probabilities) and the per-key REST call budget."""

import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import TypeVar

import numpy as np

REST_KINDS = ("drop", "rest_429", "rest_5xx", "api_error", "bad_body", "garbled")
STATIC_KINDS = ("drop", "static_429", "static_5xx", "html", "truncate", "corrupt")

T = TypeVar("T")


@dataclass(frozen=True)
class Faults:
    """Probability per request of each misbehaviour; all off by default.

    REST requests can get ``drop``, ``rest_429``, ``rest_5xx``, ``api_error`` (in-band 105/201) or
    ``bad_body`` (HTML, or the wrong format), ``garbled`` (the right format but nonsense: truncated, wrong
    types, missing fields, absurd totals); static requests ``drop``, ``static_429``, ``static_5xx``,
    ``html`` (an HTML page with 200), ``truncate`` (fewer bytes than Content-Length) or ``corrupt`` (garbled
    JPEG bytes, same length). ``slow`` delays any request by ``slow_seconds`` first. 429s carry
    ``Retry-After: retry_after`` (none when it is None). ``hidden`` is not per request but per photo: that
    share of photos counts in a search's ``total`` and paging but is filtered out of every page (as Flickr
    filters photos after paging), so pages come back short; see :meth:`hides`. ``originals_per_second``
    (0: no limit) throttles Originals as Flickr's host does: one asked sooner than ``1 / originals_per_second``
    after the last one served gets a 429.
    """

    seed: int = 0
    rest_5xx: float = 0.0
    rest_429: float = 0.0
    api_error: float = 0.0
    slow: float = 0.0
    slow_seconds: float = 2.0
    drop: float = 0.0
    bad_body: float = 0.0
    garbled: float = 0.0
    static_5xx: float = 0.0
    static_429: float = 0.0
    truncate: float = 0.0
    corrupt: float = 0.0
    html: float = 0.0
    retry_after: int | None = 1  # None: 429s without a Retry-After header (none was ever seen on Flickr's)
    hidden: float = 0.0
    originals_per_second: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("seed", "retry_after", "slow_seconds", "originals_per_second"):
                if value is not None and value < 0:
                    raise ValueError(f"Faults: {f.name} must not be negative, got {value}")
            elif not 0.0 <= value <= 1.0:
                raise ValueError(f"Faults: {f.name} is a probability in [0, 1], got {value}")
        for kinds in (REST_KINDS, STATIC_KINDS):
            if sum(getattr(self, k) for k in kinds) > 1.0:
                raise ValueError(f"Faults: the probabilities of {', '.join(kinds)} add up to more than 1")

    @classmethod
    def parse(cls, text: str) -> "Faults":
        """``"rest_5xx=0.1,truncate=0.05"`` -> Faults (for the command line)."""
        names = {f.name: f.type for f in fields(cls)}
        values: dict[str, float | int] = {}
        for item in (part.strip() for part in text.split(",")):
            if not item:
                continue
            name, sep, raw = item.partition("=")
            name = name.strip()
            if not sep or name not in names:
                raise ValueError(f"Faults: bad item {item!r}; expected NAME=VALUE with NAME one of {', '.join(names)}")
            try:
                if name == "retry_after" and raw.strip().lower() == "none":
                    values[name] = None  # type: ignore[assignment]
                    continue
                values[name] = int(raw) if name in ("seed", "retry_after") else float(raw)
            except ValueError:
                raise ValueError(f"Faults: {name} needs a number, got {raw.strip()!r}") from None
        return cls(**values)  # type: ignore[arg-type]

    def hidden_mask(self, photo_ids: np.ndarray) -> np.ndarray:
        """Which of ``photo_ids`` are hidden from search pages (the same photos on every call)."""
        if not self.hidden:
            return np.zeros(len(photo_ids), dtype=bool)
        mixed = (photo_ids.astype(np.uint64) + np.uint64(self.seed)) * np.uint64(0x9E3779B97F4A7C15)
        return (mixed >> np.uint64(40)).astype(np.float64) < self.hidden * 2.0**24

    def hides(self, photo_id: int) -> bool:
        """Whether searches never show ``photo_id`` (though they count it)."""
        return bool(self.hidden_mask(np.array([photo_id]))[0])

    @property
    def active(self) -> bool:
        """Whether any fault (or the delay) can happen at all."""
        return any(getattr(self, k) for k in {*REST_KINDS, *STATIC_KINDS, "slow"})


class FaultPicker:
    """Draws at most one fault per request (plus an optional delay) from a seeded generator."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self._rng = random.Random(faults.seed)
        self._lock = threading.Lock()
        self._last_original = -1e9

    def pick(self, kinds: tuple[str, ...]) -> tuple[bool, str | None]:
        """(slow?, fault kind or None) for one request."""
        faults = self.faults
        if not faults.active:
            return False, None
        with self._lock:
            slow = self._rng.random() < faults.slow
            draw = self._rng.random()
        for kind in kinds:
            draw -= getattr(faults, kind)
            if draw < 0:
                return slow, kind
        return slow, None

    def original_throttled(self) -> bool:
        """Whether a request for an Original now comes too soon after the last one served."""
        rate = self.faults.originals_per_second
        if not rate:
            return False
        with self._lock:
            now = time.monotonic()
            if now - self._last_original < 1.0 / rate:
                return True
            self._last_original = now
            return False

    def choice(self, options: Sequence[T]) -> T:
        """One of ``options``, from the same seeded generator (the variant of a fault: which 5xx, which body)."""
        with self._lock:
            return self._rng.choice(options)


@dataclass(frozen=True)
class Budget:
    """Per-key REST budget: at most ``calls`` per sliding ``window_seconds``; beyond it HTTP 429, and after
    ``expire_after`` rejected calls the key is expired for good (code 100 "Key has expired")."""

    calls: int = 3600
    window_seconds: float = 3600.0
    expire_after: int = 100


class BudgetTracker:
    """Thread-safe bookkeeping of a Budget across keys."""

    def __init__(self, budget: Budget | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.budget = budget
        self._clock = clock
        self._calls: dict[str, deque[float]] = {}
        self._rejected: dict[str, int] = {}
        self.expired: set[str] = set()
        self._lock = threading.Lock()

    def admit(self, key: str) -> bool:
        """Count a call; False when it is over budget (the caller answers 429)."""
        if self.budget is None:
            return True
        now = self._clock()
        with self._lock:
            calls = self._calls.setdefault(key, deque())
            while calls and calls[0] <= now - self.budget.window_seconds:
                calls.popleft()
            if len(calls) < self.budget.calls:
                calls.append(now)
                return True
            self._rejected[key] = self._rejected.get(key, 0) + 1
            if self._rejected[key] >= self.budget.expire_after:
                self.expired.add(key)
            return False
