"""Per-keyword locks: one harvest and one download of a keyword at a time.

A second run of the same stage on the same keyword (a CLI run beside a scheduled one, two scripts) would
clear the first one's temp files and interleave its writes; it is refused at once instead, with a message
naming the lock. The OS releases a lock when its process ends, even by SIGKILL.
"""

import contextlib
import fcntl
import os
from collections.abc import Iterator
from typing import Literal

from flickr_assets.storage.layout import DataLayout

LOCK_NAME = ".lock"

Stage = Literal["harvest", "download"]
_VERB = {"harvest": "harvested", "download": "downloaded"}


class KeywordBusy(RuntimeError):
    """Another process holds the keyword's lock for the same stage."""


def lock_file(layout: DataLayout, keyword: str, stage: Stage) -> str:
    """The lock of ``keyword``'s ``stage``: in its records folder (harvest) or its manifest folder (download)."""
    folder = layout.records_dir(keyword) if stage == "harvest" else layout.manifest_dir(keyword)
    return str(folder / LOCK_NAME)


@contextlib.contextmanager
def keyword_lock(layout: DataLayout, keyword: str, stage: Stage) -> Iterator[None]:
    """Hold ``keyword``'s lock for ``stage``, or raise :class:`KeywordBusy` at once if another process has it."""
    path = lock_file(layout, keyword, stage)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise KeywordBusy(f"keyword {keyword!r} is being {_VERB[stage]} by another process (lock {path})") from None
        yield
    finally:
        os.close(fd)
