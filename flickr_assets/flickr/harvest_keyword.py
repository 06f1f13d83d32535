"""Harvest one keyword into its records store, incrementally: the entry point of ``photo_records``.

A run fixes ``now`` at its start (photos uploaded while it runs are left for the next run), walks
``[start, now]`` with :class:`~flickr_assets.flickr.harvest.Harvest`, merges the rows into
``photos.parquet``, appends the coverage rows and finally writes ``_state.json``. If the state's query
fingerprint matches, the next run starts at the watermark minus ``overlap`` (Flickr indexes new uploads with
some delay); ``full_refresh`` starts over from the query's start date.
"""

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import astuple, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flickr_assets.flickr.client import FlickrClient
from flickr_assets.flickr.harvest import Checkpoint, Harvest, HarvestProgress, WindowCoverage
from flickr_assets.flickr.query import SearchQuery
from flickr_assets.storage.atomic import remove_stale_temp_files
from flickr_assets.storage.layout import DataLayout
from flickr_assets.storage.locks import keyword_lock
from flickr_assets.storage.records import (
    RecordsFileError,
    RecordsWriter,
    append_coverage,
    drop_resume,
    read_resume,
    read_state,
    records_file_damage,
    write_resume,
    write_state,
)
from flickr_assets.wording import counted

log = logging.getLogger(__name__)

DEFAULT_OVERLAP = timedelta(hours=24)


@dataclass(frozen=True)
class HarvestResult:
    """The outcome of one keyword harvest (the asset turns it into metadata)."""

    keyword: str
    rows: int  # rows in photos.parquet now
    new_rows: int  # photos not in the file before this run
    rows_received: int  # photos in all answers, repeats included
    unique_harvested: int  # distinct photos this run found
    calls: int  # successful search calls
    http_requests: int  # requests sent, retries included
    retries: int
    windows: int
    reported_total: int | None  # Flickr's (approximate) total for the whole range, from the first call
    start: datetime
    end: datetime
    incremental: bool
    elapsed: float
    skipped: dict[str, int] = field(default_factory=dict)
    split_seconds: int = 0
    latest_upload: datetime | None = None
    budget_wait: float = 0.0  # seconds spent waiting for the hourly API budget
    backoff: float = 0.0  # seconds spent backing off before retries
    dropped_rows: int = 0  # photos a full walk (and the one before it) did not find: taken as gone
    kept_unseen: int = 0  # photos this full walk did not find but the previous one did: kept until missed twice

    @property
    def calls_per_1000(self) -> float | None:
        """Search calls per 1,000 distinct photos harvested in this run (None when it found none)."""
        return 1000.0 * self.calls / self.unique_harvested if self.unique_harvested else None

    def __str__(self) -> str:
        mode = "incremental" if self.incremental else "full"
        retries = counted(self.retries, "retry", "retries")
        gone = f", {self.dropped_rows:,} gone" if self.dropped_rows else ""
        kept = (
            f", {self.kept_unseen:,} not found but kept (found by the previous full walk)" if self.kept_unseen else ""
        )
        return (
            f"{self.rows:,} rows ({self.new_rows:,} new{gone}{kept}) from {counted(self.calls, 'call')} ({retries}), "
            f"{mode} {self.start:%Y-%m-%d %H:%M} .. {self.end:%Y-%m-%d %H:%M}, {self.elapsed:.1f}s"
        )


