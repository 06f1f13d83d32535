"""The nightly refresh: every keyword's records and images incrementally, then the catalog.

``nightly_keywords`` (default 02:00 UTC, ``$FLICKR_NIGHTLY_CRON``) asks for one run per keyword partition
still in the keywords file, tagged with the night's tick. The runs go through the run queue, whose limits
(``dagster_home/dagster.yaml``) and the ``flickr_api``/``flickr_static`` pools keep the API and the host from
being flooded.
Incremental harvests only ask for new uploads, so they never see what changed on older photos (deleted, made
private, retitled, relicensed, a new secret): each keyword is also walked in full every
``$FLICKR_FULL_REFRESH_DAYS`` nights (default 7), on a night of its own, so the extra calls spread over the week.
``catalog_after_nightly`` then builds the catalog once every run of that night has ended.
Both are off until turned on, as Dagster schedules and sensors are.
"""

import os
import zlib
from collections.abc import Iterator
from datetime import date

import dagster as dg

from flickr_assets.defs.assets import photo_catalog, photo_images, photo_records
from flickr_assets.defs.partitions import keyword_partitions, keywords_file_path
from flickr_assets.flickr.keywords import KeywordsFileError, load_keywords_file

NIGHTLY_TAG = "flickr/nightly"
FULL_REFRESH_TAG = "flickr/full_refresh"
DEFAULT_CRON = "0 2 * * *"
DEFAULT_FULL_REFRESH_DAYS = 7
FULL_REFRESH_CONFIG = {"ops": {photo_records.key.to_python_identifier(): {"config": {"full_refresh": True}}}}

keyword_job = dg.define_asset_job(
    "keyword_job",
    selection=dg.AssetSelection.assets(photo_records, photo_images),
    description="Records then images of one keyword partition.",
)
catalog_job = dg.define_asset_job(
    "catalog_job", selection=dg.AssetSelection.assets(photo_catalog), description="The catalog of all keywords."
)


def nightly_cron() -> str:
    """``$FLICKR_NIGHTLY_CRON`` (default 02:00 every day); a value Dagster cannot schedule stops with one line
    naming the setting (Dagster's own error names only the schedule)."""
    cron = (os.environ.get("FLICKR_NIGHTLY_CRON") or DEFAULT_CRON).strip()
    try:
        dg.ScheduleDefinition(name="nightly_cron_check", cron_schedule=cron, job=keyword_job)
    except dg.DagsterInvalidDefinitionError:
        raise ValueError(
            f"FLICKR_NIGHTLY_CRON={cron!r} is not a valid cron expression: 5 fields, minute hour day month weekday "
            f"(e.g. {DEFAULT_CRON!r} for 02:00 UTC)"
        ) from None
    return cron


def full_refresh_days() -> int:
    """``$FLICKR_FULL_REFRESH_DAYS``: every how many nights each keyword is walked in full (0: never)."""
    text = (os.environ.get("FLICKR_FULL_REFRESH_DAYS") or str(DEFAULT_FULL_REFRESH_DAYS)).strip()
    if not text.isdecimal() or int(text) > 366:
        raise ValueError(
            f"FLICKR_FULL_REFRESH_DAYS={text!r} must be a number of nights from 0 (never) to 366 "
            f"(default {DEFAULT_FULL_REFRESH_DAYS}: each keyword walked in full once a week)"
        )
    return int(text)


def full_refresh_night(keyword: str, night: date, every: int) -> bool:
    """Whether ``keyword`` is walked in full on ``night``: once in ``every`` nights, on a night that depends on
    the keyword (a stable hash), so that a long keyword list spreads its full walks evenly."""
    return every > 0 and (night.toordinal() + zlib.crc32(keyword.encode())) % every == 0


def scheduled_keywords() -> list[str]:
    """The keyword partitions still in the keywords file now: a keyword removed from it is not refreshed even
    before the definitions are reloaded (an unreadable file keeps them all)."""
    loaded = keyword_partitions.get_partition_keys()
    try:
        in_file = set(load_keywords_file(keywords_file_path()).keywords)
    except KeywordsFileError:
        return loaded
    return [keyword for keyword in loaded if keyword in in_file]


full_refresh_days()  # a bad value stops the definitions from loading, naming the setting (read again per tick)


@dg.schedule(
    cron_schedule=nightly_cron(),
    job=keyword_job,
    execution_timezone="UTC",
    description="Refresh every keyword (records, then images), one run per keyword: incrementally, and in full "
    "once every FLICKR_FULL_REFRESH_DAYS nights (default 7) to see changes to older photos.",
)
def nightly_keywords(context: dg.ScheduleEvaluationContext) -> Iterator[dg.RunRequest]:
    when = context.scheduled_execution_time
    tick = when.strftime("%Y-%m-%dT%H:%M")
    every = full_refresh_days()
    for keyword in scheduled_keywords():
        tags = {NIGHTLY_TAG: tick}
        full = full_refresh_night(keyword, when.date(), every)
        if full:
            tags[FULL_REFRESH_TAG] = "true"
        yield dg.RunRequest(
            run_key=f"{tick}:{keyword}",
            partition_key=keyword,
            tags=tags,
            run_config=FULL_REFRESH_CONFIG if full else {},
        )


FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


@dg.sensor(
    job=catalog_job,
    minimum_interval_seconds=60,
    description="Builds the catalog once every run of the latest nightly refresh has ended.",
)
def catalog_after_nightly(context: dg.SensorEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    records = context.instance.get_run_records(
        filters=dg.RunsFilter(job_name=keyword_job.name),
        limit=max(50, 2 * len(keyword_partitions.get_partition_keys())),
    )
    ticks = [r.dagster_run.tags.get(NIGHTLY_TAG) for r in records if r.dagster_run.tags.get(NIGHTLY_TAG)]
    if not ticks:
        return dg.SkipReason("no nightly refresh has run yet")
    latest = max(ticks)
    if latest == context.cursor:
        return dg.SkipReason(f"the catalog of the {latest} refresh is already requested")
    # Every run of that night, however many other runs (manual, backfills) came since.
    night = context.instance.get_runs(filters=dg.RunsFilter(job_name=keyword_job.name, tags={NIGHTLY_TAG: latest}))
    waiting = [run for run in night if run.status not in FINISHED]
    if waiting:
        return dg.SkipReason(f"{len(waiting)} run(s) of the {latest} refresh still going")
    context.update_cursor(latest)
    return dg.RunRequest(run_key=f"catalog:{latest}", tags={NIGHTLY_TAG: latest})
