"""The three assets: ``photo_records`` → ``photo_images`` → ``photo_catalog``.

Each asset is a thin shell: it resolves its partition's query and resources, calls the Dagster-free core,
and turns the core's result into ``MaterializeResult`` metadata. Permanent problems (a bad key, a bad
keyword, bad settings) fail at once without spending retries; the rest is retried by the asset's policy.
"""

import time
from datetime import timedelta

import dagster as dg

from flickr_assets.catalog import build_catalog
from flickr_assets.catalog.build import DEFAULT_COMPRESSION, DEFAULT_NEAR_DISTANCE, check_options
from flickr_assets.catalog.sources import CatalogError, InputChanged
from flickr_assets.defs.metadata import catalog_metadata, column_schema, download_metadata, harvest_metadata
from flickr_assets.defs.partitions import keyword_partitions
from flickr_assets.defs.queries import QueryDefaults, query_for
from flickr_assets.defs.resources import FlickrResource, StorageResource
from flickr_assets.download import DiskFull, DownloadOptions, download_keyword
from flickr_assets.download.plan import RecordsError
from flickr_assets.flickr.errors import PermanentFlickrError
from flickr_assets.flickr.harvest_keyword import check_overlap, harvest_keyword
from flickr_assets.storage.atomic import UNWRITABLE
from flickr_assets.storage.layout import DataFolderError, DataLayout
from flickr_assets.storage.manifest import ManifestError
from flickr_assets.storage.records import RecordsFileError
from flickr_assets.storage.schemas import CATALOG, MANIFEST, RECORDS, SchemaMismatch


class RecordsConfig(dg.Config):
    """Run options of ``photo_records``."""

    full_refresh: bool = False
    overlap_hours: float = 24.0


class ImagesConfig(dg.Config):
    """Run options of ``photo_images``."""

    quality: int = 90
    max_side: int = 1024
    min_side: int = 500
    retry_failed: bool = True


class CatalogConfig(dg.Config):
    """Run options of ``photo_catalog``."""

    near_distance: int = DEFAULT_NEAR_DISTANCE  # most bits (of 64) the perceptual hashes of near duplicates differ by
    compression: str = DEFAULT_COMPRESSION  # Parquet codec of catalog.parquet


def _unwritable(error: OSError, layout: DataLayout) -> Exception:
    """A write error every retry would meet again (no space, read-only...) as a one-line permanent failure
    naming the folder; any other ``OSError`` as it is (retried by the asset's policy)."""
    if error.errno not in UNWRITABLE:
        return error
    where = error.filename or layout.root
    return _permanent(DataFolderError(f"cannot write under {where}: {error.strerror} — free space or fix permissions"))


def _permanent(error: Exception) -> dg.Failure:
    return dg.Failure(description=str(error), allow_retries=False)


def _writable_layout(storage: StorageResource) -> DataLayout:
    """The data folder's layout; a folder that cannot be written fails the step at once (no retry helps)."""
    try:
        return storage.writable_layout()
    except DataFolderError as error:
        raise _permanent(error) from None


class _Progress:
    """Writes a progress line to the run log at most every ``every`` seconds."""

    def __init__(self, context: dg.AssetExecutionContext, every: float = 5.0) -> None:
        self._context = context
        self._every = every
        self._last = 0.0

    def __call__(self, progress: object) -> None:
        now = time.monotonic()
        if now - self._last >= self._every:
            self._last = now
            self._context.log.info(str(progress))


