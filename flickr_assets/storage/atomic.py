"""Atomic file writes: every file appears whole under its final name, or not at all.

A writer puts its bytes in a hidden temp file (``.<name>.<random>.tmp``) in the destination folder,
flushes and fsyncs it, then renames it over the final name. A crash leaves at most a temp file, which
:func:`remove_stale_temp_files` deletes on the next run. Many small files can skip the fsync each
(``write_bytes(..., durable=False)``) and be made durable together with :func:`make_durable`.
"""

import contextlib
import ctypes
import errno
import functools
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

#: Write errors that every later write would meet too (no space, quota, file size limit, read-only or
#: forbidden folder): a run stops on them instead of trying file after file.
NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
UNWRITABLE = NO_ROOM | {errno.EROFS, errno.EACCES, errno.EPERM}

TEMP_SUFFIX = ".tmp"
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


def _create_temp(final: Path) -> tuple[int, Path]:
    """A new hidden temp file beside ``final`` (its folder made if missing): its descriptor and path."""
    name = final.name[:80]
    while True:
        tmp = final.with_name(f".{name}.{os.urandom(6).hex()}{TEMP_SUFFIX}")
        try:
            return os.open(tmp, _CREATE, 0o644), tmp
        except FileExistsError:
            continue
        except FileNotFoundError:
            final.parent.mkdir(parents=True, exist_ok=True)


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temp path beside ``final``; rename it to ``final`` if the block exits cleanly."""
    fd, tmp = _create_temp(final)
    os.close(fd)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes(final: Path, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to ``final`` atomically. ``durable=False`` skips the fsync: the file is whole or absent
    after a crash of the process, but only :func:`make_durable` makes it survive a power loss."""
    fd, tmp = _create_temp(final)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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


def make_durable(folder: Path, files: Iterable[Path]) -> None:
    """Make ``files`` (written under ``folder`` with ``durable=False``) survive a power loss: one ``syncfs``
    of ``folder``'s file system where Linux offers it (one journal commit for the lot instead of one fsync
    each), else an fsync of every file."""
    syncfs = _syncfs()
    if syncfs is not None:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            if syncfs(fd) == 0:
                return
        finally:
            os.close(fd)
    for path in files:
        _fsync_file(path)


@functools.cache
def _syncfs() -> Callable[[int], int] | None:
    """libc's ``syncfs`` (Linux), None where the C library has none."""
    try:
        syncfs = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    syncfs.argtypes = [ctypes.c_int]
    syncfs.restype = ctypes.c_int
    return syncfs


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())
