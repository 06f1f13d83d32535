"""Everything that happens to one photo: link or fetch, classify, retry, process, store, one manifest row.

Runs on a fetch thread. The outcome is a manifest row; the image file (if any) is written atomically
before the row is returned, so a row in the journal always means its file is complete.
"""

import datetime as dt
import errno
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from flickr_assets.download.fetch import Fetcher
from flickr_assets.download.options import DownloadOptions
from flickr_assets.download.plan import ImagePaths, Task, known_too_small
from flickr_assets.download.reuse import COPIED_COLUMNS, link_stored
from flickr_assets.download.workers import ImageProcessor, ProcessingCrashed, StoredImage
from flickr_assets.imaging import InvalidImage
from flickr_assets.storage.layout import DataLayout

# The file embeds the photo's facts, not when we happened to see it: the same photo stored twice gives the same
# bytes.
HARVEST_TIMES = frozenset({"first_seen", "last_seen"})
DISK_FULL = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})


class DiskFull(OSError):
    """The data folder cannot take more files: every later photo would fail the same way, so the run stops."""


@dataclass
class PhotoContext:
    """What every fetch thread shares during one run."""

    layout: DataLayout
    keyword: str
    options: DownloadOptions
    fetcher: Fetcher
    processor: Callable[[], ImageProcessor]
    stored_elsewhere: dict[int, dict] = field(default_factory=dict)
    stopping: threading.Event = field(default_factory=threading.Event)
    requests: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    paths: ImagePaths = field(init=False)

    def __post_init__(self) -> None:
        self.paths = ImagePaths(self.layout, self.keyword)

    def count_requests(self, count: int) -> None:
        with self._lock:
            self.requests += count


def new_row(photo_id: int, status: str, **values: object) -> dict:
    """A manifest row with the required columns filled in."""
    row = {"photo_id": photo_id, "status": status, "attempts": 0, "updated_at": dt.datetime.now(dt.UTC)}
    row.update(values)
    return row


def quick_outcome(ctx: PhotoContext, task: Task) -> dict | None:
    """The row of a photo that needs no request at all (no image URL, or known to be too small)."""
    source = task.source
    if source is None:
        return new_row(task.photo_id, "unavailable", reason="the record has neither url_l nor url_o")
    if known_too_small(source, ctx.options):
        return new_row(
            task.photo_id,
            "too_small",
            reason=f"the record gives {source.width}x{source.height} (min side {ctx.options.min_side})",
            source=source.kind,
            url=source.url,
            original_width=source.width,
            original_height=source.height,
            bytes_fetched=0,
        )
    return None


def handle_photo(ctx: PhotoContext, task: Task) -> dict | None:
    """Bring one photo to a final or failed state; None if the run is stopping before it finished."""
    started = time.monotonic()
    destination = ctx.paths.file(task.shard, task.file_name)
    relative = ctx.paths.relative(destination)
    assert task.source is not None, "quick_outcome handles records without a source"
    source = task.source

    other = ctx.stored_elsewhere.get(task.photo_id)
    if other is not None and link_stored(ctx.layout, other, destination):
        values = {name: other[name] for name in COPIED_COLUMNS}
        values.update(reason=f"linked from {other['linked_from']}", bytes_fetched=0, path=relative)
        return _finish(new_row(task.photo_id, "ok", **values), started)

    row = new_row(task.photo_id, "failed", source=source.kind, url=source.url, path=relative, bytes_fetched=0)
    metadata = {k: v for k, v in (task.record or {}).items() if k not in HARVEST_TIMES}
    decode_errors: list[str] = []
    reason = "no attempt made"
    while row["attempts"] < ctx.options.attempts:
        if ctx.stopping.is_set():
            return None
        row["attempts"] += 1
        answer = ctx.fetcher.get(source.url)
        ctx.count_requests(answer.requests)
        row["bytes_fetched"] += answer.bytes_received
        reason = answer.reason or ""
        if answer.kind in ("unavailable", "not_found"):
            return _finish(row | {"status": answer.kind, "reason": reason, "path": None}, started)
        if answer.kind == "refused":
            return _finish(row | {"reason": reason}, started)
        if answer.kind == "body":
            assert answer.body is not None
            try:
                result = ctx.processor().process(answer.body, metadata, destination)
            except InvalidImage as error:
                decode_errors.append(str(error))
                reason = f"undecodable image: {error}"
                if len(decode_errors) >= min(ctx.options.decode_attempts, ctx.options.attempts) and (
                    len(set(decode_errors)) == 1
                ):
                    return _finish(row | {"status": "invalid", "reason": reason, "path": None}, started)
                _pause(ctx, row["attempts"], None)
                continue
            except ProcessingCrashed as error:
                reason = str(error)
                continue
            except Exception as error:  # a processing bug is not the image's fault: retry on the next run
                if isinstance(error, OSError) and error.errno in DISK_FULL:
                    raise DiskFull(
                        error.errno, f"no room to store images under {destination.parent}: {error}"
                    ) from None
                return _finish(row | {"reason": f"processing error: {type(error).__name__}: {error}"}, started)
            return _finish(_stored_row(row, result), started)
        _pause(ctx, row["attempts"], answer.retry_after)
    return _finish(row | {"reason": f"gave up after {row['attempts']} attempts: {reason}"}, started)


def _stored_row(row: dict, result: StoredImage) -> dict:
    """The row of a processed image: ``ok`` (the worker has written the file) or ``too_small`` (nothing)."""
    width, height = result.original_size
    out = row | {"original_width": width, "original_height": height, "reencoded": result.reencoded}
    box = result.crop_box
    if box is not None:
        out |= {"crop_left": box[0], "crop_top": box[1], "crop_right": box[2], "crop_bottom": box[3]}
    if result.status == "too_small":
        stored = result.stored_size
        size = f"{stored[0]}x{stored[1]}" if stored else f"{width}x{height}"
        return out | {"status": "too_small", "reason": f"image is {size} after frame removal/resizing", "path": None}
    assert result.stored_size is not None and result.sha256 is not None
    stored_w, stored_h = result.stored_size
    return out | {
        "status": "ok",
        "reason": None,
        "stored_width": stored_w,
        "stored_height": stored_h,
        "sha256": result.sha256,
        "source_sha256": result.source_sha256,
        "phash": result.phash,
    }


def _pause(ctx: PhotoContext, attempt: int, retry_after: float | None) -> None:
    """Wait before the next attempt: the server's Retry-After, else exponential backoff with jitter."""
    if attempt >= ctx.options.attempts:
        return
    if retry_after is not None:
        delay = retry_after
    else:
        delay = min(ctx.options.backoff_max, ctx.options.backoff * 2 ** (attempt - 1)) * random.uniform(0.5, 1.5)
    ctx.stopping.wait(delay)


def _finish(row: dict, started: float) -> dict:
    row["elapsed_ms"] = (time.monotonic() - started) * 1000.0
    row["updated_at"] = dt.datetime.now(dt.UTC)
    return row
