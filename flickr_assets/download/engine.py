"""``download_keyword``: the whole download of one keyword, resumable at any moment.

Flow: lock the keyword, clear temp files left by a crash, load manifest + journal, plan (skip what is
final, assign shards), then stream the tasks through a bounded window of fetch threads; each thread
fetches (per-host limits, retries), hands the bytes to the process pool (decode, crop, resize, encode on
every core), writes the file atomically and returns a row that the main thread appends to the journal.
At the end the journal is merged into ``manifest.parquet`` and a contact sheet is drawn.
"""

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa

from flickr_assets.download.contact_sheet import make_contact_sheet
from flickr_assets.download.fetch import Fetcher, HostLimiter
from flickr_assets.download.options import DownloadOptions, DownloadProgress, DownloadResult
from flickr_assets.download.photo import PhotoContext, handle_photo, quick_outcome
from flickr_assets.download.plan import Task, iter_tasks, open_records, plan_run
from flickr_assets.download.reuse import stored_elsewhere
from flickr_assets.download.workers import ImageProcessor
from flickr_assets.imaging import ImagingOptions
from flickr_assets.storage.atomic import remove_stale_temp_files
from flickr_assets.storage.keys import validate_keyword
from flickr_assets.storage.layout import DataLayout
from flickr_assets.storage.manifest import (
    ManifestJournal,
    journal_file,
    keyword_lock,
    load_rows,
    merge_journal,
    read_manifest,
)

log = logging.getLogger(__name__)

ProgressCallback = Callable[[DownloadProgress], None]


