"""Counters of what the simulator served (keys appear only as short hashes)."""

import copy
import hashlib
import threading
from collections import Counter


def key_hash(key: str) -> str:
    """A short, stable, non-reversible name for an API key."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


class Stats:
    """Thread-safe request counters; ``snapshot()`` returns a plain copy, ``reset()`` zeroes everything."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._data: dict[str, object] = {
                "rest_calls": 0,
                "rest_by_method": Counter(),
                "rest_by_key": Counter(),
                "static_requests": 0,
                "static_by_path": Counter(),
                "responses_by_status": Counter(),
                "faults": Counter(),
                "budget_rejections": 0,
                "signature_rejections": 0,
                "images_rendered": 0,
            }

    def rest(self, method: str, key: str | None) -> None:
        with self._lock:
            self._data["rest_calls"] += 1  # type: ignore[operator]
            self._data["rest_by_method"][method] += 1  # type: ignore[index]
            if key:
                self._data["rest_by_key"][key_hash(key)] += 1  # type: ignore[index]

    def static(self, path: str) -> None:
        with self._lock:
            self._data["static_requests"] += 1  # type: ignore[operator]
            self._data["static_by_path"][path] += 1  # type: ignore[index]

    def status(self, code: int) -> None:
        with self._lock:
            self._data["responses_by_status"][code] += 1  # type: ignore[index]

    def fault(self, kind: str) -> None:
        with self._lock:
            self._data["faults"][kind] += 1  # type: ignore[index]

    def signature_rejection(self) -> None:
        with self._lock:
            self._data["signature_rejections"] += 1  # type: ignore[operator]

    def budget_rejection(self) -> None:
        with self._lock:
            self._data["budget_rejections"] += 1  # type: ignore[operator]

    def rendered(self) -> None:
        with self._lock:
            self._data["images_rendered"] += 1  # type: ignore[operator]

    def snapshot(self) -> dict:
        with self._lock:
            return copy.deepcopy(self._data)
