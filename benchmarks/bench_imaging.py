"""Imaging throughput per CPU-second on generated photo-like JPEGs, one process.

    .venv/bin/python benchmarks/bench_imaging.py --count 40

Paths measured (CPU time of this process, so a shared machine does not skew the figures):

- ``large kept``: 1024 px Large, no frame -> bytes as served + metadata segments (no re-encode);
- ``large framed``: 1024 px Large with a frame -> full decode, crop, re-encode;
- ``original``: 2048-4000 px originals -> draft decode to the final size, LANCZOS, re-encode;
- ``reference``: full decode + LANCZOS to 1024 + encode, the naive path, for comparison.

Prints images per CPU-second for each and the mean milliseconds per image.
"""

import argparse
import io
import sys
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flickr_assets.imaging import process_image
from flickr_assets_tests.imaging.synthetic import framed, jpeg, photo

RECORD = {"photo_id": 1, "title": "bench", "tags": ["a", "b"], "latitude": 48.8, "longitude": 2.3, "license": 4}


def _naive(data: bytes) -> bytes:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    factor = 1024 / max(image.size)
    image = image.resize((round(image.width * factor), round(image.height * factor)), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def _measure(name: str, bodies: list[bytes], work) -> None:
    start = time.process_time()
    for body in bodies:
        work(body)
    cpu = time.process_time() - start
    print(f"{name:<14} {len(bodies) / cpu:8.1f} images/CPU-s {1000 * cpu / len(bodies):8.1f} ms/image")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=40, help="images per path")
    args = parser.parse_args()
    sizes = [(2048, 1536), (3000, 2000), (4000, 3000), (2400, 1600)]
    print(f"generating {args.count} images per path ...", flush=True)
    large = [jpeg(photo(1024, 768, seed=i)) for i in range(args.count)]
    frame = [((22, 24, 22, 24), (0, 0, 0))]
    framed_large = [jpeg(framed(photo(980, 720, seed=i), frame)[0]) for i in range(args.count)]
    originals = [jpeg(photo(*sizes[i % len(sizes)], seed=i)) for i in range(args.count)]
    mean_bytes = sum(map(len, large)) / len(large)
    print(f"Large JPEG mean size {mean_bytes / 1024:.0f} KiB")
    _measure("large kept", large, lambda b: process_image(b, RECORD))
    _measure("large framed", framed_large, lambda b: process_image(b, RECORD))
    _measure("original", originals, lambda b: process_image(b, RECORD))
    _measure("reference", originals, _naive)


if __name__ == "__main__":
    main()