@dg.asset(
    partitions_def=keyword_partitions,
    pool="flickr_api",
    group_name="flickr",
    kinds={"parquet"},
    retry_policy=dg.RetryPolicy(max_retries=3, delay=30, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS),
    metadata={"dagster/column_schema": column_schema(RECORDS)},
    description="Every photo Flickr holds for the keyword, one row per photo ID "
    "(`records/keyword=KEYWORD/photos.parquet`).",
)
def photo_records(
    context: dg.AssetExecutionContext,
    config: RecordsConfig,
    flickr: FlickrResource,
    storage: StorageResource,
    query_defaults: QueryDefaults,
) -> dg.MaterializeResult:
    keyword = context.partition_key
    layout = _writable_layout(storage)
    try:
        query = query_for(keyword, query_defaults)
        client = flickr.client(layout)
        overlap = timedelta(hours=config.overlap_hours)
        check_overlap(overlap)
    except ValueError as error:  # SettingError, KeywordError and bad options are all ValueErrors
        raise _permanent(error) from None
    context.log.info(f"harvesting {keyword!r}: {query.api_arguments()}")
    try:
        with client:
            result = harvest_keyword(
                layout,
                client,
                query,
                full_refresh=config.full_refresh,
                overlap=overlap,
                on_progress=_Progress(context),
            )
    except (PermanentFlickrError, SchemaMismatch, RecordsFileError) as error:
        raise _permanent(error) from None
    except OSError as error:
        raise _unwritable(error, layout) from None
    context.log.info(f"harvested {keyword!r}: {result}")
    return dg.MaterializeResult(metadata=harvest_metadata(layout, keyword, result))


@dg.asset(
    partitions_def=keyword_partitions,
    deps=[photo_records],
    pool="flickr_static",
    group_name="flickr",
    kinds={"parquet", "jpeg"},
    retry_policy=dg.RetryPolicy(max_retries=2, delay=20, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS),
    metadata={"dagster/column_schema": column_schema(MANIFEST)},  # the manifest; the images are files
    description="The keyword's images in shard folders of at most 1,000 files, with a manifest of every outcome.",
)
def photo_images(
    context: dg.AssetExecutionContext, config: ImagesConfig, storage: StorageResource
) -> dg.MaterializeResult:
    keyword = context.partition_key
    layout = _writable_layout(storage)
    records = layout.records_file(keyword)
    if not records.exists():
        raise _permanent(FileNotFoundError(f"no records for {keyword!r} at {records}: materialise photo_records first"))
    try:
        options = DownloadOptions(
            quality=config.quality, max_side=config.max_side, min_side=config.min_side, retry_failed=config.retry_failed
        )
    except ValueError as error:
        raise _permanent(error) from None
    try:
        result = download_keyword(layout, keyword, records, options, on_progress=_Progress(context))
    except (DiskFull, RecordsError, ManifestError) as error:  # retrying would meet them again
        raise _permanent(error) from None
    context.log.info(f"downloaded {result}")
    return dg.MaterializeResult(metadata=download_metadata(layout, keyword, result))


@dg.asset(
    deps=[
        dg.AssetDep(photo_records, partition_mapping=dg.AllPartitionMapping()),
        dg.AssetDep(photo_images, partition_mapping=dg.AllPartitionMapping()),
    ],
    pool="flickr_catalog",  # one build at a time, however it was launched (UI, CLI, the nightly sensor)
    group_name="flickr",
    kinds={"parquet"},
    retry_policy=dg.RetryPolicy(max_retries=1, delay=10),
    metadata={"dagster/column_schema": column_schema(CATALOG)},
    description="One row per unique photo over all keywords, with its keywords, image and duplicate groups.",
)
def photo_catalog(
    context: dg.AssetExecutionContext, config: CatalogConfig, storage: StorageResource
) -> dg.MaterializeResult:
    layout = _writable_layout(storage)
    keywords = list(keyword_partitions.get_partition_keys())
    try:
        check_options(config.near_distance, config.compression)
    except ValueError as error:
        raise _permanent(error) from None
    try:
        result = build_catalog(
            layout,
            keywords,
            near_distance=config.near_distance,
            compression=config.compression,
            on_progress=_Progress(context),
        )
    except InputChanged:
        raise  # a harvest or download wrote meanwhile: the retry policy builds it again
    except CatalogError as error:  # a damaged input file would fail every retry the same way
        raise _permanent(error) from None
    except OSError as error:
        raise _unwritable(error, layout) from None
    context.log.info(f"catalog: {result}")
    return dg.MaterializeResult(metadata=catalog_metadata(layout, result))
