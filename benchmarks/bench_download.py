"""Download throughput against its limit, from one run on the same images.

    flock /tmp/flickr-bench.lock .venv/bin/python benchmarks/bench_download.py            # 1,000 images
    flock /tmp/flickr-bench.lock .venv/bin/python benchmarks/bench_download.py --images 200
    flock /tmp/flickr-bench.lock .venv/bin/python benchmarks/bench_download.py --images 100000 \\
        --discard-stored                       # memory run: ~14 min, ~1 GB of disk at any time

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
   empty data folder, default options;
5. print images/s of both, their ratio (target >= 90%), CPU per image (this script's own sampling thread
   left out), the simulator's CPU (it shares the two cores, which is why wall figures swing), and the
   peak memory of the download's process tree (main process, forkserver, workers; RSS summed, which counts
   pages shared between them once per process, and PSS, which splits them), at 10% and at the end.

Both rates count every record (records decided without a request, such as known-too-small ones, cost
nothing in the limit either); the limit is measured on the unique records. On a machine shared with
other work, the per-CPU-second figures are the steadier ones.
"""

from __future__ import annotations

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
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# Only the standard library at module level: every download worker imports the parent's main script (as
# __mp_main__; Python 3.11's forkserver cannot preload it), and a pipeline run (``python -m dagster ...``)
# pays no such import, so neither should the benchmark's workers.
if TYPE_CHECKING:
    import pyarrow as pa

    from flickr_assets.download import DownloadOptions, DownloadProgress

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
    """Samples this process tree every 50 ms (the simulator excluded): peak summed RSS (and PSS every 0.5 s), the CPU
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

    def _sample(self, with_pss: bool = True) -> None:
        rss = pss = 0
        for pid in tree_pids(os.getpid(), self._exclude):
            rss += _memory(pid, pss=False)
            pss += _memory(pid, pss=True) if with_pss else 0
            cpu = process_cpu(pid)
            self._start.setdefault(pid, cpu if pid == os.getpid() else 0.0)
            self._last[pid] = max(cpu, self._last.get(pid, 0.0))
        self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)

    def _run(self) -> None:
        began, count = time.thread_time(), 0
        while not self._stop.wait(0.05):
            count += 1
            self._sample(with_pss=count % 10 == 0)  # PSS walks page tables: every 0.5 s only
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
    args = parser.parse_args()
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

    from flickr_assets.download import download_keyword
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

    processes = options.process_count
    wall0 = time.monotonic()
    with TreeMonitor(exclude={sim_pid}) as limit, ProcessPoolExecutor(processes) as pool:
        outcomes = Counter(pool.map(_process_file, *zip(*jobs, strict=True), chunksize=4))
    limit_wall, limit_cpu = time.monotonic() - wall0, limit.cpu
    limit_rate = len(rows) / limit_wall

    saver = DiskSaver(layout.images_dir(KEYWORD)) if args.discard_stored else None
    early: dict[str, int] = {}

    def on_progress(progress: DownloadProgress) -> None:
        if saver is not None:
            saver(progress)
        if not early and progress.done >= progress.total // 10:
            early.update(rss=memory.peak_rss, pss=memory.peak_pss, done=progress.done)
            print(f"  {progress}", flush=True)

    sim_cpu0 = process_cpu(sim_pid)
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    wall0 = time.monotonic()
    with TreeMonitor(exclude={sim_pid}) as memory:
        result = download_keyword(layout, KEYWORD, records, options, on_progress)
    download_wall = time.monotonic() - wall0
    # Deleted only now: ext4 skips a recently deleted inode when it allocates one, after a scan of the inode
    # table, so freeing the bodies just before the download would slow every file the download creates.
    shutil.rmtree(bodies)
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    sim_cpu = process_cpu(sim_pid) - sim_cpu0
    main_user, main_sys = usage1.ru_utime - usage0.ru_utime, usage1.ru_stime - usage0.ru_stime
    download_cpu, count = memory.cpu, records.num_rows
    download_rate = count / download_wall
    cores = os.cpu_count() or 1

    print(f"\nkeyword {KEYWORD!r}: {count} records ({len(rows)} unique, {len(jobs)} images), {processes} workers")
    print(f"limit outcomes:    {dict(outcomes)}")
    print(f"download outcomes: {result.run_counts}  ({result.requests} requests, {result.bytes_fetched / 1e6:.0f} MB)")
    if saver is not None:
        print(f"                   ({saver.deleted} stored files deleted during the run to save disk)")
    print(f"LIMIT    {limit_rate:8.1f} images/s  {limit_wall:7.1f} s  {1000 * limit_cpu / len(rows):6.2f} CPU-ms/image")
    print(
        f"DOWNLOAD {download_rate:8.1f} images/s  {download_wall:7.1f} s  "
        f"{1000 * download_cpu / count:6.2f} CPU-ms/image (main process {1000 * memory.main_cpu / count:.2f}; "
        "its user+system incl. the sampler: "
        f"{1000 * main_user / count:.2f} + {1000 * main_sys / count:.2f})"
    )
    print(
        f"SIMULATOR {sim_cpu:7.1f} CPU-s during the download = {100 * sim_cpu / (cores * download_wall):.0f}% of the "
        f"machine's {cores} cores ({1000 * sim_cpu / count:.2f} CPU-ms/image); the limit needs no simulator"
    )
    print(f"RATIO    {100 * download_rate / limit_rate:8.1f} % of the limit (wall clock; target >= 90%)")
    print(f"         {100 * limit_cpu / len(rows) / (download_cpu / count):8.1f} % by CPU per image (limit / download)")
    if early:
        print(
            f"PEAK MEM {early['rss'] / 2**20:8.0f} MiB RSS / {early['pss'] / 2**20:.0f} MiB PSS after {early['done']} "
            f"images;  {memory.peak_rss / 2**20:.0f} MiB RSS / {memory.peak_pss / 2**20:.0f} MiB PSS at the end "
            f"(download process tree)"
        )
    else:
        print(f"PEAK MEM {memory.peak_rss / 2**20:8.0f} MiB RSS / {memory.peak_pss / 2**20:.0f} MiB PSS (process tree)")


if __name__ == "__main__":
    main()
