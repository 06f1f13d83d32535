"""check_catalog finds problems planted in a real catalog file."""

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from flickr_assets.catalog import build_catalog, check_catalog
from flickr_assets.storage.layout import DataLayout
from flickr_assets_tests.catalog.planted import PARIS, TOUR, plant


@pytest.fixture
def layout(tmp_path) -> DataLayout:
    layout = DataLayout.at(tmp_path / "data")
    plant(layout)
    return layout


def rewrite(layout: DataLayout, change) -> None:
    parquet = pq.ParquetFile(layout.catalog_file)
    table = change(parquet.read())
    pq.write_table(table.replace_schema_metadata(parquet.schema_arrow.metadata), layout.catalog_file)


def test_a_fresh_catalog_has_no_problems(layout):
    build_catalog(layout)
    assert check_catalog(layout) == []


def test_missing_catalog(layout):
    assert check_catalog(layout) == [f"{layout.catalog_file}: no catalog file"]


def test_missing_image_is_reported(layout):
    build_catalog(layout)
    path = pq.read_table(layout.catalog_file, filters=[("photo_id", "=", 2)])["image_path"][0].as_py()
    layout.resolve_relative(path).unlink()
    assert check_catalog(layout) == [f"photo 2: image {path} is missing"]


def test_duplicate_ids_and_wrong_keyword_lists(layout):
    build_catalog(layout)

    def plant_problems(table: pa.Table) -> pa.Table:
        twice = table.filter(pc.equal(table["photo_id"], 2))
        table = pa.concat_tables([table, twice])
        ids, lists = table["photo_id"].to_pylist(), table["keywords"].to_pylist()
        keywords = pa.array([[TOUR] if pid == 8 else kws for pid, kws in zip(ids, lists, strict=True)])
        return table.set_column(table.column_names.index("keywords"), "keywords", keywords)

    rewrite(layout, plant_problems)
    problems = check_catalog(layout)
    assert problems == [
        "1 photo_id values appear more than once in the catalog (e.g. 2)",
        f"photo 8: keywords ['{TOUR}'] in the catalog, ['{PARIS}'] in the records",
    ]


def test_catalog_and_records_disagree_on_photos(layout):
    build_catalog(layout)
    rewrite(layout, lambda table: table.filter(pc.not_equal(table["photo_id"], 4)))
    assert check_catalog(layout) == ["1 photos with records are missing from the catalog (e.g. 4)"]


def test_keywords_default_to_those_the_catalog_was_built_from(layout):
    # A keyword removed from the keywords file keeps its data; a catalog built without it is fine.
    build_catalog(layout, [PARIS])
    assert check_catalog(layout) == []
    assert check_catalog(layout, [PARIS, TOUR]) == [
        "3 photos with records are missing from the catalog (e.g. 4, 9, 10)",
        f"photo 3: keywords ['{PARIS}'] in the catalog, ['{PARIS}', '{TOUR}'] in the records",
    ]
