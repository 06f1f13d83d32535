"""Settings, progress reports and the result of one keyword download."""

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path

from flickr_assets.storage.layout import FILES_PER_SHARD


@dataclass(frozen=True)
class DownloadOptions:
    """How a keyword is downloaded. Every value is checked on creation (a clear ``ValueError`` if bad)."""

    quality: int = 90  # JPEG quality of re-encoded images
    max_side: int = 1024  # longest side of a stored image
    min_side: int = 500  # images with a shorter side are thrown away (status too_small)
    workers: int = 0  # image-processing processes; 0 = one per CPU
    fetchers: int = 16  # download threads (each with its own keep-alive connection)
    per_host: int = 16  # concurrent requests per host
    per_host_original: int = 2  # concurrent requests per host for Originals (``_o``)
    original_interval: float = 0.02  # minimum seconds between two Original requests to one host
    attempts: int = 6  # fetch attempts per photo in one run
    decode_attempts: int = 3  # identical decode errors after which an image is final ``invalid``
    timeout: float = 30.0  # seconds to connect and between bytes received; past it, 20 kB/s on average
    max_image_bytes: int = 64 * 1024 * 1024  # a larger body is refused (bounded memory per fetch)
    backoff: float = 0.25  # first retry delay in seconds; doubles each attempt, with jitter
    backoff_max: float = 8.0  # longest retry delay
    retry_after_max: float = 120.0  # longest wait honoured from a Retry-After header
    retry_failed: bool = True  # try rows with status failed again
    files_per_shard: int = FILES_PER_SHARD
    progress_every: float = 2.0  # seconds between progress callbacks
    contact_sheet_size: int = 12  # thumbnails in the contact sheet (0 = none)
    user_agent: str = "flickr-assets/0.1 (im2gps-style keyword image harvester)"

    def __post_init__(self) -> None:
        # name: (the value is good, what a good value is)
        checks = {
            "quality": (1 <= self.quality <= 100, "from 1 to 100"),
            "max_side": (self.max_side >= 1, "at least 1"),
            "min_side": (0 <= self.min_side <= self.max_side, f"from 0 to max_side ({self.max_side})"),
            "workers": (self.workers >= 0, "0 (one per CPU) or more"),
            "fetchers": (self.fetchers >= 1, "at least 1"),
            "per_host": (self.per_host >= 1, "at least 1"),
            "per_host_original": (self.per_host_original >= 1, "at least 1"),
            "original_interval": (self.original_interval >= 0, "0 or more"),
            "attempts": (self.attempts >= 1, "at least 1"),
            "decode_attempts": (self.decode_attempts >= 1, "at least 1"),
            "timeout": (self.timeout > 0, "more than 0"),
            "max_image_bytes": (self.max_image_bytes >= 1, "at least 1"),
            "backoff": (self.backoff >= 0, "0 or more"),
            "backoff_max": (self.backoff_max >= 0, "0 or more"),
            "retry_after_max": (self.retry_after_max >= 0, "0 or more"),
            "files_per_shard": (1 <= self.files_per_shard <= FILES_PER_SHARD, f"from 1 to {FILES_PER_SHARD}"),
            "progress_every": (self.progress_every > 0, "more than 0"),
            "contact_sheet_size": (self.contact_sheet_size >= 0, "0 (none) or more"),
        }
        bad = [f"{name}={getattr(self, name)!r} (must be {rule})" for name, (ok, rule) in checks.items() if not ok]
        if bad:
            raise ValueError(f"bad download options: {', '.join(bad)}")

    @property
    def process_count(self) -> int:
        """Number of image-processing processes."""
        return self.workers or os.cpu_count() or 1


@dataclass
class DownloadProgress:
    """A snapshot of a running download, for logs and progress bars."""

    keyword: str
    done: int  # photos finished in this run
    total: int  # photos this run has to handle (skipped ones excluded)
    elapsed_s: float
    counts: dict[str, int]  # this run's outcomes per status

    @property
    def images_per_s(self) -> float:
        """Photos finished per second so far in this run."""
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        """Seconds left at the rate so far (None before the first photo is done)."""
        rate = self.images_per_s
        return (self.total - self.done) / rate if rate > 0 else None

    def __str__(self) -> str:
        eta = "?" if self.eta_s is None else str(dt.timedelta(seconds=round(self.eta_s)))
        share = 100.0 * self.done / self.total if self.total else 100.0
        counts = " ".join(f"{status}={count}" for status, count in sorted(self.counts.items()))
        return f"{self.keyword}: {self.done}/{self.total} ({share:.0f}%) {self.images_per_s:.1f} images/s ETA {eta}" + (
            f" [{counts}]" if counts else ""
        )


@dataclass
class DownloadResult:
    """What one ``download_keyword`` run did and the keyword's state afterwards."""

    keyword: str
    records: int  # photos in the records
    to_do: int  # photos this run had to handle (the others were already final)
    done: int  # photos handled in this run
    run_counts: dict[str, int]  # outcomes of this run per status
    counts: dict[str, int]  # the whole manifest per status after the run
    linked: int  # photos hard-linked from another keyword instead of fetched
    requests: int  # HTTP requests made
    bytes_fetched: int
    elapsed_s: float
    stopped: bool  # ended early because ``should_stop`` said so
    manifest: Path
    contact_sheet: Path | None
    temp_files_removed: int = 0  # temp files left by a killed run, or by a worker killed during this one
    failures: dict[str, int] = field(default_factory=dict)  # reasons of ``failed`` rows this run (top ones)
    restamped: int = 0  # stored files whose embedded metadata was rewritten from a changed record (no fetch)
    checked: int = 0  # stored files of an older manifest (no metadata digest) read back and found up to date

    @property
    def images_per_s(self) -> float:
        """Photos handled per second in this run."""
        return self.done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def __str__(self) -> str:
        counts = " ".join(f"{status}={count}" for status, count in sorted(self.counts.items()))
        return (
            f"{self.keyword}: handled {self.done}/{self.to_do} of {self.records} records in {self.elapsed_s:.1f}s "
            f"({self.images_per_s:.1f} images/s, {self.bytes_fetched / 1e6:.1f} MB, {self.linked} linked, "
            f"{self.restamped} restamped)"
            f"{' STOPPED' if self.stopped else ''}; manifest: {counts}"
        )
