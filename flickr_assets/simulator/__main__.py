"""``python -m flickr_assets.simulator --port 8765 --seed 7``: run the simulator in the foreground."""

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from .faults import Budget, Faults
from .server import Simulator
from .spec import DEMO_API_KEY, DEMO_API_SECRET, TIE_PROFILES, UniverseSpec


def main(argv: list[str] | None = None) -> int:
    """Serve until Ctrl-C or SIGTERM; return the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m flickr_assets.simulator", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the photo universe")
    parser.add_argument("--cache-dir", default=".simulator-cache", help="where generated images are cached")
    parser.add_argument("--faults", default="", help='e.g. "rest_5xx=0.1,rest_429=0.05,truncate=0.05"')
    parser.add_argument("--budget", type=int, default=0, help="REST calls per key per hour (0: unlimited)")
    parser.add_argument(
        "--ties", choices=sorted(TIE_PROFILES), default="heavy", help="how many photos share an upload second"
    )
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port {args.port} is not a port: 0 to 65535 (0: any free port)")
    if args.budget < 0:
        parser.error(f"--budget {args.budget}: give a number of calls per hour, or 0 for no limit")
    cache = Path(args.cache_dir)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        probe = cache / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        parser.error(f"--cache-dir {cache}: cannot write there ({error.strerror})")
    try:
        faults = Faults.parse(args.faults)
    except ValueError as error:
        parser.error(str(error))
    budget = Budget(calls=args.budget) if args.budget > 0 else None
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        sim = Simulator(
            seed=args.seed,
            cache_dir=Path(args.cache_dir),
            faults=faults,
            budget=budget,
            port=args.port,
            spec=UniverseSpec(ties=args.ties),
        )
        sim.start()
    except OSError as error:
        print(f"flickr simulator: cannot listen on 127.0.0.1:{args.port}: {error.strerror}", file=sys.stderr)
        return 1
    print(f"Flickr simulator (seed {args.seed}) on {sim.base_url}", flush=True)
    print(f"  REST endpoint: {sim.rest_url}")
    print(f"  demo key:      FLICKR_API_KEY={DEMO_API_KEY} FLICKR_API_SECRET={DEMO_API_SECRET}")
    print(f"  keywords:      {', '.join(f'{k} ({n})' for k, n in sim.truth.keywords().items())}")
    print("  Ctrl-C stops it.", flush=True)
    try:
        stop.wait()
    finally:
        sim.stop()
    print("flickr simulator stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
