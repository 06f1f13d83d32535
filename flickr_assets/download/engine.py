"""``download_keyword``: the whole download of one keyword, resumable at any moment.

Flow: lock the keyword, clear temp files left by a crash, load manifest + journal, plan (skip what is
final, assign shards), then stream the tasks: photos decided without a request are recorded here, the
others go as small jobs to the worker processes (one per core), whose fetch threads fetch (per-host
limits, retries), process (decode, crop, resize, encode) and write each file atomically, and send back a
row that this process appends to the journal. At the end the journal is merged into ``manifest.parquet``
(one row per record; rows of photos no longer in the records are kept aside) and a contact sheet is drawn.
"""

import contextlib
import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa

from flickr_assets.download.contact_sheet import make_contact_sheet
from flickr_assets.download.options import DownloadOptions, DownloadProgress, DownloadResult
from flickr_assets.download.photo import Job, finish_row, new_row
from flickr_assets.download.plan import (
    ImagePaths,
    Task,
    embedded_metadata,
    iter_tasks,
    known_too_small,
    open_records,
    plan_run,
)
from flickr_assets.download.restamp import RESTAMPED_REASON, embedded_digest, restamp_file, restamp_outcome
from flickr_assets.download.reuse import COPIED_COLUMNS, stored_elsewhere
from flickr_assets.download.workers import WorkerPool
from flickr_assets.imaging import InvalidImage
from flickr_assets.imaging.metadata import metadata_digest
from flickr_assets.storage.atomic import link_or_copy, make_durable, remove_stale_temp_files
from flickr_assets.storage.keys import validate_keyword
from flickr_assets.storage.layout import DataLayout
from flickr_assets.storage.locks import keyword_lock
from flickr_assets.storage.manifest import (
    ManifestJournal,
    journal_file,
    load_rows,
    merge_journal,
    merged_rows,
)

log = logging.getLogger(__name__)

ProgressCallback = Callable[[DownloadProgress], None]

# Rows from the workers are made durable and journaled in batches: one syncfs per batch is the download
# process's main cost per photo, and a batch of 1-2 rows (what arrives at once) pays it almost per photo.
FLUSH_ROWS = 8
FLUSH_SECONDS = 0.02


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
    with keyword_lock(layout, keyword, "download"):
        removed = remove_stale_temp_files(layout.images_dir(keyword))
        removed += remove_stale_temp_files(layout.manifest_dir(keyword))
        merged = merged_rows(layout, keyword)
        current = load_rows(layout, keyword, merged)
        plan = plan_run(layout, keyword, source, merged, current, options)
        del merged, current
        total = len(plan.tasks)
        log.info("%s: %d records, %d to handle, %d already done", keyword, plan.records, total, plan.skipped)
        elsewhere = stored_elsewhere(layout, keyword, {i: task.file_name for i, task in plan.tasks.items()})
        run = _Run(layout, keyword, options, total, started, elsewhere, on_progress, should_stop)
        # A run that does not finish (stopped, Ctrl-C, a full disk) still merges what it did, so the catalog and
        # the checks see it at once (only a killed run leaves its journal to the next run). Its photos settled
        # without a file give up the places its plan gave them: the next run may put later photos in other
        # folders than an uninterrupted run would, never past a folder's limit once it is merged (a file
        # stored but not journaled before the interruption is removed then, when its photo is stored anew).
        try:
            with ManifestJournal(journal_file(layout, keyword)) as journal:
                run.execute(iter_tasks(source, plan.tasks), journal)
        except BaseException:
            # A full disk may fail the merge too: the journal then stays for the next run, and the error the run
            # met is the one reported.
            with contextlib.suppress(OSError):
                merge_journal(layout, keyword, plan.record_ids)
            raise
        table = merge_journal(layout, keyword, plan.record_ids)
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
        restamped=run.restamped,
        checked=run.checked,
        requests=run.requests,
        bytes_fetched=run.bytes_fetched,
        elapsed_s=time.monotonic() - started,
        stopped=run.stopped,
        manifest=layout.manifest_file(keyword),
        contact_sheet=sheet,
        temp_files_removed=removed + run.temp_files_removed,
        failures=dict(run.failures.most_common(10)),
    )


