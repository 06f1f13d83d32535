"""The pipeline as a separate process, for tests that kill it, starve it or read its logs.

``python -m flickr_assets_tests.resilience.runner [--keyword K ...] [--no-catalog] [--rounds N]`` builds the
definitions from the environment (``FLICKR_*``, ``DAGSTER_HOME``) and runs ``keyword_job`` for each keyword
(every partition when none is given), then ``catalog_job``, with ``execute_in_process`` on the instance in
``$DAGSTER_HOME`` (so there is an event log), after recovering runs killed earlier (``recover_dead_runs``).
A keyword whose run fails, or whose manifest still holds ``failed`` rows, is run again, up to ``--rounds``
times: re-running is how the pipeline promises to finish.
The last line on stdout is a JSON summary; the exit code is 0 only if every run finally succeeded.
"""

import argparse
import functools
import json
import logging
import sys
import time

import dagster as dg
import pyarrow.compute as pc
import pyarrow.parquet as pq

QUIET = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def _failed_rows(keyword: str) -> int:
    from flickr_assets.defs.resources import resources_from_env

    layout = resources_from_env()["storage"].layout  # type: ignore[attr-defined]
    path = layout.manifest_file(keyword)
    if not path.exists():
        return -1
    return int(pc.sum(pc.equal(pq.read_table(path, columns=["status"])["status"], "failed")).as_py() or 0)


def _failure(result: dg.ExecuteInProcessResult) -> str | None:
    for event in result.all_events:
        if event.event_type_value in ("STEP_FAILURE", "RUN_FAILURE") and event.step_failure_data is not None:
            data = event.step_failure_data
            if data.user_failure_data is not None and data.user_failure_data.description:
                return data.user_failure_data.description
            if data.error is not None:
                return data.error.message.strip().splitlines()[-1]
    return None if result.success else "run failed"


def main(argv: list[str] | None = None) -> int:
    """Run the jobs; print one line per run and a JSON summary; return the exit code."""
    parser = argparse.ArgumentParser(prog="python -m flickr_assets_tests.resilience.runner")
    parser.add_argument("--keyword", action="append", default=[], help="a keyword partition (repeatable)")
    parser.add_argument("--no-catalog", action="store_true", help="do not run catalog_job")
    parser.add_argument("--rounds", type=int, default=1, help="runs per keyword until it has no failed rows")
    parser.add_argument("--records-only", action="store_true", help="materialise photo_records only")
    parser.add_argument("--debug", action="store_true", help="every logger at DEBUG (Dagster's console too)")
    parser.add_argument(
        "--budget-window",
        type=float,
        help="seconds the API budget's FLICKR_API_CALLS_PER_HOUR applies to (tests; the resource has no setting)",
    )
    args = parser.parse_args(argv)
    if args.debug:
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if args.budget_window:
        import flickr_assets.defs.resources as resources
        from flickr_assets.flickr.ratelimit import ApiBudget

        resources.ApiBudget = functools.partial(ApiBudget, window_seconds=args.budget_window)  # type: ignore[misc]
    run_config = {} if args.debug else QUIET
    selection = [dg.AssetKey("photo_records")] if args.records_only else None

    from flickr_assets.definitions import build_definitions
    from flickr_assets.defs.partitions import keyword_partitions
    from flickr_assets.defs.recovery import recover_dead_runs

    defs = build_definitions()
    keywords = args.keyword or keyword_partitions.get_partition_keys()
    summary: dict[str, object] = {"runs": [], "ok": True}
    with dg.DagsterInstance.get() as instance:
        keyword_job = defs.resolve_job_def("keyword_job")
        for keyword in keywords:
            for round_number in range(1, args.rounds + 1):
                recover_dead_runs(instance)
                started = time.monotonic()
                result = keyword_job.execute_in_process(
                    instance=instance,
                    partition_key=keyword,
                    run_config=run_config,
                    raise_on_error=False,
                    asset_selection=selection,
                )
                failed = _failed_rows(keyword) if result.success and not args.records_only else None
                run = {
                    "keyword": keyword,
                    "round": round_number,
                    "success": result.success,
                    "failed_rows": failed,
                    "error": _failure(result),
                    "retries": sum(e.event_type_value == "STEP_UP_FOR_RETRY" for e in result.all_events),
                    "seconds": round(time.monotonic() - started, 1),
                }
                print(f"RUN {json.dumps(run)}", flush=True)
                summary["runs"].append(run)  # type: ignore[union-attr]
                if result.success and not failed:
                    break
            else:
                summary["ok"] = False
        if not args.no_catalog:
            recover_dead_runs(instance)
            result = defs.resolve_job_def("catalog_job").execute_in_process(
                instance=instance, run_config=run_config, raise_on_error=False
            )
            run = {"job": "catalog_job", "success": result.success, "error": _failure(result)}
            print(f"RUN {json.dumps(run)}", flush=True)
            summary["runs"].append(run)  # type: ignore[union-attr]
            summary["ok"] = summary["ok"] and result.success
    print(f"SUMMARY {json.dumps(summary)}", flush=True)
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
