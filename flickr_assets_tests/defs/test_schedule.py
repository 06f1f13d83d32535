"""The nightly schedule asks for one run per keyword; the sensor builds the catalog once they have ended."""

import os
import subprocess
import sys
from datetime import UTC, datetime

import dagster as dg
import pyarrow.parquet as pq
import pytest

from flickr_assets.definitions import build_definitions
from flickr_assets.defs.partitions import keyword_partitions
from flickr_assets.defs.schedules import (
    FULL_REFRESH_CONFIG,
    FULL_REFRESH_TAG,
    NIGHTLY_TAG,
    catalog_after_nightly,
    nightly_keywords,
)
from flickr_assets.storage.layout import DataLayout


@pytest.mark.slow
def test_nightly_schedule_runs_every_keyword_then_the_sensor_builds_the_catalog(pipeline_env, sim):
    defs = build_definitions()
    repository = defs.get_repository_def()
    with dg.instance_for_test() as instance:
        when = datetime(2026, 11, 29, 2, 0, tzinfo=UTC)
        context = dg.build_schedule_context(instance=instance, repository_def=repository, scheduled_execution_time=when)
        requests = nightly_keywords.evaluate_tick(context).run_requests
        keywords = keyword_partitions.get_partition_keys()
        assert [request.partition_key for request in requests] == keywords
        assert len({request.run_key for request in requests}) == len(keywords)
        assert all(request.tags[NIGHTLY_TAG] == "2026-11-29T02:00" for request in requests)

        assert isinstance(catalog_after_nightly(dg.build_sensor_context(instance=instance)), dg.SkipReason)

        keyword_job = defs.resolve_job_def("keyword_job")
        for request in requests:
            result = keyword_job.execute_in_process(
                instance=instance, partition_key=request.partition_key, tags=request.tags, raise_on_error=False
            )
            assert result.success, request.partition_key

        sensor_context = dg.build_sensor_context(instance=instance)
        catalog_request = catalog_after_nightly(sensor_context)
        assert isinstance(catalog_request, dg.RunRequest)
        assert catalog_request.run_key == "catalog:2026-11-29T02:00"
        result = defs.resolve_job_def("catalog_job").execute_in_process(instance=instance, raise_on_error=False)
        assert result.success
        catalog = pq.read_table(DataLayout.at(pipeline_env["FLICKR_DATA_DIR"]).catalog_file, columns=["keywords"])
        assert {k for row in catalog["keywords"].to_pylist() for k in row} == set(keywords)

        # Once requested for a night, the sensor waits for the next one.
        again = catalog_after_nightly(dg.build_sensor_context(instance=instance, cursor=sensor_context.cursor))
        assert isinstance(again, dg.SkipReason)


def _nightly_keywords(instance: dg.DagsterInstance) -> list[str]:
    when = datetime(2026, 11, 29, 2, 0, tzinfo=UTC)
    repository = build_definitions().get_repository_def()
    context = dg.build_schedule_context(instance=instance, repository_def=repository, scheduled_execution_time=when)
    return [request.partition_key for request in nightly_keywords.evaluate_tick(context).run_requests]


def test_a_keyword_removed_from_the_file_is_not_refreshed_even_before_a_reload(tmp_path, monkeypatch):
    first, *rest = keyword_partitions.get_partition_keys()
    keywords = tmp_path / "keywords.txt"
    keywords.write_text("\n".join(rest) + "\n", encoding="utf-8")
    monkeypatch.setenv("FLICKR_KEYWORDS_FILE", str(keywords))
    with dg.instance_for_test() as instance:
        assert _nightly_keywords(instance) == rest
        keywords.write_bytes(b"\xff\xfe not text")  # unreadable: every loaded keyword is refreshed
        assert _nightly_keywords(instance) == [first, *rest]


def test_schedule_defaults_to_two_utc_and_is_off_until_turned_on():
    assert nightly_keywords.cron_schedule == "0 2 * * *"
    assert nightly_keywords.execution_timezone == "UTC"
    assert nightly_keywords.default_status == dg.DefaultScheduleStatus.STOPPED
    assert catalog_after_nightly.default_status == dg.DefaultSensorStatus.STOPPED


@pytest.mark.parametrize(
    ("cron", "loads"), [("30 1 * * 1-5", True), ("nightly", False), ("0 2 * *", False), ("0 26 * * *", False)]
)
def test_nightly_cron_setting_is_used_or_refused_naming_it(cron, loads):
    code = (
        "from flickr_assets.definitions import defs; print(defs.resolve_schedule_def('nightly_keywords').cron_schedule)"
    )
    env = {**os.environ, "FLICKR_NIGHTLY_CRON": cron}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    if loads:
        assert result.returncode == 0 and result.stdout.strip() == cron, result.stderr[-2000:]
    else:
        assert result.returncode != 0
        assert result.stderr.strip().splitlines()[-1] == (
            f"ValueError: FLICKR_NIGHTLY_CRON={cron!r} is not a valid cron expression: 5 fields, minute hour day "
            "month weekday (e.g. '0 2 * * *' for 02:00 UTC)"
        )


def _requests_at(instance: dg.DagsterInstance, when: datetime) -> list[dg.RunRequest]:
    repository = build_definitions().get_repository_def()
    context = dg.build_schedule_context(instance=instance, repository_def=repository, scheduled_execution_time=when)
    return nightly_keywords.evaluate_tick(context).run_requests


@pytest.mark.parametrize(("every", "full_walks"), [("7", 3), ("", 3), ("1", 21), ("3", 7), ("0", 0)])
def test_each_keyword_is_walked_in_full_on_its_own_nights(monkeypatch, every, full_walks):
    """Incremental nights never see older photos change: every FLICKR_FULL_REFRESH_DAYS nights (default 7) each
    keyword's run is a full refresh, its own nights spread over the week."""
    monkeypatch.setenv("FLICKR_FULL_REFRESH_DAYS", every)
    keywords = keyword_partitions.get_partition_keys()
    job = build_definitions().resolve_job_def("keyword_job")
    full: dict[str, list[int]] = {keyword: [] for keyword in keywords}
    with dg.instance_for_test() as instance:
        for day in range(1, 22):  # three weeks
            for request in _requests_at(instance, datetime(2026, 12, day, 2, 0, tzinfo=UTC)):
                walked = request.tags.get(FULL_REFRESH_TAG) == "true"
                assert request.run_config == (FULL_REFRESH_CONFIG if walked else {})
                assert dg.validate_run_config(job, request.run_config)  # the job takes it as it is
                if walked:
                    full[request.partition_key].append(day)
    assert all(len(days) == full_walks for days in full.values()), full
    if full_walks == 3:  # weekly: the sample's three keywords do not all wait for the same night
        assert len({days[0] for days in full.values()}) > 1, full


@pytest.mark.parametrize("every", ["weekly", "-1", "400"])
def test_full_refresh_days_setting_is_refused_naming_it(every):
    code = "import flickr_assets.definitions"
    env = {**os.environ, "FLICKR_FULL_REFRESH_DAYS": every}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(f"ValueError: FLICKR_FULL_REFRESH_DAYS={every!r} must be a number of nights from 0 (never) to 366")
    )
