"""The data-quality rules behind the asset checks find what is wrong, on a real download's files tampered with."""

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from flickr_assets.download import DownloadOptions, download_keyword
from flickr_assets.storage.layout import DataLayout
from flickr_assets.storage.records import RecordsWriter
from flickr_assets.storage.validate import manifest_problems, records_problems


def _set(table: pa.Table, name: str, values: list) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, pa.array(values, table.schema.field(name).type))


def test_manifest_problems_name_each_photo_and_folder(sim, harvested, tmp_path):
    layout = DataLayout.at(tmp_path)
    download_keyword(layout, "stonehenge", harvested("stonehenge"), DownloadOptions())
    assert manifest_problems(layout, "stonehenge") == []
    path = layout.manifest_file("stonehenge")
    manifest = pq.read_table(path)
    ok = manifest.filter(pc.equal(manifest["status"], "ok")).to_pylist()
    deleted, altered, escaped, pathless = ok[:4]

    layout.resolve_relative(deleted["path"]).unlink()
    with open(layout.resolve_relative(altered["path"]), "ab") as handle:
        handle.write(b"one more byte")
    paths = manifest["path"].to_pylist()
    ids = manifest["photo_id"].to_pylist()
    paths[ids.index(escaped["photo_id"])] = "../../etc/passwd"
    paths[ids.index(pathless["photo_id"])] = None
    pq.write_table(_set(manifest, "path", paths), path)
    crowded = layout.images_dir("stonehenge") / "0099"
    crowded.mkdir()
    for n in range(1001):
        (crowded / f"{n}.jpg").write_bytes(b"")

    assert manifest_problems(layout, "stonehenge") == sorted(
        [
            f"photo {deleted['photo_id']}: image {deleted['path']} is missing",
            f"photo {altered['photo_id']}: image {altered['path']} does not match its sha256",
            f"photo {escaped['photo_id']}: image path ../../etc/passwd leaves the data folder",
            f"photo {pathless['photo_id']}: status ok but no image path",
            "folder images/stonehenge/0099 holds 1001 files (limit 1000)",
        ]
    )
    # Without hashes (the check run for every keyword at once) the altered file passes.
    assert len(manifest_problems(layout, "stonehenge", verify_hashes=False)) == 4


def test_records_problems_name_duplicates_missing_fields_and_foreign_rows(harvested, tmp_path):
    layout = DataLayout.at(tmp_path)
    records = harvested("stonehenge").slice(0, 10)
    with RecordsWriter(layout, "stonehenge") as writer:
        writer.add(records.to_pylist())
        writer.commit()
    path = layout.records_file("stonehenge")
    assert records_problems(layout, "stonehenge") == []

    table = pq.read_table(path)
    ids = table["photo_id"].to_pylist()
    ids[1] = ids[0]
    owners = table["owner"].to_pylist()
    owners[2] = None
    keywords = table["keyword"].to_pylist()
    keywords[3] = keywords[4] = "colosseum"
    table = _set(_set(_set(table, "photo_id", ids), "owner", owners), "keyword", keywords)
    pq.write_table(table, path)
    assert records_problems(layout, "stonehenge") == [
        f"{path}: 1 duplicate photo_id value",
        f"{path}: 1 row without owner",
        f"{path}: 2 rows of another keyword",
    ]
