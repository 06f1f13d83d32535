"""Later nights: the pipeline run again after Flickr's data changed in between (a photo's secrets rotated,
the same photo found by a second keyword), in process, against a simulator of its own over real HTTP."""

import hashlib
import json
import os
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from flickr_assets.defs.assets import photo_catalog, photo_images, photo_records
from flickr_assets.defs.checks import CHECKS
from flickr_assets.defs.queries import query_defaults_from_env
from flickr_assets.defs.resources import resources_from_env
from flickr_assets.simulator import Simulator
from flickr_assets.storage.layout import DataLayout
from flickr_assets_tests.conftest import point_pipeline_at

ASSETS = [photo_records, photo_images, photo_catalog, *CHECKS]
KEYWORD_RUN = dg.AssetSelection.assets(photo_records, photo_images)


@pytest.fixture
def layout(private_sim: Simulator, tmp_path: Path, dagster_home: Path, monkeypatch: pytest.MonkeyPatch) -> DataLayout:
    """The pipeline's environment pointing at a simulator of its own (these tests change its world)."""
    point_pipeline_at(private_sim, tmp_path / "data", dagster_home, monkeypatch)
    return DataLayout.at(tmp_path / "data")


def _night(keyword: str, full_refresh: bool = False, selection: dg.AssetSelection = KEYWORD_RUN) -> dict:
    """Run the night's assets for ``keyword``; the metadata of its photo_images materialisation (if any)."""
    result = dg.materialize(
        ASSETS,
        selection=selection,
        partition_key=keyword,
        run_config={"ops": {"photo_records": {"config": {"full_refresh": full_refresh}}}} if full_refresh else None,
        resources={**resources_from_env(), "query_defaults": query_defaults_from_env()},
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success and all(e.passed for e in result.get_asset_check_evaluations())
    images = [m for m in result.get_asset_materialization_events() if m.asset_key == photo_images.key]
    return {k: v.value for k, v in images[0].materialization.metadata.items()} if images else {}


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


def _file(layout: DataLayout, relative: str) -> tuple[bytes, np.ndarray, dict, dict, str]:
    """A stored file: its bytes, pixels, comment JSON, Exif and XMP."""
    path = layout.resolve_relative(relative)
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"))
        xmp = image.info["xmp"].decode("utf-8")
        return path.read_bytes(), pixels, json.loads(image.info["comment"]), dict(image.getexif()), xmp


def test_a_retitled_relicensed_photo_has_its_file_metadata_rewritten_without_a_fetch(private_sim, layout):
    _night("stonehenge")
    _night("colosseum")  # photos found by both keywords are hard-linked from stonehenge's files
    linked = _rows(layout.manifest_file("colosseum"))
    photo_id = min(i for i, r in linked.items() if (r["reason"] or "").startswith("linked from"))
    other = min(i for i, r in linked.items() if r["status"] == "ok" and i != photo_id)
    old_record = _rows(layout.records_file("colosseum"))[photo_id]
    old_bytes, old_pixels, _, _, _ = _file(layout, linked[photo_id]["path"])
    other_stat = os.stat(layout.resolve_relative(linked[other]["path"]))
    new_license = 9 if old_record["license"] != 9 else 10  # CC0 / Public Domain Mark
    private_sim.edit_photo(photo_id, title="Renamed — café at dusk", license=new_license)
    private_sim.stats.reset()

    metadata = _night("colosseum", full_refresh=True)  # the week's full walk sees the new title and licence
    row = _rows(layout.manifest_file("colosseum"))[photo_id]
    data, pixels, comment, exif, xmp = _file(layout, row["path"])
    assert (comment["title"], comment["license"]) == ("Renamed — café at dusk", new_license)
    assert exif[270] == "Renamed - cafe at dusk" and "Public Domain" in exif[33432]  # ImageDescription, Copyright
    assert '<rdf:li xml:lang="x-default">Renamed — café at dusk</rdf:li>' in xmp
    assert np.array_equal(pixels, old_pixels)  # not re-encoded: the same image data
    assert private_sim.stats.snapshot()["static_requests"] == 0  # nothing fetched
    assert row["sha256"] == hashlib.sha256(data).hexdigest() != linked[photo_id]["sha256"]
    same = ("source_sha256", "stored_width", "stored_height", "crop_left", "crop_right", "phash", "path")
    assert {k: row[k] for k in same} == {k: linked[photo_id][k] for k in same}
    assert metadata["restamped"] == 1
    # The other keyword's hard link was not changed behind its back: its file is the one its manifest names.
    theirs = _rows(layout.manifest_file("stonehenge"))[photo_id]
    assert layout.resolve_relative(theirs["path"]).read_bytes() == old_bytes
    assert hashlib.sha256(old_bytes).hexdigest() == theirs["sha256"]
    # A photo whose record did not change is left alone, file and row.
    assert _rows(layout.manifest_file("colosseum"))[other] == linked[other]
    after = os.stat(layout.resolve_relative(linked[other]["path"]))
    assert (after.st_ino, after.st_mtime_ns) == (other_stat.st_ino, other_stat.st_mtime_ns)
    assert _night("colosseum")["restamped"] == 0  # done once


def test_a_manifest_from_before_metadata_digests_has_its_files_checked_once(private_sim, layout):
    _night("colosseum")
    manifest = layout.manifest_file("colosseum")
    table = pq.read_table(manifest)
    pq.write_table(table.drop_columns(["metadata_sha256"]), manifest)  # as an older version wrote it
    rows = _rows(manifest)
    ok = sorted(i for i, r in rows.items() if r["status"] == "ok")
    private_sim.edit_photo(ok[0], title="A new title")

    metadata = _night("colosseum", full_refresh=True)
    after = _rows(manifest)
    assert (metadata["restamped"], metadata["metadata_checked"]) == (1, len(ok) - 1)
    assert metadata["bytes_fetched"] == 0  # nothing was fetched (checked rows once counted their first fetch's)
    assert all(after[i]["metadata_sha256"] for i in ok)
    assert [i for i in ok if after[i]["sha256"] != rows[i]["sha256"]] == [ok[0]]
    assert _file(layout, after[ok[0]]["path"])[2]["title"] == "A new title"
    again = _night("colosseum")
    assert again["restamped"] == 0 and "metadata_checked" not in again
