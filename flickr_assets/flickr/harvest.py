"""The harvest: every photo matching one query, at close to one call per full page of new photos.

Flickr returns at most 4,000 results per query, reports an approximate ``total``, and reorders photos that
share an upload second differently on every call. The walk therefore never relies on ``total`` or on deep
paging: it asks for page 1 of ``[T, end]`` sorted by upload time ascending, where T is the latest upload
second seen so far.

* A page that is not full is the end of the range: everything in ``[T, end]`` has been seen. Unless Flickr
  says more pages follow: it filters some photos out of a page after paging (they count in ``total`` but are
  never shown), so a short page is then read as a full one.
* Otherwise the next call starts at the page's last upload second S (not S + 1, since more photos of S may
  follow). The photos of S already seen come back once and are dropped by photo ID, so the cost of a page
  boundary is only the ties at S, and no reordering can hide a photo.
* When one second holds more photos than a page (a whole page shares T), that second is drained by
  splitting it into taken-date ranges until each part fits one page (then by licence; only a part that no
  filter can split is paged, repeatedly, until passes bring nothing new).

Rows are yielded in batches; the walk keeps only the IDs of the current boundary second in memory.
"""

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from flickr_assets.flickr.client import FlickrClient, SearchPage
from flickr_assets.flickr.errors import TransientFlickrError
from flickr_assets.flickr.query import SearchQuery, taken_arguments
from flickr_assets.flickr.records import EXTRAS, BadPhoto, photo_to_row, upload_second
from flickr_assets.wording import counted

log = logging.getLogger(__name__)

RESULT_CAP = 4000  # Flickr's limit of distinct results per query
ALL_LICENSES = tuple(range(17))


@dataclass(frozen=True)
class WindowCoverage:
    """What one search window covered: bounds (unix seconds, inclusive), Flickr's total, rows, calls."""

    start: int
    end: int
    reported_total: int | None
    rows_received: int
    new_rows: int
    calls: int


@dataclass(frozen=True)
class Checkpoint:
    """Where a walk stands once every row before it has been handed out: the next page starts at ``cursor``
    (an upload second), ``boundary`` holds the IDs already seen in that second. A walk built with it goes on
    from there."""

    cursor: int
    boundary: tuple[int, ...]
    latest_upload: int | None
    first_total: int | None = None
    coverage: tuple[WindowCoverage, ...] = ()


@dataclass(frozen=True)
class HarvestProgress:
    """A progress report, at least every few calls."""

    keyword: str
    photos: int
    calls: int
    current: datetime
    start: datetime
    end: datetime
    elapsed: float

    @property
    def fraction(self) -> float:
        """Share of the upload-time span walked so far (photos are not spread evenly over it)."""
        span = (self.end - self.start).total_seconds()
        return 1.0 if span <= 0 else min(1.0, max(0.0, (self.current - self.start).total_seconds() / span))

    def __str__(self) -> str:
        return (
            f"{self.keyword!r}: {self.photos:,} photos after {counted(self.calls, 'call')}, uploads up to "
            f"{self.current:%Y-%m-%d %H:%M} ({self.fraction:.0%} of the time span), {self.elapsed:.0f}s"
        )


