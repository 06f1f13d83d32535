"""Image processing on every core: a pool of processes running :func:`flickr_assets.imaging.process_image`
and writing the result (atomically) where the download wants it, so the stored bytes never travel back.

Workers come from a ``forkserver`` that has imported the imaging code once (never ``fork`` a process full
of threads; plain ``spawn`` would pay the imports in every worker). Each worker watches its parent: if the
download process is killed (SIGKILL leaves no chance to clean up) the workers exit by themselves.
"""

import hashlib
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from flickr_assets.imaging import ImagingOptions, InvalidImage, process_image
from flickr_assets.imaging.model import Box, Size
from flickr_assets.storage.atomic import write_bytes


class ProcessingCrashed(RuntimeError):
    """A worker died while processing an image (the pool was restarted)."""


@dataclass(frozen=True)
class StoredImage:
    """The outcome of one image: ``ok`` (stored at the given path, with its sha256) or ``too_small``."""

    status: str
    original_size: Size
    stored_size: Size | None
    crop_box: Box | None
    reencoded: bool
    phash: int | None
    sha256: str | None  # of the stored file (metadata included): the integrity check of the file
    source_sha256: str | None  # of the bytes as served: equal for byte-identical uploads (exact duplicates)


def process_and_store(data: bytes, metadata: dict, options: ImagingOptions, destination: str) -> StoredImage:
    """Process one image and, if it is kept, write it to ``destination`` atomically (runs in a worker)."""
    result = process_image(data, metadata, options)
    digest = source_digest = None
    if result.status == "ok" and result.jpeg is not None:
        write_bytes(Path(destination), result.jpeg)
        digest = hashlib.sha256(result.jpeg).hexdigest()
        source_digest = hashlib.sha256(data).hexdigest()
    return StoredImage(
        result.status,
        result.original_size,
        result.stored_size,
        result.crop_box,
        result.reencoded,
        result.phash,
        digest,
        source_digest,
    )


def _watch_parent(parent: int) -> None:
    # Our direct parent is the forkserver (or the download process itself with spawn); either way, when the
    # download process is gone, so is the reason to live.
    direct = os.getppid()
    while True:
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            os._exit(0)
        except PermissionError:
            pass
        if os.getppid() != direct:
            os._exit(0)
        time.sleep(0.5)


def _init_worker(parent: int) -> None:
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="parent-watch").start()


def _warm_up() -> int:
    return os.getpid()


def _context() -> multiprocessing.context.BaseContext:
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["flickr_assets.imaging", "flickr_assets.download.workers"])
    return context


class ImageProcessor:
    """A process pool running ``process_image``; thread-safe; restarts itself if a worker dies."""

    def __init__(self, processes: int, options: ImagingOptions) -> None:
        self.processes = processes
        self.options = options
        self._lock = threading.Lock()
        self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(
            max_workers=self.processes,
            mp_context=_context(),
            initializer=_init_worker,
            initargs=(os.getpid(),),
        )
        # Start every worker now (imports take a moment) rather than on the first images.
        for future in [pool.submit(_warm_up) for _ in range(self.processes)]:
            future.result()
        return pool

    def process(self, data: bytes, metadata: dict, destination: Path) -> StoredImage:
        """Process one image and store it at ``destination`` if kept, waiting for the result. Raises
        ``InvalidImage`` for undecodable bytes and :class:`ProcessingCrashed` if the worker died (the pool is
        replaced for the next images)."""
        with self._lock:
            pool = self._pool
        try:
            return pool.submit(process_and_store, data, metadata, self.options, str(destination)).result()
        except InvalidImage:
            raise
        except BrokenProcessPool:
            with self._lock:
                if self._pool is pool:
                    pool.shutdown(wait=False, cancel_futures=True)
                    self._pool = self._start()
            raise ProcessingCrashed("image processing crashed (worker process died)") from None

    def close(self) -> None:
        """Stop the workers."""
        with self._lock:
            self._pool.shutdown(wait=True, cancel_futures=True)
