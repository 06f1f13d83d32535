"""The download engine: fetch each record's image, classify, process on all cores, store in shard folders,
and keep a crash-safe manifest of every outcome. No Dagster here."""

from flickr_assets.download.engine import download_keyword
from flickr_assets.download.options import DownloadOptions, DownloadProgress, DownloadResult
from flickr_assets.download.photo import DiskFull

__all__ = ["DiskFull", "DownloadOptions", "DownloadProgress", "DownloadResult", "download_keyword"]