def query_fingerprint(query: SearchQuery) -> str:
    """A hash of everything that decides which photos a query matches (not of the keyword alone)."""
    parts = {
        "arguments": query.api_arguments(),
        "min_upload": query.min_upload.isoformat(),
        "max_upload": query.max_upload.isoformat() if query.max_upload else None,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def check_overlap(overlap: timedelta) -> None:
    """Raise ``ValueError`` if ``overlap`` is negative: it would skip the uploads just after the last harvest."""
    if overlap < timedelta(0):
        raise ValueError(f"overlap_hours must not be negative, not {overlap.total_seconds() / 3600:g}")


def harvest_keyword(
    layout: DataLayout,
    client: FlickrClient,
    query: SearchQuery,
    full_refresh: bool = False,
    overlap: timedelta = DEFAULT_OVERLAP,
    now: datetime | None = None,
    on_progress: Callable[[HarvestProgress], None] | None = None,
) -> HarvestResult:
    """Harvest ``query`` into ``layout``'s records store for ``query.keyword``; see the module docstring.

    Raises ``ValueError`` for a negative ``overlap`` (:func:`check_overlap`), and
    :class:`~flickr_assets.storage.locks.KeywordBusy` while another process harvests the keyword.
    """
    check_overlap(overlap)
    with keyword_lock(layout, query.keyword, "harvest"):
        return _harvest(layout, client, query, full_refresh, overlap, now, on_progress)


def _harvest(
    layout: DataLayout,
    client: FlickrClient,
    query: SearchQuery,
    full_refresh: bool,
    overlap: timedelta,
    now: datetime | None,
    on_progress: Callable[[HarvestProgress], None] | None,
) -> HarvestResult:
    started = time.monotonic()
    keyword = query.keyword
    now = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    remove_stale_temp_files(layout.records_dir(keyword))

    damage = records_file_damage(layout.records_file(keyword))
    if damage and not full_refresh:  # found now, not after a whole walk's API calls
        raise RecordsFileError(f"{damage}: materialise the keyword with full_refresh to harvest it anew")
    if damage:
        log.warning("%s: replacing it with this full refresh", damage)
    fingerprint = query_fingerprint(query)
    previous = read_state(layout, keyword)
    state = None if full_refresh else previous
    incremental = bool(state and state.get("fingerprint") == fingerprint and layout.records_file(keyword).exists())
    # A full walk of the same query keeps photos it misses but the previous full walk found: Flickr's search
    # may leave a photo out of one walk; missed by two walks in a row, it is taken as gone.
    same_query = bool(previous and previous.get("fingerprint") == fingerprint)
    last_full = previous.get("full_walk_started") if previous and same_query else None
    start = query.min_upload
    if incremental and state:
        watermark = datetime.fromisoformat(state["harvested_until"])
        start = max(query.min_upload, watermark - overlap)
    end = min(query.max_upload, now) if query.max_upload else now
    before = replace(client.stats)  # counters so far: the result reports this run's share

    # A walk killed on the way (or failed) left a checkpoint: the same walk goes on from it, not from the start.
    walk = {"fingerprint": fingerprint, "incremental": incremental, "start": start.isoformat()}
    resume, parts = _resume_point(layout, keyword, walk)
    harvest = Harvest(client, query, start=start, end=end, seen_at=now, on_progress=on_progress, resume=resume)
    with RecordsWriter(layout, keyword, parts=parts) as writer:
        for item in harvest.batches():
            if isinstance(item, Checkpoint):
                parts = writer.checkpoint()  # the rows first, then the checkpoint that counts on them
                write_resume(layout, keyword, {**walk, **_as_json(item), "parts": len(parts)})
            else:
                writer.add(item)
        merged = writer.commit(
            replace=not incremental, seen_since=datetime.fromisoformat(last_full) if last_full else None
        )
    drop_resume(layout, keyword)
    append_coverage(layout, keyword, _coverage_rows(harvest.coverage, now))
    latest = datetime.fromtimestamp(harvest.latest_upload, UTC) if harvest.latest_upload is not None else None
    write_state(
        layout,
        keyword,
        {
            "keyword": keyword,
            "fingerprint": fingerprint,
            "harvested_until": end.isoformat(),
            "latest_upload": latest.isoformat() if latest else None,
            "harvest_started": now.isoformat(),
            "full_walk_started": last_full if incremental else now.isoformat(),
            "rows": merged.rows,
        },
    )
    if harvest.skipped:
        log.warning("%r: skipped %s unusable photos: %s", keyword, sum(harvest.skipped.values()), dict(harvest.skipped))
    return HarvestResult(
        keyword=keyword,
        rows=merged.rows,
        new_rows=merged.new_rows,
        rows_received=harvest.rows_received,
        unique_harvested=merged.new_rows + merged.updated_rows,
        calls=harvest.calls,
        http_requests=client.stats.calls - before.calls,
        retries=client.stats.retries - before.retries,
        windows=len(harvest.coverage),
        reported_total=harvest.first_total,
        start=start,
        end=end,
        incremental=incremental,
        elapsed=time.monotonic() - started,
        skipped=dict(harvest.skipped),
        split_seconds=harvest.split_seconds,
        latest_upload=latest,
        budget_wait=client.stats.budget_wait_seconds - before.budget_wait_seconds,
        backoff=client.stats.backoff_seconds - before.backoff_seconds,
        dropped_rows=merged.dropped_rows,
        kept_unseen=merged.kept_unseen,
    )


def _as_json(checkpoint: Checkpoint) -> dict[str, Any]:
    return {
        "cursor": checkpoint.cursor,
        "boundary": checkpoint.boundary,
        "latest_upload": checkpoint.latest_upload,
        "first_total": checkpoint.first_total,
        "coverage": [astuple(window) for window in checkpoint.coverage],
    }


def _resume_point(layout: DataLayout, keyword: str, walk: dict[str, Any]) -> tuple[Checkpoint | None, list[Path]]:
    """The checkpoint of an unfinished harvest of the same ``walk`` and its part files; any other unfinished
    harvest (another query, mode or start) is forgotten."""
    found = read_resume(layout, keyword)
    if found and {name: found[0].get(name) for name in walk} == walk:
        point, parts = found
        try:
            resume = Checkpoint(
                int(point["cursor"]),
                tuple(int(i) for i in point["boundary"]),
                point["latest_upload"],
                point["first_total"],
                tuple(WindowCoverage(*window) for window in point["coverage"]),
            )
        except (KeyError, TypeError, ValueError):
            resume = None
        if resume is not None:
            log.info("%r: going on from the harvest checkpoint at upload second %s", keyword, resume.cursor)
            return resume, parts
    drop_resume(layout, keyword)
    return None, []


def _coverage_rows(windows: list[WindowCoverage], harvest_started: datetime) -> list[dict[str, object]]:
    """The harvest's search windows as ``COVERAGE`` rows."""
    return [
        {
            "harvest_started": harvest_started,
            "window_start": datetime.fromtimestamp(window.start, UTC),
            "window_end": datetime.fromtimestamp(window.end, UTC),
            "reported_total": window.reported_total,
            "rows_received": window.rows_received,
            "new_rows": window.new_rows,
            "calls": window.calls,
        }
        for window in windows
    ]