@dataclass
class Harvest:
    """One walk over ``[start, end]`` of ``query``. Iterate :meth:`batches`; read the counters afterwards."""

    client: FlickrClient
    query: SearchQuery
    start: datetime
    end: datetime
    seen_at: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))
    batch_size: int = 5000
    on_progress: Callable[[HarvestProgress], None] | None = None
    progress_every: int = 10
    resume: Checkpoint | None = None  # go on from an earlier walk's checkpoint
    checkpoint_every: int = 20  # calls between two checkpoints (0: none)

    calls: int = 0
    rows_received: int = 0
    new_rows: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    coverage: list[WindowCoverage] = field(default_factory=list)
    first_total: int | None = None  # Flickr's total for the whole range, from the first call
    latest_upload: int | None = None  # latest upload second of a row yielded
    split_seconds: int = 0  # seconds that held more photos than a page

    def __post_init__(self) -> None:
        self._buffer: list[dict[str, Any]] = []
        self._page_taken: list[datetime | None] = []  # taken dates of the last page (to split a second)
        self._boundary: set[int] = set()  # IDs seen at the current boundary second (the only possible repeats)
        self._started = time.monotonic()
        self._last_progress_calls = 0
        self._checkpoint_calls = 0
        self._cursor = self._ts(self.start)
        if self.resume is not None:
            self._cursor = max(self._cursor, self.resume.cursor)
            self._boundary = set(self.resume.boundary)
            self.latest_upload = self.resume.latest_upload
            self.first_total = self.resume.first_total
            self.coverage = list(self.resume.coverage)

    @property
    def page_size(self) -> int:
        return self.query.page_size

    def batches(self) -> Iterator[list[dict[str, Any]] | Checkpoint]:
        """Walk the range; yield lists of record rows (``storage.schemas.RECORDS``), new photos only, and
        every ``checkpoint_every`` calls a :class:`Checkpoint` (after every row before it)."""
        end = self._ts(self.end)
        cursor = self._cursor
        while cursor <= end:
            self._cursor = cursor
            page = self._search(cursor, end)
            received, new, last_second = self._take(page.photos, cursor, end)
            if self.first_total is None:
                self.first_total = page.total
            if len(page.photos) >= page.per_page > 0 and last_second is None:
                raise TransientFlickrError("Flickr returned a full page without usable upload dates", kind="bad_body")
            if not _holds_more(page) or last_second is None:
                self._cover(cursor, end, page.total, received, new, 1)
                break
            if len(page.photos) < page.per_page:
                log.info("short page at %s but Flickr reports %s pages; continuing", cursor, page.pages)
            self._cover(cursor, last_second, page.total, received, new, 1)
            if last_second == cursor:
                self._drain_second(cursor, page.total)
                self._boundary.clear()
                cursor += 1
            else:
                self._boundary = self._ids_at(page.photos, last_second)
                cursor = last_second
            yield from self._flush(final=False)
            if self.checkpoint_every and self.calls - self._checkpoint_calls >= self.checkpoint_every:
                self._checkpoint_calls = self.calls
                yield from self._flush(final=True)
                boundary = tuple(sorted(self._boundary))
                yield Checkpoint(cursor, boundary, self.latest_upload, self.first_total, tuple(self.coverage))
        self._cursor = end
        self._report(force=True)
        yield from self._flush(final=True)

    # --- the walk ------------------------------------------------------------------------------
    def _search(self, low: int, high: int, page: int = 1, **narrow: str) -> SearchPage:
        args = {
            **self.query.api_arguments(),
            **narrow,
            "min_upload_date": str(low),
            "max_upload_date": str(high),
            "sort": "date-posted-asc",
            "extras": EXTRAS,
            "per_page": str(self.page_size),
            "page": str(page),
        }
        result = self.client.search(**args)
        self.calls += 1
        self._report()
        return result

    def _take(self, photos: list[Any], low: int, high: int) -> tuple[int, int, int | None]:
        """Convert and buffer the new photos of one page; return (received, new, last upload second)."""
        new = 0
        last: int | None = None
        self._page_taken = []
        for photo in photos:
            second = upload_second(photo)
            try:
                row = photo_to_row(photo, self.query.keyword, self.seen_at)
            except BadPhoto as error:
                self._skip(str(error), photo)
                continue
            self._page_taken.append(row["date_taken"])
            if second is not None and low <= second <= high:
                last = second if last is None else max(last, second)
            if row["photo_id"] in self._boundary:
                continue
            self._boundary.add(row["photo_id"])
            self._buffer.append(row)
            new += 1
            if second is not None and (self.latest_upload is None or second > self.latest_upload):
                self.latest_upload = second
        self.rows_received += len(photos)
        self.new_rows += new
        return len(photos), new, last

    @staticmethod
    def _ids_at(photos: list[Any], second: int) -> set[int]:
        ids = set()
        for photo in photos:
            if upload_second(photo) == second:
                try:
                    ids.add(int(photo["id"]))
                except (KeyError, TypeError, ValueError):
                    continue
        return ids

    def _drain_second(self, second: int, reported: int) -> None:
        """Fetch every photo of one upload second that holds more than a page of photos.

        Photos of one upload second differ in their taken dates, so the second is split into taken-date
        ranges (cut at quantiles of the dates seen so far) until each range fits one page. A range that
        cannot be cut (one taken second) is split by licence, and paged as a last resort.
        """
        self.split_seconds += 1
        calls_before, received_before, new_before = self.calls, self.rows_received, self.new_rows
        # ``reported`` is the total of the whole remaining range, not of this second. The full page just
        # taken is a sample of the second (ties come back in any order), so cutting at its taken-date
        # quantiles gives parts of about equal size: thirds fit a page each up to ~2.5 pages of photos (~640 at
        # the 250 per page of geo queries, ~1,300 at 500), and a part that is still full is cut again by its own
        # (more telling) total.
        queue = _taken_ranges(self._page_taken, 3, self.query.min_taken, self.query.max_taken)
        log.info("upload second %s holds more than %s photos; splitting it by taken date", second, self.page_size)
        while queue:
            low, high = queue.pop()
            narrow = taken_arguments(low, high)
            page = self._search(second, second, **narrow)
            self._take(page.photos, second, second)
            if not _holds_more(page):
                continue
            parts = max(2, min(16, math.ceil(page.total / (0.85 * page.per_page))))
            finer = _taken_ranges(self._page_taken, parts, low, high)
            if len(finer) > 1:
                queue += finer
            else:
                self._drain_by_licence(second, narrow)
        self._cover(
            second,
            second,
            reported,
            self.rows_received - received_before,
            self.new_rows - new_before,
            self.calls - calls_before,
        )

    def _drain_by_licence(self, second: int, narrow: dict[str, str]) -> None:
        queue = [tuple(self.query.licenses or ALL_LICENSES)]
        while queue:
            group = queue.pop()
            part = {**narrow, "license": ",".join(map(str, group))}
            page = self._search(second, second, **part)
            self._take(page.photos, second, second)
            if not _holds_more(page):
                continue
            if len(group) > 1:
                queue += [group[: len(group) // 2], group[len(group) // 2 :]]
            else:
                self._page_exhaustively(second, part, page)

    def _page_exhaustively(self, second: int, narrow: dict[str, str], first: SearchPage) -> None:
        """Last resort for a part no filter can split: page through it until two passes add nothing."""
        pages = max(1, min(first.pages, RESULT_CAP // max(1, first.per_page)))
        log.warning("upload second %s: %s still holds more than a page; paging it %s times", second, narrow, pages)
        quiet = 0
        for _attempt in range(10):
            before = self.new_rows
            for number in range(1, pages + 1):
                page = self._search(second, second, page=number, **narrow)
                self._take(page.photos, second, second)
            quiet = quiet + 1 if self.new_rows == before else 0
            if quiet == 2:
                return

    # --- bookkeeping ---------------------------------------------------------------------------
    def _cover(self, start: int, end: int, total: int | None, received: int, new: int, calls: int) -> None:
        self.coverage.append(WindowCoverage(start, end, total, received, new, calls))

    def _skip(self, reason: str, photo: Any) -> None:
        if not self.skipped[reason]:
            ident = photo.get("id") if isinstance(photo, dict) else None
            log.warning("skipping a photo of %r (id %s): %s", self.query.keyword, ident, reason)
        self.skipped[reason] += 1

    def _flush(self, final: bool) -> Iterator[list[dict[str, Any]]]:
        while len(self._buffer) >= self.batch_size or (final and self._buffer):
            batch, self._buffer = self._buffer[: self.batch_size], self._buffer[self.batch_size :]
            yield batch

    def progress(self) -> HarvestProgress:
        return HarvestProgress(
            keyword=self.query.keyword,
            photos=self.new_rows,
            calls=self.calls,
            current=datetime.fromtimestamp(self._cursor, UTC),
            start=self.start,
            end=self.end,
            elapsed=time.monotonic() - self._started,
        )

    def _report(self, force: bool = False) -> None:
        if self.on_progress is None:
            return
        if force or self.calls - self._last_progress_calls >= self.progress_every:
            self._last_progress_calls = self.calls
            self.on_progress(self.progress())

    @staticmethod
    def _ts(moment: datetime) -> int:
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return int(moment.timestamp())


def _taken_ranges(
    taken: list[datetime | None], parts: int, low: datetime | None, high: datetime | None
) -> list[tuple[datetime | None, datetime | None]]:
    """Split ``[low, high]`` (None: open) into up to ``parts`` adjacent ranges at quantiles of ``taken``."""
    dates = sorted({t for t in taken if t is not None and (low is None or t >= low) and (high is None or t <= high)})
    cuts: list[datetime] = []
    for i in range(1, parts):
        cut = dates[min(len(dates) - 1, (i * len(dates)) // parts)] if dates else None
        if cut is not None and cut != dates[0] and (not cuts or cut > cuts[-1]):
            cuts.append(cut)
    if not cuts:
        return [(low, high)]
    ranges = []
    for i in range(len(cuts) + 1):
        start = low if i == 0 else cuts[i - 1]
        stop = cuts[i] - timedelta(seconds=1) if i < len(cuts) else high
        ranges.append((start, stop))
    return ranges


def _holds_more(page: SearchPage) -> bool:
    """Whether the range a first page was asked for holds more than that page: the page is full, or short
    (photos filtered out after paging) while Flickr reports more pages."""
    if page.per_page <= 0 or not page.photos:
        return False
    return len(page.photos) >= page.per_page or page.pages > page.page
