"""Download throughput against its limit, from one run on the same images.

    flock /tmp/flickr-bench.lock .venv/bin/python benchmarks/bench_download.py            # 1,000 images
    flock /tmp/flickr-bench.lock .venv/bin/python benchmarks/bench_download.py --images 200
    flock /tmp/flickr-bench.lock .venv/bin/python benchmarks/bench_download.py --images 100000 \\
        --discard-stored                       # memory run (one round): ~14 min, ~1 GB of disk at any time

Steps:

1. start the simulator in its own process (like a remote Flickr; its CPU still shares the machine),
   harvest "eiffel tower" and keep its first ``--unique`` records (default: ``--images``, at most 1,000);
   with ``--images`` above that, the records are repeated under new photo IDs (same image URLs), so a
   100k-record partition needs neither 100k rendered images nor 30 GB of simulator cache;
2. warm up: fetch every unique record's image once, so the simulator's image generation is not measured,
   and keep the bytes on disk for step 3;
3. LIMIT: the same decode -> crop -> resize -> encode work (``process_image`` on those exact bytes, read
   from disk by each worker) in a tight loop on all cores, no network;
4. DOWNLOAD: ``download_keyword`` (the path the ``photo_images`` asset calls) on all the records into an
   empty data folder, default options, its worker processes started from nothing as in every run;
5. repeat 3 and 4 (``--rounds``, default 3): this machine's speed drifts by 10-20% within a minute, so a
   single limit run set against a single download run moves the ratio by as much; each round's ratio is
   of two runs seconds apart, and the median of the rounds is the figure;
6. print, per round and as medians, images/s of both, their ratio (target >= 90%), CPU per image (this
   script's own sampling thread left out), the simulator's CPU (it shares the two cores, which is why wall
   figures swing), and the peak memory of the download's process tree (main process, forkserver, workers;
   RSS summed, which counts pages shared between them once per process, and PSS, which splits them), at
   10% and at the end.

Both rates count every record (records decided without a request, such as known-too-small ones, cost
nothing in the limit either); the limit is measured on the unique records. On a machine shared with
other work, the per-CPU-second figures are the steadier ones.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# Only the standard library at module level: every download worker imports the parent's main script (as
# __mp_main__; Python 3.11's forkserver cannot preload it), and a pipeline run (``python -m dagster ...``)
# pays no such import, so neither should the benchmark's workers.
if TYPE_CHECKING:
    import pyarrow as pa

    from flickr_assets.download import DownloadOptions, DownloadProgress, DownloadResult

REPO = Path(__file__).resolve().parent.parent
KEYWORD = "eiffel tower"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def start_simulator(cache_dir: Path) -> tuple[subprocess.Popen, str]:
    """The simulator in a child process; returns it and its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "flickr_assets.simulator", "--port", "0", "--cache-dir", str(cache_dir)],
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        stdout=subprocess.PIPE,
        text=True,
    )
    line = process.stdout.readline()
    match = re.search(r"(http://127\.0\.0\.1:\d+)", line)
    if not match:
        process.kill()
        raise SystemExit(f"simulator did not start: {line!r}")
    return process, match.group(1)


def tree_pids(root: int, exclude: set[int]) -> list[int]:
    """``root`` and all its descendants, except ``exclude`` and their subtrees."""
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        if pid in exclude:
            continue
        found.append(pid)
        try:
            for task in Path(f"/proc/{pid}/task").iterdir():
                stack += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return found


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) used by ``pid`` so far; 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    except (OSError, IndexError, ValueError):
        return 0.0


def _memory(pid: int, pss: bool) -> int:
    """RSS (or PSS, from smaps_rollup) of ``pid`` in bytes; 0 if it is gone."""
    try:
        if pss:
            text = Path(f"/proc/{pid}/smaps_rollup").read_text()
            return int(text.split("\nPss:")[1].split()[0]) * 1024
        return int(Path(f"/proc/{pid}/status").read_text().split("VmRSS:")[1].split()[0]) * 1024
    except (OSError, IndexError, ValueError):
        return 0


