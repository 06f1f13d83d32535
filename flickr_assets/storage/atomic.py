"""Atomic file writes: every file appears whole under its final name, or not at all.

A writer puts its bytes in a hidden temp file (``.<name>.<random>.tmp``) in the destination folder,
flushes and fsyncs it, then renames it over the final name. A crash leaves at most a temp file, which
:func:`remove_stale_temp_files` deletes on the next run.
"""

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

TEMP_SUFFIX = ".tmp"


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temp path beside ``final``; rename it to ``final`` if the block exits cleanly."""
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name[:80]}.", suffix=TEMP_SUFFIX, dir=final.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes(final: Path, data: bytes) -> None:
    """Write ``data`` to ``final`` atomically."""
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)


def write_text(final: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``final`` atomically."""
    write_bytes(final, text.encode("utf-8"))


def link_or_copy(source: Path, final: Path) -> None:
    """Make ``final`` a hard link of ``source`` (or an atomic copy where links are not allowed)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.link{TEMP_SUFFIX}")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
        os.replace(tmp, final)
    except OSError:
        tmp.unlink(missing_ok=True)
        write_bytes(final, source.read_bytes())


def remove_stale_temp_files(folder: Path) -> int:
    """Delete temp files left in ``folder`` (recursively) by an interrupted writer; return how many."""
    if not folder.exists():
        return 0
    removed = 0
    for path in folder.rglob(f".*{TEMP_SUFFIX}"):
        if path.is_file():
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())
