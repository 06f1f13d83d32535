"""Catalog build against the time just to read its input, on synthetic records and manifests.

    .venv/bin/python benchmarks/bench_catalog.py --rows 1000000 --keywords 1000

Generates N record rows over K keywords (~10% of photos in 2-3 keywords, realistic strings) plus their
manifests (90% ok; planted exact and near duplicates) into a temporary data folder (not timed), then
runs, each in a fresh subprocess so generation memory does not count:

- ``read``: the limit. pyarrow reads, once, every records file's columns the catalog keeps (every
  RECORDS field but ``keyword``, strings included -- not only the id columns) and every manifest's
  columns it uses (``IMAGE_COLUMNS``, with ``path``), file by file as the build does; nothing else;
- ``build``: :func:`build_catalog` (which also groups, picks images, searches duplicates and writes the
  catalog), with its peak RSS; then, for information, the same build at ``near_distance=4``.

Prints both times as wall clock and as process CPU seconds (the machine may be shared: CPU seconds
hold up better under load), their ratios (target <= 2x) and the peak RSS (target < 4 GiB).
"""

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere without installing

from flickr_assets.catalog.build import DEFAULT_COMPRESSION, DEFAULT_NEAR_DISTANCE, RECORD_COLUMNS
from flickr_assets.catalog.images import IMAGE_COLUMNS, bytes_to_sha
from flickr_assets.storage.atomic import atomic_path
from flickr_assets.storage.keys import encode_keyword
from flickr_assets.storage.layout import DataLayout
from flickr_assets.storage.schemas import MANIFEST, RECORDS

WORDS = [
    *("paris", "tower", "eiffel", "night", "sunset", "river", "seine", "bridge", "street", "cafe", "old"),
    *("city", "light", "blue", "sky", "cloud", "travel", "summer", "winter", "snow", "rain", "people"),
    *("walk", "view", "trocadero", "museum", "louvre", "art", "stone", "iron", "tourist", "france", "europe"),
]
T0 = 1_700_000_000
INFO_NEAR_DISTANCE = 4  # also timed, for information (fewer band combinations)


def _pool(rng: np.random.Generator, size: int, words: tuple[int, int]) -> pa.Array:
    """``size`` distinct-ish strings of random words (made once, then sampled per row)."""
    count = rng.integers(*words, size)
    vocabulary = np.array(WORDS)
    return pa.array([" ".join(vocabulary[rng.integers(0, len(WORDS), c)]) + f" {i}" for i, c in enumerate(count)])


def _tag_pool(rng: np.random.Generator, size: int) -> pa.Array:
    lengths = rng.integers(0, 12, size)
    offsets = np.concatenate(([0], np.cumsum(lengths))).astype(np.int32)
    values = pa.array(np.array(WORDS)[rng.integers(0, len(WORDS), offsets[-1])])
    return pa.ListArray.from_arrays(pa.array(offsets), values)


def realistic_phashes(rng: np.random.Generator, count: int, chunk: int = 1 << 20) -> np.ndarray:
    """pHash-like 64-bit values (int64): biased, correlated bits, 32 of them set, like ``phash_of``'s.

    Each hash thresholds 64 correlated Gaussians (correlation 0.55 per step on the 8x8 DCT grid, with
    per-coefficient offsets that grow toward low frequencies; the DC coefficient nearly always above) at
    their median. Bands of such bits have about half the distinct values of uniform ones.
    """
    y, x = np.divmod(np.arange(64), 8)
    distance = np.abs(y[:, None] - y[None, :]) + np.abs(x[:, None] - x[None, :])
    mix = np.linalg.cholesky(0.55**distance + 1e-9 * np.eye(64)).astype(np.float32)
    bias = (2 * rng.normal(0, 0.6, 64) / (1 + y + x)).astype(np.float32)
    bias[0] = 8.0
    weights = np.uint64(1) << np.arange(64, dtype=np.uint64)
    out = np.empty(count, np.uint64)
    for start in range(0, count, chunk):
        n = min(chunk, count - start)
        z = rng.standard_normal((n, 64), dtype=np.float32) @ mix.T + bias
        bits = z > np.median(z, axis=1, keepdims=True)
        out[start : start + n] = np.bitwise_or.reduce(np.where(bits, weights, np.uint64(0)), axis=1)
    return out.view(np.int64)


