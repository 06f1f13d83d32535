"""build_catalog over real Parquet records, manifests and JPEG files in a temporary data folder."""

import hashlib
import logging
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flickr_assets.catalog import CatalogError, CatalogProgress, build_catalog
from flickr_assets.storage.layout import DataLayout
from flickr_assets.storage.schemas import CATALOG
from flickr_assets_tests.catalog.planted import EIFFEL, PARIS, TOUR, day, plant, write_records


@pytest.fixture
def layout(tmp_path) -> DataLayout:
    return DataLayout.at(tmp_path / "data")


def rows_by_id(layout: DataLayout) -> dict[int, dict]:
    table = pq.read_table(layout.catalog_file)
    # Parquet has no seconds unit: timestamps read back as ms, otherwise the schema is CATALOG's.
    assert table.schema.names == CATALOG.names
    table = table.cast(CATALOG)
    return {row["photo_id"]: row for row in table.to_pylist()}


def test_one_row_per_photo_with_sorted_keyword_lists(layout):
    plant(layout)
    progress: list[CatalogProgress] = []
    result = build_catalog(layout, [TOUR, PARIS, EIFFEL, "louvre"], on_progress=progress.append)
    rows = rows_by_id(layout)

    assert sorted(rows) == list(range(1, 11))
    assert {pid: row["keywords"] for pid, row in rows.items()} == {
        1: [EIFFEL, PARIS],
        2: [PARIS],
        3: [EIFFEL, PARIS, TOUR],
        4: [TOUR],
        5: [EIFFEL],
        6: [PARIS],
        7: [EIFFEL],
        8: [PARIS],
        9: [TOUR],
        10: [TOUR],
    }
    assert [rows[pid]["num_keywords"] for pid in range(1, 11)] == [2, 1, 3, 1, 1, 1, 1, 1, 1, 1]
    # Record fields from the newest record; first and last seen over all keywords.
    assert rows[1]["title"] == "new title"
    assert (rows[1]["first_seen"], rows[1]["last_seen"]) == (day(0), day(5))
    assert rows[3]["title"] == "newest 3"
    assert (rows[3]["first_seen"], rows[3]["last_seen"]) == (day(1), day(9))
    assert rows[3]["tags"] == ["paris", "t3"] and rows[3]["views"] == 30

    assert result.rows == 10 and result.records_read == 13
    assert result.multi_keyword_photos == 2
    assert result.keywords_read == [EIFFEL, PARIS, TOUR]
    assert result.missing_keywords == ["louvre"]
    assert result.photos_with_images == 9
    assert result.preview.num_rows == 10 and "keywords" in result.preview.column_names
    assert {p.stage for p in progress} == {"records", "images", "duplicates", "write"}
    assert progress[-1] == CatalogProgress("write", 3, 3)
    # Atomic write: nothing but the catalog in its folder.
    assert [p.name for p in layout.catalog_dir.iterdir()] == ["catalog.parquet"]


