"""The Dagster code location: ``dagster dev``, ``dagster asset materialize -m flickr_assets.definitions`` and
``dg launch`` all load ``defs`` from here."""

import dagster as dg

from flickr_assets.defs.assets import photo_catalog, photo_images, photo_records
from flickr_assets.defs.checks import CHECKS
from flickr_assets.defs.keywords_watch import keywords_file_watch
from flickr_assets.defs.queries import query_defaults_from_env
from flickr_assets.defs.resources import resources_from_env
from flickr_assets.defs.schedules import catalog_after_nightly, catalog_job, keyword_job, nightly_keywords


def build_definitions() -> dg.Definitions:
    """The definitions, with resources configured from the environment as it is now."""
    return dg.Definitions(
        assets=[photo_records, photo_images, photo_catalog],
        asset_checks=CHECKS,
        jobs=[keyword_job, catalog_job],
        schedules=[nightly_keywords],
        sensors=[catalog_after_nightly, keywords_file_watch],
        resources={**resources_from_env(), "query_defaults": query_defaults_from_env()},
        # One process per run: a subprocess per step re-imports dagster and the code (one keyword's records and
        # images took 28 s that way against 10 s in process, on two cores); pools are honoured in process too.
        executor=dg.in_process_executor,
    )


defs = build_definitions()