class _Run:
    """The moving parts of one run: the worker processes, counters and progress."""

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
        self.layout = layout
        self.options = options
        self.keyword = keyword
        self.total = total
        self.started = started
        self.elsewhere = elsewhere
        self.on_progress = on_progress
        self.should_stop = should_stop
        self.paths = ImagePaths(layout, keyword)
        self.images_dir = layout.images_dir(keyword)
        self.done = self.linked = self.bytes_fetched = self.requests = self.temp_files_removed = 0
        self.restamped = self.checked = 0  # stored files whose metadata was rewritten / found up to date
        self.counts: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self.stopped = False

    def execute(self, tasks: Iterator[Task], journal: ManifestJournal) -> None:
        """Run every task, keeping a bounded number in flight, journaling each finished row. The worker
        processes start with the first photo that needs a request (a run with nothing to fetch starts none).

        Rows from the workers are journaled in batches (see :meth:`_record_batch`): a batch is flushed when it
        has ``FLUSH_ROWS`` rows, when its oldest row is ``FLUSH_SECONDS`` old, or when nothing else is in
        flight. Rows waiting for their batch keep their place in the window, so photos fetched and not yet
        journaled still never exceed the fetch threads."""
        pool: WorkerPool | None = None
        pending: list[dict] = []  # rows back from the workers, not yet durable and journaled
        oldest = 0.0  # when the first pending row arrived
        last_report = time.monotonic()
        exhausted = False
        try:
            while True:
                if not self.stopped and self.should_stop is not None and self.should_stop():
                    log.info("%s: stop requested; finishing the photos in flight", self.keyword)
                    self.stopped = True
                    if pool is not None:
                        pool.stop()
                while not exhausted and not self.stopped and (pool is None or pool.has_room(len(pending))):
                    task = next(tasks, None)
                    if task is None:
                        exhausted = True
                    elif task.restamp is not None and (row := self._restamp(task)) is not None:
                        self._record(row, journal, linked=False)
                    elif (row := self._without_request(task)) is not None:
                        self._record(row, journal)
                    else:
                        pool = pool or WorkerPool(self.options)
                        pool.submit(make_job(self.paths, task))
                if pool is None or not pool.in_flight:
                    self._record_batch(pending, journal)
                    pending = []
                    if exhausted or self.stopped:
                        break
                    continue
                wait = max(0.0, oldest + FLUSH_SECONDS - time.monotonic()) if pending else 0.5
                finished = pool.collect(timeout=wait)
                self.requests += sum(item.requests for item in finished)
                if not pending:
                    oldest = time.monotonic()
                pending += [item.row for item in finished if item.row is not None]
                if len(pending) >= FLUSH_ROWS or (pending and time.monotonic() - oldest >= FLUSH_SECONDS):
                    self._record_batch(pending, journal)
                    pending = []
                if self.on_progress is not None and time.monotonic() - last_report >= self.options.progress_every:
                    last_report = time.monotonic()
                    self.on_progress(self.progress())
            if self.on_progress is not None and self.total:  # nothing to do: the result line says so
                self.on_progress(self.progress())
        except BaseException:
            if pool is not None:
                pool.stop()
            with contextlib.suppress(OSError):  # e.g. the disk is full: those photos are fetched again next run
                self._record_batch(pending, journal)
            raise
        finally:
            if pool is not None:
                pool.close()
                if pool.replaced:  # a worker killed mid-write left its temp file (we hold the keyword's lock)
                    self.temp_files_removed += remove_stale_temp_files(self.images_dir)

    def _restamp(self, task: Task) -> dict | None:
        """The row of a stored photo whose record changed, its file's metadata rewritten (None: the file
        cannot be, the photo is fetched again)."""
        row, done = restamp_outcome(self.paths, task)
        if row is None:
            task.restamp = None
            return None
        if done == "restamped":
            self.restamped += 1
        else:
            self.checked += 1
        return row

    def _without_request(self, task: Task) -> dict | None:
        """The row of a photo decided here (no image URL, known too small, linked from another keyword)."""
        row = quick_outcome(self.options, task)
        if row is None and self.elsewhere:
            row = linked_outcome(self.layout, self.paths, self.elsewhere, task)
        return row

    def _record_batch(self, rows: list[dict], journal: ManifestJournal) -> None:
        """Journal rows from the workers. Workers write image files without fsync; one sync of the data
        folder's file system here makes the whole batch durable (far cheaper than an fsync per file) before
        any of its rows is journaled, so a journaled ``ok`` row always has a complete file, even after a
        power loss. A file not yet journaled at a crash is simply fetched again on the next run."""
        if not rows:
            return
        stored = [row["path"] for row in rows if row["status"] == "ok"]
        if stored:
            root = self.layout.root
            make_durable(self.images_dir, (root / path for path in stored))
        for row in rows:
            self._record(row, journal)

    def _record(self, row: dict, journal: ManifestJournal, linked: bool | None = None) -> None:
        journal.append(row)
        self.done += 1
        self.counts[row["status"]] += 1
        self.bytes_fetched += row.get("bytes_fetched") or 0
        if linked if linked is not None else (row.get("reason") or "").startswith("linked from"):
            self.linked += 1
        if row["status"] == "failed":
            self.failures[_reason_kind(row.get("reason") or "")] += 1

    def progress(self) -> DownloadProgress:
        """The current progress snapshot."""
        return DownloadProgress(self.keyword, self.done, self.total, time.monotonic() - self.started, dict(self.counts))


