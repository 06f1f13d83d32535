"""Everything that happens to one photo handed to the workers: fetch, classify, retry, process, store, and
its manifest row.

The download process decides what needs no request (no image URL, known too small, linked from another
keyword: see ``engine``) and hands the rest out as small :class:`Job` items; a worker process's fetch thread
brings each job to a row (:func:`fetch_and_store`), so the image bytes never leave the process that fetched
them. Nothing here imports pyarrow: the worker processes stay small. The image file (if any) is written
atomically before the row is returned, and the download process makes it durable before it journals the row:
a row in the journal always means its file is complete.
"""

import datetime as dt
import random
import time
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flickr_assets.download.fetch import Fetcher
from flickr_assets.download.options import DownloadOptions
from flickr_assets.download.store import StoredImage, process_and_store
from flickr_assets.imaging import ImagingOptions, InvalidImage
from flickr_assets.storage.atomic import NO_ROOM


class DiskFull(OSError):
    """The data folder cannot take more files: every later photo would fail the same way, so the run stops."""


def disk_full(error: BaseException, folder: Path) -> DiskFull | None:
    """``error`` as a :class:`DiskFull` naming ``folder`` when it says the disk (or quota) is full, else None."""
    if isinstance(error, OSError) and error.errno in NO_ROOM:
        return DiskFull(error.errno, f"no room to store images under {folder}: {error.strerror}")
    return None


@dataclass(frozen=True)
class Job:
    """One photo to fetch, process and store: what a worker process needs, and nothing big."""

    photo_id: int
    source: str  # "large" or "original"
    url: str
    destination: str  # absolute path of the image file
    relative: str  # the manifest's ``path``
    metadata: dict  # the record, as embedded in the file
    fallback: str | None = None  # the Original's URL, tried when the Large turns out not to be there
    metadata_sha256: str | None = None  # metadata_digest of ``metadata``, for the manifest row


@dataclass
class WorkerEnv:
    """What the fetch threads of one worker process share."""

    options: DownloadOptions
    imaging: ImagingOptions
    fetcher: Fetcher
    stopping: Any  # is_set() / wait(seconds), e.g. a threading.Event or a StopFlag: abandon unfinished photos
    processor: Executor  # the process's one image-processing thread


def new_row(photo_id: int, status: str, **values: object) -> dict:
    """A manifest row with the required columns filled in."""
    row = {"photo_id": photo_id, "status": status, "attempts": 0, "updated_at": dt.datetime.now(dt.UTC)}
    row.update(values)
    return row


def crashed_row(job: Job, crashes: int) -> dict:
    """The row of a photo whose worker process died under it ``crashes`` times (tried again next run)."""
    return failed_row(job, f"image processing crashed (worker process died {crashes} times)")


def failed_row(job: Job, reason: str) -> dict:
    """A ``failed`` row of ``job``'s photo (tried again next run) saying why."""
    return finish_row(new_row(job.photo_id, "failed", source=job.source, url=job.url, reason=reason), 0.0)


def fetch_and_store(env: WorkerEnv, job: Job) -> tuple[dict | None, int]:
    """Bring one photo to a final or failed row (None if the run is stopping first); also the number of HTTP
    requests made. Runs on a worker process's fetch thread.

    The seed's rule: the Large, and failing that the Original. A Large that is not there (404, or the
    "photo unavailable" placeholder) does not prove the photo gone: the Original is tried before giving up."""
    started = time.monotonic()
    row, requests = _fetch_source(env, job, job.source, job.url, started)
    if row is None or row["status"] not in ("unavailable", "not_found") or not job.fallback:
        return row, requests
    large = row
    row, more = _fetch_source(env, job, "original", job.fallback, started)
    if row is not None:
        row["attempts"] += large["attempts"]
        row["bytes_fetched"] += large["bytes_fetched"]
        row["reason"] = f"Large: {large['reason']}; Original: {row.get('reason') or 'stored'}"
    return row, requests + more


def _fetch_source(env: WorkerEnv, job: Job, source: str, url: str, started: float) -> tuple[dict | None, int]:
    """Attempts at one of the photo's sources (``url``), as the options allow: its final or failed row."""
    options = env.options
    destination = Path(job.destination)
    row = new_row(job.photo_id, "failed", source=source, url=url, path=job.relative, bytes_fetched=0)
    decode_errors: list[str] = []
    reason = "no attempt made"
    requests = 0
    while row["attempts"] < options.attempts:
        if env.stopping.is_set():
            return None, requests
        row["attempts"] += 1
        answer = env.fetcher.get(url)
        requests += answer.requests
        row["bytes_fetched"] += answer.bytes_received
        reason = answer.reason or ""
        if answer.kind in ("unavailable", "not_found"):
            return finish_row(row | {"status": answer.kind, "reason": reason, "path": None}, started), requests
        if answer.kind == "refused":
            return finish_row(row | {"reason": reason}, started), requests
        if answer.kind == "body":
            assert answer.body is not None
            try:
                result = process_and_store(answer.body, job.metadata, env.imaging, destination, env.processor)
            except InvalidImage as error:
                decode_errors.append(str(error))
                reason = f"undecodable image: {error}"
                settled = len(decode_errors) >= min(options.decode_attempts, options.attempts)
                if settled and len(set(decode_errors)) == 1:
                    return finish_row(row | {"status": "invalid", "reason": reason, "path": None}, started), requests
                _pause(env, row["attempts"], None)
                continue
            except Exception as error:  # a processing bug is not the image's fault: retry on the next run
                if (full := disk_full(error, destination.parent)) is not None:
                    raise full from None
                reason = f"processing error: {type(error).__name__}: {error}"
                return finish_row(row | {"reason": reason}, started), requests
            return finish_row(_stored_row(row, result, job.metadata_sha256), started), requests
        _pause(env, row["attempts"], answer.retry_after)
    return finish_row(row | {"reason": f"gave up after {row['attempts']} attempts: {reason}"}, started), requests


def _stored_row(row: dict, result: StoredImage, metadata_sha256: str | None = None) -> dict:
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
        "metadata_sha256": metadata_sha256,
    }


def _pause(env: WorkerEnv, attempt: int, retry_after: float | None) -> None:
    """Wait before the next attempt: the server's Retry-After, else exponential backoff with jitter."""
    options = env.options
    if attempt >= options.attempts:
        return
    if retry_after is not None:
        delay = retry_after
    else:
        delay = min(options.backoff_max, options.backoff * 2 ** (attempt - 1)) * random.uniform(0.5, 1.5)
    env.stopping.wait(delay)


def finish_row(row: dict, started: float) -> dict:
    """Stamp a finished row with its time (``started`` 0: unknown, a worker died under the photo)."""
    row["elapsed_ms"] = (time.monotonic() - started) * 1000.0 if started else 0.0
    row["updated_at"] = dt.datetime.now(dt.UTC)
    return row
