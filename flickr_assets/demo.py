"""The demo: the whole pipeline on the bundled Flickr simulator, offline.

``python -m flickr_assets.demo`` starts the simulator on 127.0.0.1, points the pipeline at it, materialises
``photo_records`` and ``photo_images`` for every keyword of the keywords file and then ``photo_catalog``,
through the Dagster instance in ``$DAGSTER_HOME`` (so the runs show in ``dagster dev`` afterwards), and
prints what it wrote and where. ``--ui`` instead starts ``dagster dev`` against the simulator.
"""

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from flickr_assets.simulator import DEMO_API_KEY, DEMO_API_SECRET, Simulator


def main(argv: list[str] | None = None) -> int:
    """Run the demo (or, with ``--ui``, the Dagster UI) against a simulator started here; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("FLICKR_DATA_DIR") or "data")
    parser.add_argument("--cache-dir", default=".simulator-cache", help="where the simulator caches its images")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--ui", action="store_true", help="start `dagster dev` on http://127.0.0.1:3000 instead")
    parser.add_argument("--port", type=int, default=3000, help="port of the UI with --ui")
    args = parser.parse_args(argv)

    home = Path(os.environ.setdefault("DAGSTER_HOME", str(Path("dagster_home").resolve())))
    home.mkdir(parents=True, exist_ok=True)
    with Simulator(seed=args.seed, cache_dir=Path(args.cache_dir)) as sim:
        os.environ.update(
            FLICKR_API_KEY=DEMO_API_KEY,
            FLICKR_API_SECRET=DEMO_API_SECRET,
            FLICKR_API_URL=sim.rest_url,
            FLICKR_DATA_DIR=str(Path(args.data_dir).resolve()),
        )
        print(f"Flickr simulator on {sim.base_url} (seed {args.seed}); Dagster instance in {home}")
        if args.ui:
            return _run_ui(args.port)
        return _run_pipeline()


def _run_pipeline() -> int:
    import dagster as dg

    from flickr_assets.definitions import defs  # imported now: the resources read the environment set above
    from flickr_assets.defs.partitions import keyword_partitions, keywords_file_path

    keywords = keyword_partitions.get_partition_keys()
    print(f"keywords file {keywords_file_path()}: {len(keywords)} keywords: {', '.join(keywords)}")
    started = time.monotonic()
    quiet = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}  # progress lines, not Dagster's debug events
    with dg.DagsterInstance.get() as instance:
        keyword_job = defs.resolve_job_def("keyword_job")
        for keyword in keywords:
            result = keyword_job.execute_in_process(
                instance=instance, partition_key=keyword, run_config=quiet, raise_on_error=False
            )
            print(f"  {keyword!r}: records + images {'succeeded' if result.success else 'FAILED'}")
            if not result.success:
                return 1
        result = defs.resolve_job_def("catalog_job").execute_in_process(
            instance=instance, run_config=quiet, raise_on_error=False
        )
        print(f"  catalog {'succeeded' if result.success else 'FAILED'}")
        if not result.success:
            return 1
    _print_summary(Path(os.environ["FLICKR_DATA_DIR"]), keywords, time.monotonic() - started)
    return 0


def _print_summary(data_dir: Path, keywords: list[str], elapsed: float) -> None:
    from flickr_assets.storage.layout import DataLayout

    layout = DataLayout.at(data_dir)
    print(f"\nDone in {elapsed:.0f} s. Wrote under {layout.root}:")
    for keyword in keywords:
        records = pq.read_metadata(layout.records_file(keyword)).num_rows
        statuses = pq.read_table(layout.manifest_file(keyword), columns=["status"])["status"]
        counts = {row["values"]: row["counts"] for row in pc.value_counts(statuses).to_pylist()}
        shown = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        print(f"  {keyword!r}: {records} records -> {counts.get('ok', 0)} images ({shown})")
        print(f"      {layout.relative(layout.records_file(keyword))}")
        print(f"      {layout.relative(layout.images_dir(keyword))}/")
        print(f"      {layout.relative(layout.manifest_file(keyword))}")
    catalog = pq.read_table(layout.catalog_file, columns=["photo_id", "num_keywords"])
    several = pc.sum(pc.greater(catalog["num_keywords"], 1)).as_py() or 0
    print(f"  catalog: {catalog.num_rows} unique photos, {several} found by several keywords")
    print(f"      {layout.relative(layout.catalog_file)}")
    print("\nSee them in the UI: make ui  (then open http://127.0.0.1:3000)")


def _run_ui(port: int) -> int:
    command = [sys.executable, "-m", "dagster", "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)]
    url = f"http://127.0.0.1:{port}"
    print(f"Dagster UI on {url} (Ctrl-C stops it and the simulator)")
    stopped_by: list[int] = []
    started: list[subprocess.Popen] = []

    def stop(signum: int, _frame: object) -> None:
        # Ctrl-C, kill, a process manager or a closed terminal: stop dagster dev the way Ctrl-C does (ending
        # this process alone would leave it running without its simulator); the wait below then returns.
        stopped_by.append(signum)
        for process in started:
            process.send_signal(signal.SIGINT)

    # Handled before dagster dev starts: exec resets handled signals to their default but keeps ignored ones,
    # and started as a background job this process ignores SIGINT, which dagster dev would then ignore too.
    for stop_signal in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop_signal, stop)
    # A process group of its own, so that one SIGINT reaches dagster dev, from here (a terminal's Ctrl-C
    # would send it a second one, which aborts its shutdown). keywords_file_watch reloads the definitions
    # through FLICKR_WEBSERVER_URL when the keywords file changes.
    process = subprocess.Popen(command, env={**os.environ, "FLICKR_WEBSERVER_URL": url}, process_group=0)
    started.append(process)
    if stopped_by:  # asked to stop while it was starting
        process.send_signal(signal.SIGINT)
    code = process.wait()
    return 128 + stopped_by[0] if stopped_by else code


if __name__ == "__main__":
    sys.exit(main())
