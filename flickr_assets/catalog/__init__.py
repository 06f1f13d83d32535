"""The catalog: one row per unique photo over all keywords, with duplicate and near-duplicate groups."""

from flickr_assets.catalog.build import CatalogProgress, CatalogResult, build_catalog
from flickr_assets.catalog.check import check_catalog
from flickr_assets.catalog.sources import CatalogError

__all__ = ["CatalogError", "CatalogProgress", "CatalogResult", "build_catalog", "check_catalog"]