class TreeMonitor:
    """Samples this process tree every 0.1 s (the simulator excluded): peak summed RSS (and PSS every second), the CPU
    seconds the tree used while monitored (workers that came and went included), minus the CPU of this
    monitor's own thread, which is measurement, not download."""

    def __init__(self, exclude: set[int]) -> None:
        self.peak_rss = self.peak_pss = 0
        self._exclude = exclude
        self._start: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._own_cpu = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._sampled = False

    def _sample(self, with_pss: bool = True) -> None:
        rss = pss = 0
        for pid in tree_pids(os.getpid(), self._exclude):
            rss += _memory(pid, pss=False)
            pss += _memory(pid, pss=True) if with_pss else 0
            cpu = process_cpu(pid)
            # A process alive at the first sample counts from there (its earlier CPU is not this run's); one
            # born later counts whole.
            self._start.setdefault(pid, 0.0 if self._sampled else cpu)
            self._last[pid] = max(cpu, self._last.get(pid, 0.0))
        self._sampled = True
        self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)

    def _run(self) -> None:
        began, count = time.thread_time(), 0
        while not self._stop.wait(0.1):
            count += 1
            self._sample(with_pss=count % 10 == 0)  # PSS walks page tables: every second only
        self._own_cpu = time.thread_time() - began

    @property
    def cpu(self) -> float:
        return sum(self._last[pid] - self._start[pid] for pid in self._last) - self._own_cpu

    @property
    def main_cpu(self) -> float:
        return self._last[os.getpid()] - self._start[os.getpid()] - self._own_cpu

    def __enter__(self) -> TreeMonitor:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


class DiskSaver:
    """For the memory run: deletes shard folders the download has filled (it never reads them again; the
    manifest keeps their rows), so 100k stored images never sit on disk at once."""

    def __init__(self, images_dir: Path) -> None:
        self.images_dir = images_dir
        self.deleted = 0

    def __call__(self, progress: DownloadProgress) -> None:
        folders = sorted(p for p in self.images_dir.glob("*") if p.is_dir() and p.name.isdigit())
        for folder in folders[:-2]:  # the newest two may still be filling
            self.deleted += sum(1 for _ in folder.iterdir())
            shutil.rmtree(folder, ignore_errors=True)


def _process_file(path: str, metadata: dict) -> str:
    from flickr_assets.imaging import ImagingOptions, InvalidImage, process_image

    try:
        return process_image(Path(path).read_bytes(), metadata, ImagingOptions()).status
    except InvalidImage:
        return "invalid"


