"""Image processing on every core: a pool of processes running :func:`flickr_assets.imaging.process_image`.

Workers are started with ``spawn`` (never ``fork`` a process full of fetch threads) and each watches its
parent: if the download process is killed (SIGKILL leaves no chance to clean up) the workers exit by
themselves instead of lingering.
"""

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from flickr_assets.imaging import ImagingOptions, InvalidImage, ProcessedImage, process_image


class ProcessingCrashed(RuntimeError):
    """A worker died while processing an image (the pool was restarted)."""


def _watch_parent(parent: int) -> None:
    while True:
        if os.getppid() != parent:
            os._exit(0)
        time.sleep(0.5)


def _init_worker(parent: int) -> None:
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="parent-watch").start()


def _warm_up() -> int:
    return os.getpid()


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
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(os.getpid(),),
        )
        # Start every worker now (imports take a moment) rather than on the first images.
        for future in [pool.submit(_warm_up) for _ in range(self.processes)]:
            future.result()
        return pool

    def process(self, data: bytes, metadata: dict) -> ProcessedImage:
        """Process one image, waiting for the result. Raises ``InvalidImage`` for undecodable bytes and
        :class:`ProcessingCrashed` if the worker died (the pool is replaced for the next images)."""
        with self._lock:
            pool = self._pool
        try:
            return pool.submit(process_image, data, metadata, self.options).result()
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
