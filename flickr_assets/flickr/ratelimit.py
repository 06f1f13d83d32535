"""One API call budget shared by every process and thread that uses the same data folder.

Flickr allows 3,600 calls per hour per key and switches off keys that go faster, so the budget is a token
bucket stored in a small file under ``DataLayout.state_dir`` and guarded by ``fcntl.flock``: every run on the
machine (Dagster runs are separate processes) draws from the same bucket.

For ``calls_per_hour`` N the bucket holds at most C = max(1, N // 60) tokens (a short burst) and refills at
(N − C) / 3600 tokens per second, so any rolling hour sees at most C + (N − C) = N calls.

The state is rewritten in place under the lock on every call, without fsync: it is a few bytes of run state,
not data (an fsync per API call cost up to 15 ms on a busy disk). A torn write reads as damaged, and a
damaged state grants no tokens until it refills, so a crash can never allow a burst beyond the budget.
"""

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

STATE_FILE = "api_budget.json"


@dataclass
class _Bucket:
    tokens: float
    updated: float  # wall-clock time of ``tokens``
    blocked_until: float = 0.0  # no call before this time (set by a 429 / Retry-After)


class ApiBudget:
    """A cross-process token bucket: :meth:`acquire` before every API call.

    ``window_seconds`` is an hour in production; tests shorten it to check the rolling-window bound quickly.
    """

    def __init__(
        self,
        state_dir: Path,
        calls_per_hour: int = 3600,
        window_seconds: float = 3600.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if calls_per_hour < 1:
            raise ValueError(f"calls_per_hour must be at least 1, not {calls_per_hour}")
        self.state_dir = Path(state_dir)
        self.calls_per_hour = calls_per_hour
        self.window_seconds = window_seconds
        self.capacity = max(1, calls_per_hour // 60)
        refill = calls_per_hour - self.capacity if calls_per_hour > self.capacity else calls_per_hour
        self.rate = refill / window_seconds  # tokens per second
        self._clock = clock
        self._sleep = sleep

    def acquire(self) -> float:
        """Take one call from the budget, sleeping until one is available; return the seconds waited."""
        waited = 0.0
        while True:
            with self._locked() as fd:
                now = self._clock()
                bucket = self._refilled(self._read(fd, now), now)
                if now >= bucket.blocked_until and bucket.tokens >= 1.0:
                    bucket.tokens -= 1.0
                    self._write(fd, bucket)
                    return waited
                wait = max(bucket.blocked_until - now, (1.0 - bucket.tokens) / self.rate)
                self._write(fd, bucket)  # also replaces a damaged state, so the refill can progress
            wait = max(wait, 0.001)
            self._sleep(wait)
            waited += wait

    def penalize(self, seconds: float) -> None:
        """Make every user of this budget wait ``seconds`` from now (Flickr said 429 / Retry-After)."""
        if seconds <= 0:
            return
        with self._locked() as fd:
            now = self._clock()
            bucket = self._refilled(self._read(fd, now), now)
            bucket.blocked_until = max(bucket.blocked_until, now + seconds)
            self._write(fd, bucket)

    def available(self) -> float:
        """Tokens in the bucket right now."""
        with self._locked() as fd:
            now = self._clock()
            return self._refilled(self._read(fd, now), now).tokens

    # --- internals -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[int]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        # A fresh open() per use gives each thread its own open file description, so flock also
        # excludes threads of this process, not just other processes.
        fd = os.open(self.state_dir / STATE_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)  # closing releases the lock

    def _read(self, fd: int, now: float) -> _Bucket:
        raw = os.pread(fd, 4096, 0)
        if not raw:  # a new budget starts full
            return _Bucket(tokens=float(self.capacity), updated=now)
        try:
            state = json.loads(raw)
            return _Bucket(float(state["tokens"]), float(state["updated"]), float(state.get("blocked_until", 0.0)))
        except (ValueError, KeyError, TypeError):
            return _Bucket(tokens=0.0, updated=now)  # damaged: grant nothing until it refills

    def _refilled(self, bucket: _Bucket, now: float) -> _Bucket:
        elapsed = max(0.0, now - bucket.updated)  # a clock stepping back must not mint tokens
        bucket.tokens = min(float(self.capacity), bucket.tokens + elapsed * self.rate)
        bucket.updated = max(now, bucket.updated)
        return bucket

    @staticmethod
    def _write(fd: int, bucket: _Bucket) -> None:
        state = {"tokens": bucket.tokens, "updated": bucket.updated, "blocked_until": bucket.blocked_until}
        data = json.dumps(state).encode()
        os.pwrite(fd, data, 0)
        os.ftruncate(fd, len(data))