def plant_near_clusters(rng: np.random.Generator, phash: np.ndarray, fraction: float = 0.01) -> None:
    """Turn ``fraction`` of the hashes into clusters of 2-8 near copies (1-6 bits from the cluster's first)."""
    sizes = rng.integers(2, 9, int(len(phash) * fraction / 5))
    members = rng.choice(len(phash), int(sizes.sum()), replace=False)
    heads = np.repeat(members[np.cumsum(sizes) - sizes], sizes)
    flips = np.zeros(len(members), np.int64)
    for _ in range(6):
        chosen = rng.random(len(members)) < 0.6
        flips[chosen] ^= np.left_shift(np.int64(1), rng.integers(0, 64, int(chosen.sum())).astype(np.int64))
    phash[members] = phash[heads] ^ np.where(members == heads, 0, flips | 1)


def generate(root: Path, rows: int, keywords: int, seed: int = 7, phash_model: str = "uniform") -> None:
    """Write the synthetic data folder (vectorised per keyword file); ``phash_model``: uniform or realistic."""
    rng = np.random.default_rng(seed)
    layout = DataLayout.at(root)
    names = [f"keyword {k:04d}" for k in range(keywords)]
    photos = int(rows / 1.15)
    copies = rng.choice([1, 2, 3], photos, p=[0.9, 0.05, 0.05])
    overflow = int(copies.sum()) - rows
    copies[np.flatnonzero(copies > 1)[: max(overflow, 0)]] -= 1
    photo_ids = 50_000_000_000 + np.sort(rng.choice(photos * 20, photos, replace=False)).astype(np.int64)
    photo_of_row = np.repeat(np.arange(photos), copies)
    nth = np.arange(len(photo_of_row)) - np.repeat(np.cumsum(copies) - copies, copies)
    keyword_of_row = (rng.integers(0, keywords, photos)[photo_of_row] + nth * 7) % keywords

    sha = rng.integers(0, 256, (photos, 32), dtype=np.uint8)
    if phash_model == "realistic":
        phash = realistic_phashes(rng, photos)
    else:
        phash = rng.integers(-(2**63), 2**63 - 1, photos, dtype=np.int64)
    planted = rng.choice(photos, 2 * (photos // 1000), replace=False).reshape(2, -1)
    sha[planted[1]] = sha[planted[0]]  # exact duplicates: 0.1% of photos
    if phash_model == "realistic":
        plant_near_clusters(rng, phash)  # near: 1% of photos, in clusters of 2-8
    else:
        planted = rng.choice(photos, 2 * (photos // 1000), replace=False).reshape(2, -1)
        phash[planted[1]] = phash[planted[0]] ^ (np.int64(1) << rng.integers(0, 64, planted.shape[1]))  # near: 0.1%
    status = np.array(["ok", "too_small", "failed"])[rng.choice(3, photos, p=[0.9, 0.05, 0.05])]

    titles, descriptions, tags = _pool(rng, 200_000, (2, 6)), _pool(rng, 200_000, (14, 18)), _tag_pool(rng, 50_000)
    owners = pa.array([f"{i}@N0{i % 9}" for i in range(100_000)])
    order = np.argsort(keyword_of_row, kind="stable")
    bounds = np.searchsorted(keyword_of_row[order], np.arange(keywords + 1))
    for k, name in enumerate(names):
        mine = photo_of_row[order[bounds[k] : bounds[k + 1]]]
        n = len(mine)
        ids = pa.array(photo_ids[mine])
        owner = owners.take(pa.array(mine % len(owners)))
        seen = T0 + rng.integers(0, 86_400 * 365, n)
        table = {
            "photo_id": ids,
            "keyword": pa.array([name] * n),
            "owner": owner,
            "owner_name": owner,
            "secret": pc.cast(pa.array(photo_ids[mine] % 999_983), pa.string()),
            "server": pa.array(np.char.mod("%d", 65535 - mine % 40)),
            "farm": pa.array(np.full(n, 66, np.int32)),
            "title": titles.take(pa.array(rng.integers(0, len(titles), n))),
            "description": descriptions.take(pa.array(rng.integers(0, len(descriptions), n))),
            "tags": tags.take(pa.array(rng.integers(0, len(tags), n))),
            "machine_tags": pa.array([[]] * n, pa.list_(pa.string())),
            "date_upload": pa.array(seen - 86_400 * 30).cast(pa.timestamp("s", tz="UTC")),
            "date_taken": pa.array(seen - 86_400 * 40).cast(pa.timestamp("s")),
            "latitude": pa.array(rng.uniform(-90, 90, n)),
            "longitude": pa.array(rng.uniform(-180, 180, n)),
            "license": pa.array(rng.integers(0, 10, n).astype(np.int16)),
            "views": pa.array(rng.integers(0, 10_000, n)),
            "media": pa.array(["photo"] * n),
            "url_l": pc.binary_join_element_wise(
                "https://live.staticflickr.com/65535/", pc.cast(ids, pa.string()), "_l.jpg", ""
            ),
            "first_seen": pa.array(seen - 86_400).cast(pa.timestamp("s", tz="UTC")),
            "last_seen": pa.array(seen).cast(pa.timestamp("s", tz="UTC")),
        }
        records = pa.table({f.name: table.get(f.name, pa.nulls(n, f.type)) for f in RECORDS}).cast(RECORDS)
        with atomic_path(layout.records_file(name)) as tmp:
            pq.write_table(records, tmp)
        ok = status[mine] == "ok"
        shard = pc.cast(pa.array(np.arange(n) // 1000), pa.string())
        path = pc.binary_join_element_wise(
            f"images/{encode_keyword(name)}/", shard, "/", pc.cast(ids, pa.string()), ".jpg", ""
        )
        manifest = {
            "photo_id": ids,
            "status": pa.array(status[mine]),
            "sha256": bytes_to_sha(sha[mine], ok),
            "phash": pa.array(phash[mine], mask=~ok),
            "path": pc.if_else(pa.array(ok), path, pa.scalar(None, pa.string())),
            "stored_width": pa.array(np.full(n, 1024, np.int32), mask=~ok),
            "stored_height": pa.array(np.full(n, 768, np.int32), mask=~ok),
            "attempts": pa.array(np.ones(n, np.int32)),
            "updated_at": pa.array(seen).cast(pa.timestamp("s", tz="UTC")),
        }
        manifest_table = pa.table({f.name: manifest.get(f.name, pa.nulls(n, f.type)) for f in MANIFEST}).cast(MANIFEST)
        with atomic_path(layout.manifest_file(name)) as tmp:
            pq.write_table(manifest_table, tmp)


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _child_read(root: str, compression: str, near_distance: int) -> dict:
    layout = DataLayout.at(root)
    cpu, started = _cpu_seconds(), time.perf_counter()
    rows = 0
    for folder in sorted(layout.records_root.iterdir()):
        rows += pq.read_table(folder / "photos.parquet", columns=[*RECORD_COLUMNS, "first_seen", "last_seen"]).num_rows
    for folder in sorted(layout.manifests_root.iterdir()):
        pq.read_table(folder / "manifest.parquet", columns=list(IMAGE_COLUMNS))
    return {
        "seconds": time.perf_counter() - started,
        "cpu": _cpu_seconds() - cpu,
        "rows": rows,
        "peak_rss_mib": _peak_rss_mib(),
    }


def _child_build(root: str, compression: str, near_distance: int) -> dict:
    from flickr_assets.catalog import build_catalog

    cpu = _cpu_seconds()
    result = build_catalog(DataLayout.at(root), near_distance=near_distance, compression=compression)
    return {
        "seconds": result.elapsed_s,
        "cpu": _cpu_seconds() - cpu,
        "stages": {k: round(v, 2) for k, v in result.stage_seconds.items()},
        "near_photos": result.near_duplicate_photos,
        "rows": result.rows,
        "records": result.records_read,
        "multi_keyword": result.multi_keyword_photos,
        "exact_groups": result.exact_duplicate_groups,
        "near_groups": result.near_duplicate_groups,
        "near_plan": str(result.near_plan),
        "peak_rss_mib": _peak_rss_mib(),
        "catalog_mib": DataLayout.at(root).catalog_file.stat().st_size / 2**20,
    }


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run_child(mode: str, root: Path, compression: str, near_distance: int = DEFAULT_NEAR_DISTANCE) -> dict:
    command = [sys.executable, __file__, "--child", mode, "--root", str(root), "--compression", compression]
    command += ["--near-distance", str(near_distance)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--keywords", type=int, default=1_000)
    parser.add_argument("--root", type=Path, help="data folder to use (kept); default: a temporary one")
    parser.add_argument("--compression", default=DEFAULT_COMPRESSION, help="catalog codec (default: %(default)s)")
    parser.add_argument(
        "--phash",
        choices=["uniform", "realistic"],
        default="realistic",
        help="perceptual hashes of a generated folder: uniform random (the bucketed search's best case) or "
        "pHash-like biased, correlated bits with planted near-duplicate clusters (default: %(default)s)",
    )
    parser.add_argument("--generate-only", action="store_true", help="generate the data folder (--root) and stop")
    parser.add_argument("--near-distance", type=int, default=DEFAULT_NEAR_DISTANCE, help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=["read", "build"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child = _child_read if args.child == "read" else _child_build
        print(json.dumps(child(str(args.root), args.compression, args.near_distance)))
        return
    root = args.root or Path(tempfile.mkdtemp(prefix="bench_catalog_")) / "data"
    try:
        if not (root / "records").exists():
            started = time.perf_counter()
            generate(root, args.rows, args.keywords, phash_model=args.phash)
            print(
                f"generated {args.rows:,} rows over {args.keywords:,} keywords ({args.phash} phashes) "
                f"in {time.perf_counter() - started:.0f} s"
            )
        if args.generate_only:
            return
        read_first = _run_child("read", root, args.compression)  # also warms the page cache for both
        build = _run_child("build", root, args.compression)
        near = _run_child("build", root, args.compression, INFO_NEAR_DISTANCE)  # for information only
        read_again = _run_child("read", root, args.compression)
        read_s = min(read_first["seconds"], read_again["seconds"])
        read_cpu = min(read_first["cpu"], read_again["cpu"])
        print(
            f"input:   {read_first['rows']:,} records; {build['rows']:,} photos "
            f"({build['multi_keyword']:,} in several keywords)"
        )
        print(
            "limit:   one read of every records file's catalog columns (all but keyword, strings included) "
            "and every manifest's image columns (with path)"
        )
        print(f"read:    {read_s:.1f} s wall, {read_cpu:.1f} s CPU (peak RSS {read_first['peak_rss_mib']:.0f} MiB)")
        print(f"build:   {build['seconds']:.1f} s wall, {build['cpu']:.1f} s CPU  stages {build['stages']}")
        print(
            f"ratio:   {build['seconds'] / read_s:.2f}x wall, {build['cpu'] / read_cpu:.2f}x CPU  (target <= 2x; "
            f"codec {args.compression})"
        )
        print(f"memory:  peak RSS {build['peak_rss_mib']:.0f} MiB  (target < 4096 MiB)")
        print(
            f"found:   {build['exact_groups']:,} exact and {build['near_groups']:,} near duplicate groups "
            f"({build['near_photos']:,} photos); "
            f"{build['near_plan']}"
        )
        print(f"output:  {build['catalog_mib']:.0f} MiB catalog")
        print(
            f"info:    near_distance={INFO_NEAR_DISTANCE}: build {near['seconds']:.1f} s wall, {near['cpu']:.1f} s CPU "
            f"({near['seconds'] / read_s:.2f}x wall, {near['cpu'] / read_cpu:.2f}x CPU), peak RSS "
            f"{near['peak_rss_mib']:.0f} MiB, stages {near['stages']}; {near['near_groups']:,} near groups; "
            f"{near['near_plan']}"
        )
    finally:
        if not args.root:
            shutil.rmtree(root.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
