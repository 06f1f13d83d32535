"""Download throughput against its limit, from one run on the same images.

    .venv/bin/python benchmarks/bench_download.py                 # ~1,000 images (keyword "eiffel tower")
    .venv/bin/python benchmarks/bench_download.py --images 200    # quicker
    .venv/bin/python benchmarks/bench_download.py --images 100000 --cache-dir /big/disk/sim-cache \\
        --work-dir /big/disk/bench                                # 100k ("new york"): hours, ~60 GB of disk

Steps:

1. start the simulator in its own process (like a remote Flickr; its CPU still shares the machine) and
   harvest the smallest keyword with at least ``--images`` photos; keep the first ``--images`` records;
2. warm up: fetch every record's image once, so the simulator's image generation is not measured, and
   keep the bytes on disk for step 3;
3. LIMIT: the same decode -> crop -> resize -> encode work (``process_image`` on those exact bytes, read
   from disk by each worker) in a tight loop on all cores, no network;
4. DOWNLOAD: ``download_keyword`` on the same records into an empty data folder, default options;
5. print images/s of both, their ratio (target >= 90%), CPU per image, and the peak memory (RSS summed
   over the download's process tree: the main process and its image workers, sampled every 50 ms).

Both rates count every record (records decided without a request, such as known-too-small ones, cost
nothing in the limit either). On a machine shared with other work, the per-CPU-second figures are the
steadier ones.
"""

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import pyarrow.parquet as pq
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flickr_assets.download import DownloadOptions, download_keyword
from flickr_assets.download.plan import choose_source, known_too_small
from flickr_assets.flickr.client import FlickrClient
from flickr_assets.flickr.harvest_keyword import harvest_keyword
from flickr_assets.flickr.query import SearchQuery
from flickr_assets.imaging import ImagingOptions, InvalidImage, process_image
from flickr_assets.simulator import DEFAULT_KEYWORDS, DEMO_API_KEY, DEMO_API_SECRET
from flickr_assets.storage.layout import DataLayout

REPO = Path(__file__).resolve().parent.parent


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


def _rss_and_cpu(pid: int) -> tuple[int, float]:
    try:
        rss = int(Path(f"/proc/{pid}/status").read_text().split("VmRSS:")[1].split()[0]) * 1024
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return rss, (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    except (OSError, IndexError, ValueError):
        return 0, 0.0


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class TreeMonitor:
    """Samples this process tree every 50 ms (the simulator excluded): ``peak_rss`` is the highest summed
    RSS seen, ``cpu`` the CPU seconds the tree used while monitored (workers that came and went included)."""

    def __init__(self, exclude: set[int]) -> None:
        self.peak_rss = 0
        self._exclude = exclude
        self._start: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        total = 0
        for pid in tree_pids(os.getpid(), self._exclude):
            rss, cpu = _rss_and_cpu(pid)
            total += rss
            self._start.setdefault(pid, cpu if pid == os.getpid() else 0.0)
            self._last[pid] = max(cpu, self._last.get(pid, 0.0))
        self.peak_rss = max(self.peak_rss, total)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self._sample()

    @property
    def cpu(self) -> float:
        return sum(self._last[pid] - self._start[pid] for pid in self._last)

    def __enter__(self) -> "TreeMonitor":
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def _process_file(path: str, metadata: dict) -> str:
    try:
        return process_image(Path(path).read_bytes(), metadata, ImagingOptions()).status
    except InvalidImage:
        return "invalid"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=1000, help="number of records to download")
    parser.add_argument("--cache-dir", type=Path, default=REPO / ".simulator-cache", help="simulator image cache")
    parser.add_argument("--work-dir", type=Path, help="where to put the data folder (default: a temp folder)")
    parser.add_argument("--fetchers", type=int, default=DownloadOptions.fetchers, help="download threads")
    args = parser.parse_args()
    keyword = min((k for k, n in DEFAULT_KEYWORDS.items() if n >= args.images), key=DEFAULT_KEYWORDS.get)
    work = Path(tempfile.mkdtemp(prefix="bench-download-", dir=args.work_dir))
    sim, base_url = start_simulator(args.cache_dir)
    try:
        run(args.images, keyword, work, base_url, sim.pid, DownloadOptions(fetchers=args.fetchers))
    finally:
        sim.terminate()
        sim.wait(10)
        shutil.rmtree(work, ignore_errors=True)


def run(count: int, keyword: str, work: Path, base_url: str, sim_pid: int, options: DownloadOptions) -> None:
    layout = DataLayout.at(work / "data")
    client = FlickrClient(DEMO_API_KEY, DEMO_API_SECRET, rest_url=base_url + "/services/rest/")
    print(f"harvesting {keyword!r} ...", flush=True)
    harvest_keyword(layout, client, SearchQuery(keyword=keyword, has_geo=None))
    records = pq.read_table(layout.records_file(keyword)).slice(0, count)
    rows = records.to_pylist()
    print(f"{len(rows)} records; warming the simulator cache ...", flush=True)

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

    processes = options.process_count
    wall0 = time.monotonic()
    with TreeMonitor(exclude={sim_pid}) as limit, ProcessPoolExecutor(processes) as pool:
        outcomes = Counter(pool.map(_process_file, *zip(*jobs, strict=True), chunksize=4))
    limit_wall, limit_cpu = time.monotonic() - wall0, limit.cpu
    limit_rate = len(rows) / limit_wall

    shutil.rmtree(bodies)
    wall0 = time.monotonic()
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    with TreeMonitor(exclude={sim_pid}) as memory:
        result = download_keyword(layout, keyword, records, options)
    download_wall = time.monotonic() - wall0
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    main_user, main_sys = usage1.ru_utime - usage0.ru_utime, usage1.ru_stime - usage0.ru_stime
    main_cpu = memory._last[os.getpid()] - memory._start[os.getpid()]
    download_cpu = memory.cpu
    download_rate = len(rows) / download_wall

    print(f"\nkeyword {keyword!r}: {len(rows)} records, {len(jobs)} images fetched, {processes} image processes")
    print(f"limit outcomes:    {dict(outcomes)}")
    print(f"download outcomes: {result.run_counts}  ({result.requests} requests, {result.bytes_fetched / 1e6:.0f} MB)")
    print(
        f"LIMIT    {limit_rate:8.1f} images/s   {limit_wall:7.1f} s   {1000 * limit_cpu / len(rows):6.1f} CPU-ms/image"
    )
    print(
        f"DOWNLOAD {download_rate:8.1f} images/s   {download_wall:7.1f} s   "
        f"{1000 * download_cpu / len(rows):6.1f} CPU-ms/image (main process + workers; main alone "
        f"{1000 * main_cpu / len(rows):.1f}: user {1000 * main_user / len(rows):.1f} + "
        f"system {1000 * main_sys / len(rows):.1f})"
    )
    print(f"RATIO    {100 * download_rate / limit_rate:8.1f} % of the limit (wall clock; target >= 90%)")
    print(f"         {100 * limit_cpu / download_cpu:8.1f} % by CPU per image (limit CPU / download CPU)")
    print(f"PEAK RSS {memory.peak_rss / 2**20:8.0f} MiB (download process tree)")


if __name__ == "__main__":
    main()