def quick_outcome(options: DownloadOptions, task: Task) -> dict | None:
    """The row of a photo that needs no request at all (no image URL, or known to be too small)."""
    source = task.source
    if source is None:
        return new_row(task.photo_id, "unavailable", reason="the record has neither url_l nor url_o")
    if known_too_small(source, options):
        return new_row(
            task.photo_id,
            "too_small",
            reason=f"the record gives {source.width}x{source.height} (min side {options.min_side})",
            source=source.kind,
            url=source.url,
            original_width=source.width,
            original_height=source.height,
            bytes_fetched=0,
        )
    return None


def linked_outcome(layout: DataLayout, paths: ImagePaths, elsewhere: dict[int, dict], task: Task) -> dict | None:
    """The row of a photo already stored for another keyword, once linked here; None if it must be fetched."""
    other = elsewhere.get(task.photo_id)
    if other is None:
        return None
    started = time.monotonic()
    destination = paths.file(task.shard, task.file_name)
    try:
        source = layout.resolve_relative(other["path"])
        data = source.read_bytes()
    except (ValueError, OSError):
        return None
    if hashlib.sha256(data).hexdigest() != other["sha256"]:
        return None
    metadata = embedded_metadata(task.record or {})
    digest = metadata_digest(metadata)
    values = {name: other[name] for name in COPIED_COLUMNS}
    values.update(bytes_fetched=0, path=paths.relative(destination), metadata_sha256=digest)
    try:
        same = (other.get("metadata_sha256") or embedded_digest(source, data)) == digest
        if same:
            link_or_copy(source, destination)
            values["reason"] = f"linked from {other['linked_from']}"
        else:  # that file embeds another version of the record (harvested at another time): copy, restamped
            values["sha256"] = restamp_file(destination, data, metadata)
            values["reason"] = f"copied from {other['linked_from']}, {RESTAMPED_REASON}"
    except InvalidImage:
        return None
    return finish_row(new_row(task.photo_id, "ok", **values), started)


def make_job(paths: ImagePaths, task: Task) -> Job:
    """The work item of a photo to fetch (``quick_outcome`` and ``linked_outcome`` said None)."""
    assert task.source is not None, "quick_outcome handles records without a source"
    destination = paths.file(task.shard, task.file_name)
    metadata = embedded_metadata(task.record or {})
    relative = paths.relative(destination)
    fallback = (task.record or {}).get("url_o") if task.source.kind == "large" else None
    digest = metadata_digest(metadata)
    return Job(task.photo_id, task.source.kind, task.source.url, str(destination), relative, metadata, fallback, digest)


def _reason_kind(reason: str) -> str:
    """A failure reason without its prefix and details, for the run's tally ("gave up after 6 attempts: HTTP
    503" -> "HTTP 503")."""
    return reason.split(": ", 1)[-1].split(" (")[0][:80]