def download_keyword(
    layout: DataLayout,
    keyword: str,
    records: pa.Table | str | Path,
    options: DownloadOptions | None = None,
    on_progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> DownloadResult:
    """Download the images of ``keyword``'s records into shard folders and record every outcome in the
    keyword's manifest. Safe to kill at any moment and to run again: finished photos are not fetched
    again, ``failed`` ones are retried. ``should_stop`` ends the run early (cleanly) when it returns True."""
    options = options or DownloadOptions()
    validate_keyword(keyword)
    source = open_records(records)
    started = time.monotonic()
    with keyword_lock(layout, keyword):
        removed = remove_stale_temp_files(layout.images_dir(keyword))
        removed += remove_stale_temp_files(layout.manifest_dir(keyword))
        merged = {row["photo_id"]: row for row in read_manifest(layout, keyword).to_pylist()}
        current = load_rows(layout, keyword, merged)
        plan = plan_run(layout, keyword, source, merged, current, options)
        del merged, current
        total = len(plan.tasks)
        log.info("%s: %d records, %d to handle, %d already done", keyword, plan.records, total, plan.skipped)
        elsewhere = stored_elsewhere(layout, keyword, set(plan.tasks))
        run = _Run(layout, keyword, options, total, started, elsewhere, on_progress, should_stop)
        try:
            with ManifestJournal(journal_file(layout, keyword)) as journal:
                run.execute(iter_tasks(source, plan.tasks), journal)
        finally:
            table = merge_journal(layout, keyword)
        sheet = make_contact_sheet(layout, keyword, table, options.contact_sheet_size)
    counts = Counter(table["status"].to_pylist())
    return DownloadResult(
        keyword=keyword,
        records=plan.records,
        to_do=total,
        done=run.done,
        run_counts=dict(run.counts),
        counts=dict(counts),
        linked=run.linked,
        requests=run.context.requests,
        bytes_fetched=run.bytes_fetched,
        elapsed_s=time.monotonic() - started,
        stopped=run.stopped,
        manifest=layout.manifest_file(keyword),
        contact_sheet=sheet,
        temp_files_removed=removed,
        failures=dict(run.failures.most_common(10)),
    )


class _Run:
    """The moving parts of one run: fetch threads, the process pool, counters and progress."""

    def __init__(
        self,
        layout: DataLayout,
        keyword: str,
        options: DownloadOptions,
        total: int,
        started: float,
        elsewhere: dict[int, dict],
        on_progress: ProgressCallback | None,
        should_stop: Callable[[], bool] | None,
    ) -> None:
        self.options = options
        self.keyword = keyword
        self.total = total
        self.started = started
        self.on_progress = on_progress
        self.should_stop = should_stop
        self.done = self.linked = self.bytes_fetched = 0
        self.counts: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self.stopped = False
        self._processor: ImageProcessor | None = None
        self._processor_lock = threading.Lock()
        limiter = HostLimiter(options.per_host, options.per_host_original, options.original_interval)
        fetcher = Fetcher(
            limiter,
            options.timeout,
            options.user_agent,
            options.retry_after_max,
            max(options.per_host, options.fetchers),
        )
        self.context = PhotoContext(layout, keyword, options, fetcher, self.processor, elsewhere)

    def processor(self) -> ImageProcessor:
        """The process pool, started on first use (a run with nothing to fetch never starts it)."""
        with self._processor_lock:
            if self._processor is None:
                imaging = ImagingOptions(
                    max_side=self.options.max_side, min_side=self.options.min_side, quality=self.options.quality
                )
                self._processor = ImageProcessor(self.options.process_count, imaging)
            return self._processor

    def execute(self, tasks: Iterator[Task], journal: ManifestJournal) -> None:
        """Run every task, keeping at most a bounded number in flight, journaling each finished row."""
        window = self.options.fetchers * 2
        last_report = time.monotonic()
        # Finished futures arrive on a queue: ``concurrent.futures.wait`` over the whole window would lock
        # every pending future on each call, which cost more main-process CPU than the HTTP requests.
        finished: queue.SimpleQueue[Future] = queue.SimpleQueue()
        in_flight = 0
        exhausted = False
        threads = ThreadPoolExecutor(self.options.fetchers, thread_name_prefix=f"fetch-{self.keyword[:20]}")
        try:
            while True:
                if not self.stopped and self.should_stop is not None and self.should_stop():
                    log.info("%s: stop requested; finishing the photos in flight", self.keyword)
                    self.stopped = True
                    self.context.stopping.set()
                while not exhausted and not self.stopped and in_flight < window:
                    task = next(tasks, None)
                    if task is None:
                        exhausted = True
                    elif (row := quick_outcome(self.context, task)) is not None:
                        self._record(row, journal)
                    else:
                        threads.submit(handle_photo, self.context, task).add_done_callback(finished.put)
                        in_flight += 1
                if not in_flight and (exhausted or self.stopped):
                    break
                try:
                    future = finished.get(timeout=0.5)
                except queue.Empty:
                    future = None
                while future is not None:
                    in_flight -= 1
                    row = future.result()
                    if row is not None:
                        self._record(row, journal)
                    try:
                        future = finished.get_nowait()
                    except queue.Empty:
                        future = None
                if self.on_progress is not None and time.monotonic() - last_report >= self.options.progress_every:
                    last_report = time.monotonic()
                    self.on_progress(self.progress())
            if self.on_progress is not None:
                self.on_progress(self.progress())
        except BaseException:
            self.context.stopping.set()
            raise
        finally:
            threads.shutdown(wait=True, cancel_futures=True)
            self.context.fetcher.close()
            if self._processor is not None:
                self._processor.close()

    def _record(self, row: dict, journal: ManifestJournal) -> None:
        journal.append(row)
        self.done += 1
        self.counts[row["status"]] += 1
        self.bytes_fetched += row.get("bytes_fetched") or 0
        if (row.get("reason") or "").startswith("linked from"):
            self.linked += 1
        if row["status"] == "failed":
            self.failures[_reason_kind(row.get("reason") or "")] += 1

    def progress(self) -> DownloadProgress:
        """The current progress snapshot."""
        return DownloadProgress(self.keyword, self.done, self.total, time.monotonic() - self.started, dict(self.counts))


def _reason_kind(reason: str) -> str:
    return reason.split(": ", 1)[-1].split(" (")[0][:80]
