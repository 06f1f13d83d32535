"""Query-stage benchmark: our harvest against the seed's adaptive-window algorithm, on one simulator.

For keywords of ~10k, ~100k and ~1M photos (mount fuji, new york, sunset; has_geo off so they are that
size) it prints, side by side: photos, recall against the simulator's ground truth, API calls, calls per
1,000 unique photos, the ideal (one call per full page: ceil(n / 500)), our ratio to it, and the seed's
algorithm (flickr-api.md section 10: windows binary-searched to ~250 results with up to 6 probes, then
min(16, pages) pages of 250) run on the same simulator. Our harvest also runs with faults on, and each of
our runs happens in a child process whose peak RSS is reported.

The ideal assumes every page is full of new photos. Photos sharing one upload second come back in a
different order on every call, so no complete walk over upload-time windows can end a page inside such a
second without asking for that second again: the "bound" column is the fewest calls any such walk needs on
the simulator's data (its ground truth packs whole seconds into pages). The default universe is the stress
case (~88 % of photos uploaded in batches of 5-300 sharing one second); the same keywords are then harvested
on a universe with light ties (~65 % of photos alone in their second) to show the cost where ties are rarer.

    .venv/bin/python benchmarks/bench_query.py                     # all sizes (several minutes)
    .venv/bin/python benchmarks/bench_query.py --sizes 10k,100k    # quicker

The seed spends ~30-100 calls per 1,000 photos, so on big keywords it is cut off after ``--seed-calls`` calls
and its figures are for the photos uploaded in the time span it covered (reported as "partial").
"""

import argparse
import math
import multiprocessing
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flickr_assets.flickr.client import FlickrClient
from flickr_assets.flickr.harvest_keyword import harvest_keyword
from flickr_assets.flickr.query import DEFAULT_START, SearchQuery
from flickr_assets.flickr.records import EXTRAS
from flickr_assets.simulator import DEMO_API_KEY, DEMO_API_SECRET, Faults, Simulator
from flickr_assets.simulator.spec import UniverseSpec
from flickr_assets.storage.layout import DataLayout

SIZES = {"10k": "mount fuji", "100k": "new york", "1m": "sunset"}
# The brief's fault mix; Retry-After 0 keeps the run short (the client's own backoff still applies).
FAULTS = Faults(seed=5, rest_5xx=0.10, rest_429=0.05, api_error=0.05, slow=0.05, slow_seconds=0.2, retry_after=0)


def _ours(rest_url: str, keyword: str, data_dir: str, queue: multiprocessing.Queue) -> None:
    client = FlickrClient(DEMO_API_KEY, DEMO_API_SECRET, rest_url=rest_url, backoff_base=0.05, max_attempts=10)
    layout = DataLayout.at(data_dir)
    result = harvest_keyword(layout, client, SearchQuery(keyword=keyword, has_geo=None))
    ids = pq.read_table(layout.records_file(keyword), columns=["photo_id"]).column(0).to_numpy()
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put((result.calls, result.retries, int(result.end.timestamp()), ids.tolist(), peak_mib, result.elapsed))


def run_ours(sim: Simulator, keyword: str, faults: Faults | None) -> dict:
    sim.faults = faults or Faults()
    context = multiprocessing.get_context("spawn")  # a fresh process: its peak RSS is the harvest alone
    queue = context.Queue()
    with tempfile.TemporaryDirectory() as data_dir:
        child = context.Process(target=_ours, args=(sim.rest_url, keyword, data_dir, queue))
        child.start()
        calls, retries, end, ids, peak_mib, elapsed = queue.get()
        child.join()
    sim.faults = Faults()
    truth = sim.truth.search_ids(text=keyword, max_upload_date=end)
    found = set(ids)
    return {
        "photos": len(truth),
        "ideal": math.ceil(len(truth) / 500),
        "bound": sim.truth.fewest_window_calls(text=keyword, max_upload_date=end),
        "unique": len(found),
        "duplicates": len(ids) - len(found),
        "recall": len(found & truth) / len(truth),
        "calls": calls,
        "retries": retries,
        "peak_mib": peak_mib,
        "seconds": elapsed,
    }


