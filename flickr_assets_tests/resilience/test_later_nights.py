"""Later nights: the pipeline run again after Flickr's data changed in between (a photo's secrets rotated,
the same photo found by a second keyword), in process, against a simulator of its own over real HTTP."""

import json
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest
from PIL import Image

from flickr_assets.defs.assets import photo_catalog, photo_images, photo_records
from flickr_assets.defs.checks import CHECKS
from flickr_assets.defs.queries import query_defaults_from_env
from flickr_assets.defs.resources import resources_from_env
from flickr_assets.simulator import DEMO_API_KEY, DEMO_API_SECRET, Simulator
from flickr_assets.storage.layout import DataLayout

ASSETS = [photo_records, photo_images, photo_catalog, *CHECKS]
KEYWORD_RUN = dg.AssetSelection.assets(photo_records, photo_images)


@pytest.fixture
def layout(private_sim: Simulator, tmp_path: Path, dagster_home: Path, monkeypatch: pytest.MonkeyPatch) -> DataLayout:
    """The pipeline's environment pointing at a simulator of its own (these tests change its world)."""
    env = {
        "FLICKR_API_KEY": DEMO_API_KEY,
        "FLICKR_API_SECRET": DEMO_API_SECRET,
        "FLICKR_API_URL": private_sim.rest_url,
        "FLICKR_DATA_DIR": str(tmp_path / "data"),
        "FLICKR_API_CALLS_PER_HOUR": "360000",
        "DAGSTER_HOME": str(dagster_home),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return DataLayout.at(tmp_path / "data")


def _night(keyword: str, full_refresh: bool = False, selection: dg.AssetSelection = KEYWORD_RUN) -> None:
    result = dg.materialize(
        ASSETS,
        selection=selection,
        partition_key=keyword,
        run_config={"ops": {"photo_records": {"config": {"full_refresh": full_refresh}}}} if full_refresh else None,
        resources={**resources_from_env(), "query_defaults": query_defaults_from_env()},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success and all(e.passed for e in result.get_asset_check_evaluations())


def _rows(path: Path) -> dict[int, dict]:
    return {row["photo_id"]: row for row in pq.read_table(path).to_pylist()}


def _embedded_secret(layout: DataLayout, relative: str) -> str:
    with Image.open(layout.resolve_relative(relative)) as image:
        return json.loads(image.info["comment"])["secret"]


def test_a_photo_whose_secret_rotated_is_not_linked_from_its_old_file(private_sim, layout):
    _night("stonehenge")
    stored = _rows(layout.manifest_file("stonehenge"))
    shared = sorted(
        photo_id
        for photo_id in private_sim.truth.search_ids(text="colosseum", has_geo=True)
        if stored.get(photo_id, {}).get("status") == "ok"
    )
    assert shared, "the simulator plants photos matching both keywords"
    photo_id = shared[0]
    old_secret = _rows(layout.records_file("stonehenge"))[photo_id]["secret"]
    private_sim.rotate_secret(photo_id)  # e.g. its owner replaced it: the old file shows the old photo

    _night("colosseum")  # finds the photo with its new secret
    record = _rows(layout.records_file("colosseum"))[photo_id]
    row = _rows(layout.manifest_file("colosseum"))[photo_id]
    assert record["secret"] != old_secret
    assert row["status"] == "ok" and Path(row["path"]).name.startswith(f"{photo_id}_{record['secret']}_")
    # The file under the new name is the photo as it is now, not the other keyword's copy of the old one.
    assert not (row["reason"] or "").startswith("linked from"), row["reason"]
    assert f"_{record['secret']}_" in row["url"] and _embedded_secret(layout, row["path"]) == record["secret"]


def test_a_photo_fetched_again_under_its_new_secret_leaves_no_file_behind(private_sim, layout):
    _night("colosseum")
    before = _rows(layout.manifest_file("colosseum"))
    photo_id = min(i for i, row in before.items() if row["status"] == "ok")
    private_sim.rotate_secret(photo_id)

    _night("colosseum", full_refresh=True)  # finds the photo again, with its new secret: fetched anew
    after = _rows(layout.manifest_file("colosseum"))
    assert after[photo_id]["status"] == "ok" and after[photo_id]["path"] != before[photo_id]["path"]
    files = sorted(layout.relative(p) for p in layout.images_dir("colosseum").rglob("*.jpg"))
    assert [f for f in files if Path(f).name.startswith(f"{photo_id}_")] == [after[photo_id]["path"]]
    # One file per ok row, as the folder limit counts them (the old one would be an orphan no table names).
    assert files == sorted(row["path"] for row in after.values() if row["status"] == "ok")


def test_a_photo_unavailable_under_its_old_secret_is_tried_again_under_the_new_one(private_sim, layout):
    _night("stonehenge", selection=dg.AssetSelection.assets(photo_records))
    records = _rows(layout.records_file("stonehenge"))
    photo_id = min(i for i, r in records.items() if r["url_l"] and private_sim.truth.download(i).status == "ok")
    private_sim.rotate_secret(photo_id)  # while the night's download is still to come (it may take hours)
    _night("stonehenge", selection=dg.AssetSelection.assets(photo_images))
    assert _rows(layout.manifest_file("stonehenge"))[photo_id]["status"] == "unavailable"  # final, for that URL

    _night("stonehenge", full_refresh=True)  # the record now names the photo's new URLs, which answer
    row = _rows(layout.manifest_file("stonehenge"))[photo_id]
    record = _rows(layout.records_file("stonehenge"))[photo_id]
    assert (row["status"], row["url"]) == ("ok", record["url_l"])


def test_a_superseded_file_left_by_an_interrupted_run_goes_at_the_next_run(private_sim, layout):
    """A run killed after the manifest named a photo's new file but before it removed the old one left an orphan;
    the next complete run looks through the folders and removes it, touching nothing it did not write."""
    _night("colosseum")
    rows = _rows(layout.manifest_file("colosseum"))
    ok = sorted(i for i, row in rows.items() if row["status"] == "ok")
    current = layout.resolve_relative(rows[ok[0]]["path"])
    stale = current.with_name(f"{ok[0]}_0123456789_{current.name.split('_', 2)[2]}")  # its name under an old secret
    stale.write_bytes(current.read_bytes())
    foreign = [current.with_name("notes.jpg"), current.with_name(f"{max(rows) + 1}_ab_1_x@N00.jpg")]
    for path in foreign:  # not a photo of this keyword with an ok row: never ours to remove
        path.write_bytes(b"kept")

    _night("colosseum")
    assert not stale.exists() and current.exists() and all(path.exists() for path in foreign)
    assert _rows(layout.manifest_file("colosseum")) == rows  # nothing fetched or changed
