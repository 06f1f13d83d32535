"""Fixtures for download tests: real records harvested from the simulator, and checks of what was stored."""

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from flickr_assets.flickr.client import FlickrClient
from flickr_assets.flickr.harvest_keyword import harvest_keyword
from flickr_assets.flickr.query import SearchQuery
from flickr_assets.simulator import DEMO_API_KEY, DEMO_API_SECRET, Simulator
from flickr_assets.storage.layout import DataLayout


@pytest.fixture(scope="session")
def harvested(simulator: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], pa.Table]:
    """``harvested(keyword)``: the keyword's records, found by the real harvest against the simulator
    (once per session)."""
    layout = DataLayout.at(tmp_path_factory.mktemp("harvest"))
    cache: dict[str, pa.Table] = {}

    def get(keyword: str) -> pa.Table:
        if keyword not in cache:
            client = FlickrClient(DEMO_API_KEY, DEMO_API_SECRET, rest_url=simulator.rest_url)
            harvest_keyword(layout, client, SearchQuery(keyword=keyword, has_geo=None))
            cache[keyword] = pq.read_table(layout.records_file(keyword))
        return cache[keyword]

    return get


def manifest_rows(layout: DataLayout, keyword: str) -> dict[int, dict]:
    """The keyword's merged manifest, by photo ID."""
    return {row["photo_id"]: row for row in pq.read_table(layout.manifest_file(keyword)).to_pylist()}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stored_files(layout: DataLayout, keyword: str) -> dict[str, str]:
    """Every file under the keyword's image folder (hidden ones too): relative path -> sha256."""
    folder = layout.images_dir(keyword)
    return {layout.relative(p): sha256(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def check_against_truth(sim: Simulator, layout: DataLayout, keyword: str, records: pa.Table, per_shard: int) -> Counter:
    """Assert the keyword's manifest and files agree with the simulator's ground truth; return the statuses."""
    rows = manifest_rows(layout, keyword)
    ids = records["photo_id"].to_pylist()
    assert sorted(rows) == sorted(ids), "one manifest row per record"
    wrong = {}
    for photo_id in ids:
        truth, row = sim.truth.download(photo_id), rows[photo_id]
        if row["status"] != truth.status:
            wrong[photo_id] = (truth.status, row["status"], row["reason"])
        elif truth.status in ("ok", "too_small"):
            assert row["source"] == truth.source, photo_id
    assert not wrong, f"statuses differ from the ground truth: {wrong}"

    files = stored_files(layout, keyword)
    ok = {photo_id: row for photo_id, row in rows.items() if row["status"] == "ok"}
    assert sorted(files) == sorted(row["path"] for row in ok.values()), "exactly the ok photos are stored"
    for photo_id, row in ok.items():
        path = layout.resolve_relative(row["path"])
        assert files[row["path"]] == row["sha256"]
        truth = sim.truth.download(photo_id)
        with Image.open(path) as image:
            assert image.format == "JPEG"
            assert (image.width, image.height) == (row["stored_width"], row["stored_height"])
            assert max(image.size) <= 1024 and min(image.size) >= 500, (photo_id, image.size)
            record = json.loads(image.info["comment"])
            assert record["photo_id"] == photo_id
        assert (row["original_width"], row["original_height"]) == truth.source_size
        assert (row["crop_left"] is not None) == (truth.content_box is not None), photo_id
        if truth.content_box is not None:  # the frame found is the frame drawn (found on a reduced-scale decode)
            found = (row["crop_left"], row["crop_top"], row["crop_right"], row["crop_bottom"])
            slack = max(4, max(truth.source_size) // 100)  # JPEG blur at the edge: a few pixels
            assert all(abs(a - b) <= slack for a, b in zip(found, truth.content_box, strict=True)), (
                photo_id,
                found,
                truth.content_box,
            )
    shards = Counter(Path(path).parent.name for path in files)
    assert shards and max(shards.values()) <= per_shard
    assert len(shards) <= -(-len(rows) // per_shard)  # and no more folders than the records need
    return Counter(row["status"] for row in rows.values())