def test_image_prefers_an_ok_row_and_points_at_real_files(layout):
    plant(layout)
    build_catalog(layout)
    rows = rows_by_id(layout)

    # Photo 1 failed under "eiffel tower" and is stored under "paris".
    assert rows[1]["image_status"] == "ok"
    assert rows[1]["image_path"].startswith("images/paris/0000/1_")
    # Photo 3's newest record is under "tour eiffel ñ" where its download failed; the image is the
    # ok one of the alphabetically first keyword.
    assert rows[3]["image_status"] == "ok"
    assert rows[3]["image_path"].startswith("images/eiffel%20tower/0000/3_")
    assert rows[4]["image_status"] == "too_small"
    assert rows[4]["image_path"] is None and rows[4]["image_sha256"] is None and rows[4]["image_width"] is None
    for row in rows.values():
        if row["image_status"] == "ok":
            data = layout.resolve_relative(row["image_path"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == row["image_sha256"]
            assert (row["image_width"], row["image_height"]) == (16, 12)


def test_exact_and_near_duplicates_are_grouped(layout, caplog):
    phash = plant(layout)
    with caplog.at_level(logging.INFO, logger="flickr_assets"):
        result = build_catalog(layout)
    # The search's plan is logged before it starts (a long search is visible in a run's log).
    assert re.search(r"near-duplicate search over \d+ distinct hashes within 6 bits: every pair", caplog.text)
    rows = rows_by_id(layout)

    exact = {pid: row["exact_duplicate_of"] for pid, row in rows.items() if row["exact_duplicate_of"] is not None}
    assert exact == {5: 5, 6: 5}
    near = {pid: row["near_duplicate_group"] for pid, row in rows.items() if row["near_duplicate_group"] is not None}
    # 7-8 are 3 bits apart and 8-9 5 bits: one chained group although 7-9 are 8 bits apart.
    assert near == {5: 5, 6: 5, 7: 7, 8: 7, 9: 7}
    assert rows[7]["image_phash"] == phash[7]
    assert (result.exact_duplicate_groups, result.exact_duplicate_photos) == (1, 2)
    assert (result.near_duplicate_groups, result.near_duplicate_photos) == (2, 5)

    build_catalog(layout, near_distance=4)
    near = {pid: row["near_duplicate_group"] for pid, row in rows_by_id(layout).items()}
    assert [near[pid] for pid in (5, 6, 7, 8, 9)] == [5, 5, 7, 7, None]


def test_only_the_requested_keywords_are_merged(layout):
    plant(layout)
    result = build_catalog(layout, [PARIS, "never run"])
    rows = rows_by_id(layout)
    assert sorted(rows) == [1, 2, 3, 6, 8]
    assert all(row["keywords"] == [PARIS] for row in rows.values())
    assert rows[3]["title"] == "photo 3" and rows[3]["last_seen"] == day(2)
    assert result.missing_keywords == ["never run"]
    assert result.exact_duplicate_groups == 0


def test_keyword_without_manifest_has_no_images(layout):
    plant(layout)
    layout.manifest_file(TOUR).unlink()
    result = build_catalog(layout)
    rows = rows_by_id(layout)
    assert result.keywords_without_manifest == [TOUR]
    assert rows[9]["image_status"] is None and rows[9]["near_duplicate_group"] is None
    assert rows[3]["image_status"] == "ok"  # still stored under another keyword


def test_empty_data_folder_writes_an_empty_catalog(layout):
    result = build_catalog(layout, ["nothing yet"])
    table = pq.read_table(layout.catalog_file)
    assert table.num_rows == 0 and table.schema.names == CATALOG.names
    assert result.rows == 0 and result.missing_keywords == ["nothing yet"]


def test_bad_records_file_is_named_and_the_old_catalog_kept(layout):
    plant(layout)
    build_catalog(layout)
    before = layout.catalog_file.read_bytes()
    layout.records_file(PARIS).write_bytes(b"not parquet")
    with pytest.raises(CatalogError, match=r"keyword=paris/photos\.parquet: not a readable Parquet file"):
        build_catalog(layout)
    assert layout.catalog_file.read_bytes() == before
    assert [p.name for p in layout.catalog_dir.iterdir()] == ["catalog.parquet"]


def test_a_failed_build_cancels_its_background_near_duplicate_search(layout, monkeypatch):
    import flickr_assets.catalog.build as build_module

    plant(layout)
    layout.records_file(PARIS).write_bytes(b"not parquet")
    cancelled = []
    search_near = build_module.search_near

    def watched(hashes, max_distance, cancel):
        cancelled.append(cancel.wait(timeout=30))  # set once the records stage fails
        return search_near(hashes, max_distance, cancel)

    monkeypatch.setattr(build_module, "search_near", watched)
    with pytest.raises(CatalogError, match="not a readable Parquet file"):
        build_catalog(layout)
    assert cancelled == [True]


def test_records_without_photo_ids_are_refused(layout):
    plant(layout)
    write_records(layout, PARIS, [])
    pq.write_table(pa.table({"title": ["x"]}), layout.records_file(PARIS))
    with pytest.raises(CatalogError, match=r"keyword=paris/photos\.parquet: missing column\(s\) photo_id"):
        build_catalog(layout)


def test_row_groups_spanning_keywords_and_codec_give_the_same_rows(layout, monkeypatch):
    plant(layout)
    build_catalog(layout)
    expected = rows_by_id(layout)
    monkeypatch.setattr("flickr_assets.catalog.build.ROW_GROUP_ROWS", 2)  # a row group every few photos
    build_catalog(layout, compression="none")
    parquet = pq.ParquetFile(layout.catalog_file)
    assert parquet.num_row_groups >= 3
    assert parquet.metadata.row_group(0).column(0).compression == "UNCOMPRESSED"
    assert rows_by_id(layout) == expected
    build_catalog(layout, compression="zstd")
    assert pq.ParquetFile(layout.catalog_file).metadata.row_group(0).column(0).compression == "ZSTD"
    build_catalog(layout)
    assert pq.ParquetFile(layout.catalog_file).metadata.row_group(0).column(0).compression == "SNAPPY"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"near_distance": -1}, r"near_distance must be between 0 and 32 bits, not -1"),
        ({"near_distance": 33}, r"near_distance must be between 0 and 32 bits, not 33"),
        ({"compression": "rar"}, r"compression must be one of none, snappy, .*, not 'rar'"),
    ],
)
def test_bad_options_fail_before_anything_is_read_or_written(layout, options, message):
    plant(layout)
    build_catalog(layout)
    before = layout.catalog_file.read_bytes()
    with pytest.raises(ValueError, match=message):
        build_catalog(layout, **options)
    assert layout.catalog_file.read_bytes() == before


def test_manifest_rows_in_another_order_than_the_records_are_matched_by_id(layout):
    plant(layout)
    build_catalog(layout)
    expected = rows_by_id(layout)
    manifest = pq.read_table(layout.manifest_file(PARIS))
    orphan = manifest.slice(0, 1).set_column(0, manifest.schema.field(0), pa.array([99], pa.int64()))
    shuffled = pa.concat_tables([manifest.take([4, 2, 0, 3, 1]), orphan])
    pq.write_table(shuffled, layout.manifest_file(PARIS))
    result = build_catalog(layout)
    assert result.orphan_manifest_rows == 1
    assert rows_by_id(layout) == expected


def test_exact_duplicates_use_the_served_digest_where_a_manifest_has_it(layout):
    plant(layout)
    manifest = pq.read_table(layout.manifest_file(PARIS))
    ids = manifest["photo_id"].to_pylist()
    served = ["ab" * 32 if pid in (1, 2) else None for pid in ids]  # 1 and 2: stored differently, served alike
    column = manifest.schema.get_field_index("source_sha256")
    manifest = manifest.set_column(column, "source_sha256", pa.array(served, pa.string()))
    pq.write_table(manifest, layout.manifest_file(PARIS))
    result = build_catalog(layout)
    rows = rows_by_id(layout)

    exact = {pid: row["exact_duplicate_of"] for pid, row in rows.items() if row["exact_duplicate_of"] is not None}
    # 5 (eiffel, no served digest) and 6 (paris, none given) still match by the stored file's digest.
    assert exact == {1: 1, 2: 1, 5: 5, 6: 5}
    assert rows[1]["image_sha256"] != rows[2]["image_sha256"]  # the catalog keeps the stored file's digest
    assert (result.exact_duplicate_groups, result.exact_duplicate_photos) == (2, 4)
