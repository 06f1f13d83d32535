"""The download's worker processes, one per core: each runs a few fetch threads that fetch, process and
store photos, so image bytes never cross a process boundary; the download process only hands out small
:class:`~flickr_assets.download.photo.Job` items and receives manifest rows.

Per-host limits hold across all workers (:class:`~flickr_assets.download.limits.SharedLimits`). Workers
come from a ``forkserver`` that has imported the imaging code once (never ``fork`` a process full of
threads; plain ``spawn`` would pay the imports in every worker). Each worker watches its parent: if the
download process is killed (SIGKILL leaves no chance to clean up) the workers exit by themselves. A worker
that dies (a crash in a decoder, the OOM killer) is replaced and its photos are handed out again; a photo
that was in flight at two deaths is recorded ``failed`` (tried again on the next run).
"""

import math
import multiprocessing
import multiprocessing.connection
import os
import select
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from flickr_assets.download.fetch import Fetcher
from flickr_assets.download.limits import HostLimiter, SharedLimits
from flickr_assets.download.options import DownloadOptions
from flickr_assets.download.photo import DiskFull, Job, WorkerEnv, crashed_row, failed_row, fetch_and_store
from flickr_assets.imaging import ImagingOptions

#: Deaths of a worker with a photo in flight after which the photo is recorded ``failed``.
MAX_CRASHES = 2


@dataclass(frozen=True)
class Finished:
    """A photo handed back by a worker: its row (None: abandoned because the run is stopping)."""

    photo_id: int
    row: dict | None
    requests: int