def run_seed(sim: Simulator, keyword: str, max_calls: int) -> dict:
    """The seed's query stage (Berg/Hays ``get_imgs_geo_gps_search.py``), has_geo dropped as its FAQ says."""
    client = FlickrClient(DEMO_API_KEY, DEMO_API_SECRET, rest_url=sim.rest_url, backoff_base=0.05)
    target, per_page, timeskip = 250, 250, 7 * 86_400
    end = int(datetime.now(UTC).timestamp())
    mintime = int(DEFAULT_START.timestamp())
    found: set[int] = set()
    calls = 0

    def search(low: int, high: int, page: int = 1, sort: str | None = None) -> tuple[int, int, list[dict]]:
        nonlocal calls
        calls += 1
        args = {"text": keyword, "min_upload_date": str(low), "max_upload_date": str(high)}
        args |= {"per_page": str(per_page), "page": str(page), "extras": EXTRAS, "media": "photos"}
        if sort:
            args["sort"] = sort
        result = client.search(**args)
        return result.total, result.pages, result.photos

    while mintime < end and calls < max_calls:
        lower, upper = mintime + 900, mintime + 20 * timeskip
        guess = int(0.95 * lower + 0.05 * upper)
        probes = 0
        while probes < 6 and calls < max_calls:
            total, _, _ = search(mintime, min(guess, end))
            if total == 0 and guess < end:  # not counted: widen the search upwards
                upper += timeskip
                lower, guess = guess, (guess + upper) // 2
                continue
            probes += 1
            if total > target:
                upper, guess = guess, (lower + guess) // 2
            elif total < target and guess < end:
                lower, guess = guess, (guess + upper) // 2
            else:
                break
        maxtime = min(guess, end)
        page, pages = 1, 1
        while page <= min(16, pages):
            _, pages, photos = search(mintime, maxtime, page=page, sort="interestingness-desc")
            found.update(int(p["id"]) for p in photos)
            page += 1
        timeskip = max(900, maxtime - mintime)
        mintime = maxtime
    covered_until = min(mintime, end)
    truth = sim.truth.search_ids(text=keyword, max_upload_date=covered_until)
    return {
        "calls": calls,
        "unique": len(found & truth),
        "recall": len(found & truth) / len(truth) if truth else 1.0,
        "partial": covered_until < end,
        "covered": len(truth),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10k,100k,1m", help="comma list of 10k, 100k, 1m")
    parser.add_argument("--fault-sizes", default="10k,100k,1m", help="sizes also harvested with faults on")
    parser.add_argument("--seed-calls", type=int, default=1500, help="cut the seed's algorithm off after this")
    parser.add_argument("--no-light", action="store_true", help="skip the light-ties universe")
    options = parser.parse_args()
    sizes = [s.strip().lower() for s in options.sizes.split(",") if s.strip()]
    fault_sizes = {s.strip().lower() for s in options.fault_sizes.split(",")}

    rows, light = [], []
    with tempfile.TemporaryDirectory() as cache, Simulator(seed=7, cache_dir=Path(cache)) as sim:
        for size in sizes:
            keyword = SIZES[size]
            started = time.monotonic()
            ours = run_ours(sim, keyword, None)
            faulty = run_ours(sim, keyword, FAULTS) if size in fault_sizes else None
            seed = run_seed(sim, keyword, options.seed_calls)
            rows.append((size, keyword, ours, faulty, seed))
            print(f"[{size}] {keyword!r} done in {time.monotonic() - started:.0f}s", file=sys.stderr, flush=True)
    if not options.no_light:
        spec = UniverseSpec(ties="light")
        with tempfile.TemporaryDirectory() as cache, Simulator(seed=7, cache_dir=Path(cache), spec=spec) as sim:
            for size in sizes:
                light.append((size, SIZES[size], run_ours(sim, SIZES[size], None)))
                print(f"[{size}] light ties done", file=sys.stderr, flush=True)

    print()
    header = (
        f"{'size':>5} {'keyword':<11} {'photos':>9} {'recall':>8} {'calls':>6} {'/1000':>6} {'ideal':>6} "
        f"{'ratio':>6} {'bound':>6} {'/bound':>6} | {'faults: recall':>14} {'calls':>6} {'retries':>7} | "
        f"{'seed: recall':>12} {'calls':>6} {'/1000':>6} {'ours/seed':>9} | {'peak RSS':>8} {'time':>6}"
    )
    print("Stress universe (heavy same-second ties):")
    print(header)
    print("-" * len(header))
    for size, keyword, ours, faulty, seed in rows:
        per_k = 1000 * ours["calls"] / ours["unique"]
        seed_per_k = 1000 * seed["calls"] / max(1, seed["unique"])
        fault_part = (
            f"{faulty['recall']:>14.4%} {faulty['calls']:>6} {faulty['retries']:>7}"
            if faulty
            else f"{'-':>14} {'':>6} {'':>7}"
        )
        partial = "*" if seed["partial"] else " "
        print(
            f"{size:>5} {keyword:<11} {ours['photos']:>9,} {ours['recall']:>8.4%} {ours['calls']:>6} {per_k:>6.2f} "
            f"{ours['ideal']:>6} {ours['calls'] / ours['ideal']:>6.3f} {ours['bound']:>6} "
            f"{ours['calls'] / ours['bound']:>6.3f} | {fault_part} | {seed['recall']:>11.4%}{partial} "
            f"{seed['calls']:>6} {seed_per_k:>6.2f} {per_k / seed_per_k:>9.3f} | {ours['peak_mib']:>6.0f}MiB "
            f"{ours['seconds']:>5.0f}s"
        )
    if light:
        print()
        print("Light ties (same keywords, ~65 % of photos alone in their upload second):")
        for size, keyword, ours in light:
            print(
                f"{size:>5} {keyword:<11} {ours['photos']:>9,} {ours['recall']:>8.4%} {ours['calls']:>6} "
                f"{1000 * ours['calls'] / ours['unique']:>6.2f} {ours['ideal']:>6} "
                f"{ours['calls'] / ours['ideal']:>6.3f} {ours['bound']:>6} {ours['calls'] / ours['bound']:>6.3f}"
            )
    print()
    print("ideal = ceil(photos / 500): one call per full page. ratio = our calls / ideal.")
    print("bound = the fewest calls of any complete walk over upload-time windows on this data (whole seconds")
    print("  packed into pages, since ties come back in any order). /bound = our calls / bound.")
    print("* the seed's algorithm was cut off after --seed-calls calls; its recall and calls/1000 are for the")
    print("  photos uploaded in the span it covered. Duplicate photo_ids in our output: ", end="")
    print(", ".join(f"{size}={ours['duplicates']}" for size, _, ours, *_ in rows))


if __name__ == "__main__":
    main()
