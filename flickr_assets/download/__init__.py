"""The download engine: fetch each record's image, classify, process on all cores, store in shard folders,
and keep a crash-safe manifest of every outcome. No Dagster here.

Names are imported on first use, so the worker processes (which import ``download.workers``) do not load
the engine's Parquet machinery.
"""

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flickr_assets.download.engine import download_keyword
    from flickr_assets.download.options import DownloadOptions, DownloadProgress, DownloadResult
    from flickr_assets.download.photo import DiskFull

__all__ = ["DiskFull", "DownloadOptions", "DownloadProgress", "DownloadResult", "download_keyword"]

_HOMES = {
    "download_keyword": "engine",
    "DownloadOptions": "options",
    "DownloadProgress": "options",
    "DownloadResult": "options",
    "DiskFull": "photo",
}


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
