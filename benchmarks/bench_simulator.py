"""How fast the simulator serves cached images and search calls, against what the pipeline consumes.

Starts the simulator in-process, warms the image cache, then measures from keep-alive clients:
images/s and search calls/s (per_page 250 with the pipeline's extras), and the simulator's CPU per request
(process CPU time over the run minus the client's own share is not separable in-process, so CPU is measured
as the whole process's CPU time per request: an upper bound). Prints the ratio against the pipeline's needs
(~35 images/s, ~5 search calls/s on this machine); the target is >= 3x.

    .venv/bin/python benchmarks/bench_simulator.py [--images 600] [--searches 200] [--clients 4]
"""

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

import requests

from flickr_assets.simulator import DEMO_API_KEY, Simulator

EXTRAS = (
    "description,license,date_upload,date_taken,owner_name,original_format,geo,tags,machine_tags,o_dims,views,"
    "media,url_l,url_o"
)
PIPELINE_IMAGES_PER_S = 35.0
PIPELINE_SEARCHES_PER_S = 5.0


def _search(session: requests.Session, sim: Simulator, **args: object) -> dict:
    params = {"method": "flickr.photos.search", "api_key": DEMO_API_KEY, "format": "json", "nojsoncallback": 1}
    response = session.get(sim.rest_url, params={**params, **args}, timeout=60)
    response.raise_for_status()
    return response.json()["photos"]


def _run(clients: int, jobs: list, work) -> float:
    """Run work(session, job) for every job on `clients` keep-alive threads; return wall seconds."""
    lock = threading.Lock()
    queue = list(jobs)

    def worker() -> None:
        with requests.Session() as session:
            while True:
                with lock:
                    if not queue:
                        return
                    job = queue.pop()
                work(session, job)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=600)
    parser.add_argument("--searches", type=int, default=200)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args()
    cache = Path(args.cache_dir or tempfile.mkdtemp(prefix="bench-sim-"))
    started = time.perf_counter()
    with Simulator(seed=7, cache_dir=cache) as sim:
        print(f"simulator up in {time.perf_counter() - started:.2f} s (universe of {len(sim.universe.cols):,} photos)")
        with requests.Session() as session:
            urls: list[str] = []
            page = 1
            while len(urls) < args.images:
                photos = _search(session, sim, text="mount fuji", per_page=500, page=page, extras="url_l,url_o")
                urls += [p["url_l"] for p in photos["photo"] if "url_l" in p]
                page += 1
        urls = urls[: args.images]
        started = time.perf_counter()
        _run(args.clients, urls, lambda s, u: s.get(u, timeout=60).content)
        warm = time.perf_counter() - started
        print(
            f"cache warm-up: {len(urls)} Large images generated in {warm:.1f} s ({warm / len(urls) * 1000:.1f} ms each)"
        )

        sizes: list[int] = []

        def fetch(session: requests.Session, url: str) -> None:
            sizes.append(len(session.get(url, timeout=60).content))  # list.append is atomic across threads

        cpu0 = time.process_time()
        wall = _run(args.clients, urls * 2, fetch)
        cpu = time.process_time() - cpu0
        n = 2 * len(urls)
        images_per_s = n / wall
        print(
            f"cached images: {images_per_s:,.0f}/s ({sum(sizes) / wall / 2**20:,.0f} MiB/s), "
            f"{cpu / n * 1000:.2f} ms CPU per request (server+client)"
        )

        windows = [(1_200_000_000 + i * 600_000, 1_200_000_000 + (i + 1) * 600_000) for i in range(args.searches)]

        def search(session: requests.Session, window: tuple[int, int]) -> None:
            _search(
                session,
                sim,
                text="sunset",
                min_upload_date=window[0],
                max_upload_date=window[1],
                per_page=250,
                extras=EXTRAS,
                sort="date-posted-asc",
            )

        cpu0 = time.process_time()
        wall = _run(args.clients, windows, search)
        cpu = time.process_time() - cpu0
        searches_per_s = len(windows) / wall
        print(
            f"search calls (per_page 250, pipeline extras): {searches_per_s:,.1f}/s, "
            f"{cpu / len(windows) * 1000:.1f} ms CPU each"
        )
        print(
            f"ratio vs pipeline needs: images {images_per_s / PIPELINE_IMAGES_PER_S:,.1f}x "
            f"(needs {PIPELINE_IMAGES_PER_S:.0f}/s), searches {searches_per_s / PIPELINE_SEARCHES_PER_S:,.1f}x "
            f"(needs {PIPELINE_SEARCHES_PER_S:.0f}/s); target >= 3x"
        )
        print(f"cpu cores: {os.cpu_count()}")


if __name__ == "__main__":
    main()