class StopFlag:
    """The run is ending: one shared byte, set by the download process and polled by the workers.
    ``multiprocessing.Event`` takes a lock to read its flag, and a worker killed holding that lock would
    block every other worker at its next photo."""

    def __init__(self, context: multiprocessing.context.BaseContext) -> None:
        self._flag = context.RawValue("b", 0)

    def set(self) -> None:
        self._flag.value = 1

    def is_set(self) -> bool:
        return bool(self._flag.value)

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds, waking within 50 ms of the flag being set; whether it is set."""
        end = time.monotonic() + timeout
        while not self._flag.value:
            left = end - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(left, 0.05))
        return True


def _orphaned(parent: int, direct: int) -> bool:
    """Whether the download process is gone. Our direct parent is the forkserver (which exits with the
    download process) or, with spawn, the download process itself."""
    if os.getppid() != direct:
        return True
    try:
        os.kill(parent, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    return False


def _reader_gone(poller: select.poll) -> bool:
    """Whether nobody reads our results any more: a pipe's write end reports an error as soon as its reader
    is closed, which the kernel does the moment the download process dies (before any parent check shows it)."""
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


def _watch_parent(parent: int, direct: int, results_fd: int) -> None:
    """Exit the moment the download process dies: the results pipe then reports an error at once (no
    polling delay, so no photo is fetched by a worker that has nobody to report to)."""
    poller = select.poll()
    poller.register(results_fd, 0)  # errors and hang-ups are always reported
    while not poller.poll(500) and not _orphaned(parent, direct):
        pass
    os._exit(0)


def _portable(error: BaseException) -> BaseException:
    """``error`` if it survives pickling, else a RuntimeError saying what it was."""
    if isinstance(error, OSError) or type(error).__module__ == "builtins":
        return error
    return RuntimeError(f"{type(error).__name__}: {error}")


def _fetch_loop(
    env: WorkerEnv, jobs: Connection, results: Connection, locks: tuple[threading.Lock, ...], parents: tuple[int, int]
) -> None:
    receive_lock, send_lock = locks
    poller = select.poll()
    poller.register(results.fileno(), select.POLLOUT)
    while True:
        with receive_lock:
            try:
                job = jobs.recv()
            except (EOFError, OSError):
                return
        if job is None:
            return
        if _reader_gone(poller) or _orphaned(*parents):
            # Jobs still buffered in the pipe of a killed download: fetching them would only fetch them twice.
            os._exit(0)
        try:
            row, requests = fetch_and_store(env, job)
            message: tuple = ("done", job.photo_id, row, requests)
        except DiskFull as error:  # every later photo would fail the same way: the download process stops
            message = ("fatal", job.photo_id, _portable(error))
        except Exception as error:  # one photo's surprise is that photo's failure, named in its row
            row = failed_row(job, f"unexpected {type(error).__name__}: {error}"[:300])
            message = ("done", job.photo_id, row, 0)
        except BaseException as error:
            message = ("fatal", job.photo_id, _portable(error))
        with send_lock:
            results.send(message)


def worker_main(
    jobs: Connection,
    results: Connection,
    parent: int,
    threads: int,
    options: DownloadOptions,
    limits: SharedLimits,
    stopping: StopFlag,
    number: int = 0,
) -> None:
    """A worker process (``number`` among the pool's): ``threads`` fetch threads serving the jobs that arrive
    on ``jobs``."""
    parents = (parent, os.getppid())
    watch = (*parents, results.fileno())
    threading.Thread(target=_watch_parent, args=watch, daemon=True, name="parent-watch").start()
    imaging = ImagingOptions(max_side=options.max_side, min_side=options.min_side, quality=options.quality)
    limiter = HostLimiter.shared(limits, number)
    fetcher = Fetcher(
        limiter, options.timeout, options.user_agent, options.retry_after_max, threads, options.max_image_bytes
    )
    processor = ThreadPoolExecutor(1, thread_name_prefix="process")
    env = WorkerEnv(options, imaging, fetcher, stopping, processor)
    locks = (threading.Lock(), threading.Lock())
    pool = [
        threading.Thread(target=_fetch_loop, args=(env, jobs, results, locks, parents), name=f"fetch-{n}")
        for n in range(threads)
    ]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    processor.shutdown()
    fetcher.close()


def _context() -> multiprocessing.context.BaseContext:
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    # Each worker still imports the parent's main script (as __mp_main__) if it was started as a script: 3.11's
    # forkserver cannot preload it. ``python -m ...`` entry points (Dagster's run and step workers) are exempt.
    context.set_forkserver_preload(["flickr_assets.imaging", "flickr_assets.download.workers"])
    return context


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    jobs: Connection  # our sending end
    results: Connection  # our receiving end
    in_flight: dict[int, Job] = field(default_factory=dict)
    undelivered: set[int] = field(default_factory=set)  # in_flight photos whose job never reached the worker
    readable: Any = None  # a select.poll of ``results`` alone: is another row waiting?

    def __post_init__(self) -> None:
        # One poll object for the worker's life: Connection.poll builds a selector per call, which cost the
        # download process more CPU than reading the rows.
        self.readable = select.poll()
        self.readable.register(self.results.fileno(), select.POLLIN)


def _deliver(worker: _Worker, job: Job) -> None:
    """Send ``job`` to ``worker``. A worker that has died since the last look breaks the pipe: the job then
    waits, in flight, until :meth:`WorkerPool.collect` sees the death and hands it to the replacement."""
    worker.in_flight[job.photo_id] = job
    try:
        worker.jobs.send(job)
    except OSError:  # BrokenPipeError: the worker is gone (its sentinel is ready; collect replaces it)
        worker.undelivered.add(job.photo_id)


class WorkerPool:
    """Worker processes fetching, processing and storing photos; used by one thread of the download."""

    def __init__(self, options: DownloadOptions) -> None:
        self.options = options
        self.processes = options.process_count
        self.threads = max(1, math.ceil(options.fetchers / self.processes))
        # Jobs per worker: one per fetch thread. A thread takes its next job only after this process has read
        # its last row, so photos fetched and not yet journaled never exceed the fetch threads, even when this
        # process is slow to be scheduled (a SIGKILL then costs at most that many refetches).
        self.window = self.threads
        self._context = _context()
        self._limits = SharedLimits.create(
            self._context, options.per_host, options.per_host_original, options.original_interval, self.processes
        )
        self._stopping = StopFlag(self._context)
        self._crashes: dict[int, int] = {}
        self.replaced = 0  # workers that died and were replaced (each may have left a temp file behind)
        self._workers = [self._start(number) for number in range(self.processes)]
        self._watch()

    def _start(self, number: int) -> _Worker:
        jobs_out, jobs_in = self._context.Pipe(duplex=False)
        results_out, results_in = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=worker_main,
            args=(jobs_out, results_in, os.getpid(), self.threads, self.options, self._limits, self._stopping, number),
            name="download-worker",
            daemon=True,
        )
        process.start()
        jobs_out.close()
        results_in.close()
        return _Worker(process, jobs_in, results_out)

    @property
    def in_flight(self) -> int:
        """Photos handed out and not yet back."""
        return sum(len(worker.in_flight) for worker in self._workers)

    def has_room(self, held: int = 0) -> bool:
        """Whether a worker can take another job now, with ``held`` rows already collected but not yet
        journaled by the caller (they still count against the window, see ``window``)."""
        if self.in_flight + held >= self.window * len(self._workers):
            return False
        return any(len(worker.in_flight) < self.window for worker in self._workers)

    def submit(self, job: Job) -> None:
        """Hand ``job`` to the least busy worker."""
        _deliver(min(self._workers, key=lambda w: len(w.in_flight)), job)

    def stop(self) -> None:
        """Ask every worker to abandon photos not yet finished (their rows come back as None)."""
        self._stopping.set()

    def _watch(self) -> None:
        """(Re)build the poll set of every worker's results pipe and process sentinel."""
        self._poller = select.poll()
        self._by_fd: dict[int, tuple[_Worker, bool]] = {}
        for worker in self._workers:
            for fd, is_sentinel in ((worker.results.fileno(), False), (worker.process.sentinel, True)):
                self._poller.register(fd, select.POLLIN)
                self._by_fd[fd] = (worker, is_sentinel)

    def collect(self, timeout: float) -> list[Finished]:
        """Photos finished since the last call, waiting up to ``timeout`` for the first. Raises what a
        worker could not handle (e.g. ``DiskFull``); replaces dead workers."""
        ready = [self._by_fd[fd] for fd, _ in self._poller.poll(math.ceil(timeout * 1000)) if fd in self._by_fd]
        finished: list[Finished] = []
        for worker, is_sentinel in ready:
            if not is_sentinel:
                self._drain(worker, finished)
        dead = [worker for worker, is_sentinel in ready if is_sentinel]
        for worker in dead:
            self._replace(worker, finished)
        if dead:
            self._watch()
        return finished

    def _drain(self, worker: _Worker, finished: list[Finished]) -> None:
        try:
            while worker.readable.poll(0):
                message = worker.results.recv()
                if message[0] == "fatal":
                    worker.in_flight.pop(message[1], None)
                    raise message[2]
                _, photo_id, row, requests = message
                worker.in_flight.pop(photo_id, None)
                self._crashes.pop(photo_id, None)
                finished.append(Finished(photo_id, row, requests))
        except (EOFError, ConnectionError):
            return  # the worker is gone; its sentinel says so too

    def _replace(self, worker: _Worker, finished: list[Finished]) -> None:
        self._drain(worker, finished)
        worker.process.join(1)
        worker.jobs.close()
        worker.results.close()
        index = self._workers.index(worker)
        self.replaced += 1
        self._limits.release_held(index)  # the request slots it died holding would be lost to every worker
        self._workers[index] = replacement = self._start(index)
        for job in worker.in_flight.values():
            if job.photo_id in worker.undelivered:  # it never reached the dead worker: no crash to count
                _deliver(replacement, job)
                continue
            crashes = self._crashes[job.photo_id] = self._crashes.get(job.photo_id, 0) + 1
            if crashes >= MAX_CRASHES or self._stopping.is_set():
                self._crashes.pop(job.photo_id)
                finished.append(Finished(job.photo_id, crashed_row(job, crashes), 0))
            else:
                _deliver(replacement, job)

    def close(self) -> None:
        """Let the workers finish their photos and exit (their job pipes are closed), then reap them.
        Rows still arriving are dropped: the run is over, those photos are handled again next time."""
        for worker in self._workers:
            worker.jobs.close()
        deadline = time.monotonic() + 30
        alive = list(self._workers)
        while alive and time.monotonic() < deadline:
            handles = [w.results for w in alive] + [w.process.sentinel for w in alive]
            multiprocessing.connection.wait(handles, 0.5)
            for worker in alive:
                try:
                    while worker.results.poll():
                        worker.results.recv()  # a worker blocked on a full pipe could never exit
                except (EOFError, ConnectionError):
                    pass
            alive = [w for w in alive if w.process.is_alive()]
        for worker in self._workers:
            if worker.process.is_alive():
                worker.process.kill()
            worker.process.join(5)
            worker.results.close()