def repeated(records: pa.Table, count: int) -> pa.Table:
    """``count`` records: ``records`` repeated under new photo IDs (same image URLs, distinct file names)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    copies, offset = [], 0
    top = pc.max(records["photo_id"]).as_py() + 1
    while offset < count:
        part = records.slice(0, count - offset)
        ids = pc.add(part["photo_id"], pa.scalar(top * (offset // records.num_rows), pa.int64()))
        copies.append(part.set_column(part.schema.get_field_index("photo_id"), "photo_id", ids))
        offset += part.num_rows
    return pa.concat_tables(copies)


def main() -> None:
    from flickr_assets.download import DownloadOptions

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=1000, help="number of records to download")
    parser.add_argument("--unique", type=int, help="distinct simulator images (default: --images, at most 1000)")
    parser.add_argument("--cache-dir", type=Path, default=REPO / ".simulator-cache", help="simulator image cache")
    parser.add_argument("--work-dir", type=Path, help="where to put the data folder (default: a temp folder)")
    parser.add_argument("--fetchers", type=int, default=DownloadOptions.fetchers, help="download threads")
    parser.add_argument("--discard-stored", action="store_true", help="delete filled shard folders during the run")
    parser.add_argument("--rounds", type=int, help="limit + download rounds (default: 3, or 1 above 3,000 images)")
    args = parser.parse_args()
    args.rounds = args.rounds or (3 if args.images <= 3000 else 1)
    unique = min(args.unique or min(args.images, 1000), args.images)
    work = Path(tempfile.mkdtemp(prefix="bench-download-", dir=args.work_dir))
    sim, base_url = start_simulator(args.cache_dir)
    try:
        run(args, unique, work, base_url, sim.pid, DownloadOptions(fetchers=args.fetchers))
    finally:
        sim.terminate()
        sim.wait(10)
        shutil.rmtree(work, ignore_errors=True)


def run(
    args: argparse.Namespace, unique: int, work: Path, base_url: str, sim_pid: int, options: DownloadOptions
) -> None:
    import pyarrow.parquet as pq
    import requests

    from flickr_assets.download.plan import choose_source, known_too_small
    from flickr_assets.flickr.client import FlickrClient
    from flickr_assets.flickr.harvest_keyword import harvest_keyword
    from flickr_assets.flickr.query import SearchQuery
    from flickr_assets.simulator import DEMO_API_KEY, DEMO_API_SECRET
    from flickr_assets.storage.layout import DataLayout

    layout = DataLayout.at(work / "data")
    client = FlickrClient(DEMO_API_KEY, DEMO_API_SECRET, rest_url=base_url + "/services/rest/")
    print(f"harvesting {KEYWORD!r} ...", flush=True)
    harvest_keyword(layout, client, SearchQuery(keyword=KEYWORD, has_geo=None))
    base = pq.read_table(layout.records_file(KEYWORD)).slice(0, unique)
    records = repeated(base, args.images)
    rows = base.to_pylist()
    print(f"{records.num_rows} records ({len(rows)} unique); warming the simulator cache ...", flush=True)

    bodies = work / "bodies"
    bodies.mkdir()
    jobs: list[tuple[str, dict]] = []

    def warm(row: dict) -> None:
        source = choose_source(row)
        if source is None or known_too_small(source, options):
            return
        response = requests.get(source.url, timeout=60, allow_redirects=False)
        if response.status_code == 200:
            path = bodies / f"{row['photo_id']}"
            path.write_bytes(response.content)
            jobs.append((str(path), row))

    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(warm, rows))
    size = sum(Path(p).stat().st_size for p, _ in jobs)
    print(f"warm-up: {len(jobs)} images, {size / 1e6:.0f} MB, in {time.monotonic() - started:.0f}s", flush=True)

    rounds = [_round(n, args, work, records, rows, jobs, sim_pid, options) for n in range(args.rounds)]
    shutil.rmtree(bodies)

    last = rounds[-1]
    counts = f"{records.num_rows} records ({len(rows)} unique, {len(jobs)} images)"
    print(f"\nkeyword {KEYWORD!r}: {counts}, {options.process_count} workers")
    print(f"limit outcomes:    {dict(last.limit_outcomes)}")
    print(
        f"download outcomes: {last.result.run_counts}  ({last.result.requests} requests, "
        f"{last.result.bytes_fetched / 1e6:.0f} MB)"
    )
    if last.deleted:
        print(f"                   ({last.deleted} stored files deleted during the run to save disk)")
    for n, r in enumerate(rounds, 1):
        print(
            f"round {n}: LIMIT {r.limit_rate:7.1f} images/s {r.limit_cpu_ms:6.2f} CPU-ms/image | DOWNLOAD "
            f"{r.download_rate:7.1f} images/s {r.download_cpu_ms:6.2f} CPU-ms/image (main process "
            f"{r.main_cpu_ms:.2f}), simulator {r.sim_cpu_ms:.2f} CPU-ms/image | {r.wall_ratio:5.1f} % wall, "
            f"{r.cpu_ratio:5.1f} % per CPU"
        )
    wall = statistics.median(r.wall_ratio for r in rounds)
    cpu = statistics.median(r.cpu_ratio for r in rounds)
    print(f"LIMIT    {statistics.median(r.limit_rate for r in rounds):8.1f} images/s (median of {len(rounds)} rounds)")
    print(f"DOWNLOAD {statistics.median(r.download_rate for r in rounds):8.1f} images/s (median)")
    print(f"RATIO    {wall:8.1f} % of the limit (wall clock, median of the rounds' ratios; target >= 90%)")
    print(f"         {cpu:8.1f} % by CPU per image (limit / download, median)")
    peak_rss, peak_pss = max(r.peak_rss for r in rounds), max(r.peak_pss for r in rounds)
    if last.early:
        print(
            f"PEAK MEM {last.early['rss'] / 2**20:8.0f} MiB RSS / {last.early['pss'] / 2**20:.0f} MiB PSS after "
            f"{last.early['done']} images (last round);  {peak_rss / 2**20:.0f} MiB RSS / {peak_pss / 2**20:.0f} MiB "
            "PSS at the end, the highest of the rounds (download process tree)"
        )
    else:
        print(f"PEAK MEM {peak_rss / 2**20:8.0f} MiB RSS / {peak_pss / 2**20:.0f} MiB PSS (process tree)")


@dataclass
class Round:
    """One limit run and the download run right after it."""

    limit_rate: float
    limit_cpu_ms: float
    limit_outcomes: Counter
    download_rate: float
    download_cpu_ms: float
    main_cpu_ms: float
    sim_cpu_ms: float
    result: DownloadResult
    peak_rss: int
    peak_pss: int
    early: dict[str, int]
    deleted: int

    @property
    def wall_ratio(self) -> float:
        return 100 * self.download_rate / self.limit_rate

    @property
    def cpu_ratio(self) -> float:
        return 100 * self.limit_cpu_ms / self.download_cpu_ms


def _stop_forkserver() -> None:
    """End the download's forkserver, so that every round starts one, like every run of ``photo_images`` (each
    Dagster run is a new process). Without this, rounds after the first would skip its start (~0.3 s)."""
    import multiprocessing.forkserver

    stop = getattr(multiprocessing.forkserver._forkserver, "_stop", None)  # private, and stable since 3.8
    if stop is not None:
        stop()


def _round(
    number: int,
    args: argparse.Namespace,
    work: Path,
    records: pa.Table,
    rows: list[dict],
    jobs: list[tuple[str, dict]],
    sim_pid: int,
    options: DownloadOptions,
) -> Round:
    """The limit on the warm-up bodies, then a download of every record into a fresh data folder."""
    from flickr_assets.download import download_keyword
    from flickr_assets.storage.layout import DataLayout

    wall0 = time.monotonic()
    with TreeMonitor(exclude={sim_pid}) as limit, ProcessPoolExecutor(options.process_count) as pool:
        outcomes = Counter(pool.map(_process_file, *zip(*jobs, strict=True), chunksize=4))
    limit_wall, limit_cpu = time.monotonic() - wall0, limit.cpu

    # Each round downloads into its own folder, and none is deleted before the end: ext4 skips an inode
    # freed in the last seconds when it allocates one, after reading it from the inode table, so files
    # deleted just before would slow every file the download creates.
    layout = DataLayout.at(work / f"round-{number + 1}")
    saver = DiskSaver(layout.images_dir(KEYWORD)) if args.discard_stored else None
    early: dict[str, int] = {}

    def on_progress(progress: DownloadProgress) -> None:
        if saver is not None:
            saver(progress)
        if not early and progress.done >= progress.total // 10:
            early.update(rss=memory.peak_rss, pss=memory.peak_pss, done=progress.done)
            print(f"  round {number + 1}: {progress}", flush=True)

    sim_cpu0 = process_cpu(sim_pid)
    wall0 = time.monotonic()
    with TreeMonitor(exclude={sim_pid}) as memory:
        result = download_keyword(layout, KEYWORD, records, options, on_progress)
    download_wall = time.monotonic() - wall0
    _stop_forkserver()
    count = records.num_rows
    return Round(
        limit_rate=len(rows) / limit_wall,
        limit_cpu_ms=1000 * limit_cpu / len(rows),
        limit_outcomes=outcomes,
        download_rate=count / download_wall,
        download_cpu_ms=1000 * memory.cpu / count,
        main_cpu_ms=1000 * memory.main_cpu / count,
        sim_cpu_ms=1000 * (process_cpu(sim_pid) - sim_cpu0) / count,
        result=result,
        peak_rss=memory.peak_rss,
        peak_pss=memory.peak_pss,
        early=early,
        deleted=saver.deleted if saver is not None else 0,
    )


if __name__ == "__main__":
    main()
