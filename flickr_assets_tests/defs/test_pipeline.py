"""The three assets end to end, in process, against the simulator over real HTTP."""

import itertools

import dagster as dg
import pyarrow.parquet as pq
import pytest

from flickr_assets.defs.assets import photo_catalog, photo_images, photo_records
from flickr_assets.defs.checks import CHECKS, images_match_manifest, records_are_valid
from flickr_assets.defs.partitions import keyword_partitions
from flickr_assets.defs.queries import query_defaults_from_env
from flickr_assets.defs.resources import resources_from_env
from flickr_assets.storage.layout import DataLayout
from flickr_assets.storage.schemas import CATALOG, MANIFEST, RECORDS

ASSETS = [photo_records, photo_images, photo_catalog, *CHECKS]
# The sample keywords file's keywords and their has_geo; the simulator plants photos in each pair of them.
SAMPLE_QUERIES = (("colosseum", True), ("stonehenge", True), ("golden gate bridge", None))


def _resources() -> dict:
    return {**resources_from_env(), "query_defaults": query_defaults_from_env()}


def _materialize(selection, partition_key=None, **kwargs) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        ASSETS,
        selection=selection,
        partition_key=partition_key,
        resources=_resources(),
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
        **kwargs,
    )


def test_definitions_load_with_sample_keywords():
    from flickr_assets.definitions import defs

    dg.Definitions.validate_loadable(defs)
    assert keyword_partitions.get_partition_keys() == ["colosseum", "stonehenge", "golden gate bridge"]
    graph = defs.resolve_asset_graph()
    assert {key.to_user_string() for key in graph.get_all_asset_keys()} == {
        "photo_records",
        "photo_images",
        "photo_catalog",
    }
    assert defs.resolve_job_def("keyword_job").executor_def.name == "in_process"
    # Each asset's table columns show in the UI's Columns tab before any materialisation.
    for key, schema in (("photo_records", RECORDS), ("photo_images", MANIFEST), ("photo_catalog", CATALOG)):
        columns = graph.get(dg.AssetKey(key)).metadata["dagster/column_schema"].columns
        assert [(c.name, c.type) for c in columns] == [(f.name, str(f.type)) for f in schema]
        assert [c.name for c in columns if c.constraints.unique] == ["photo_id"]


@pytest.mark.slow
def test_records_images_catalog_match_the_simulator(pipeline_env, sim):
    layout = DataLayout.at(pipeline_env["FLICKR_DATA_DIR"])
    for keyword, has_geo in SAMPLE_QUERIES:
        result = _materialize(dg.AssetSelection.assets(photo_records, photo_images), partition_key=keyword)
        assert result.success, keyword
        truth = sim.truth.search_ids(text=keyword, has_geo=has_geo)
        ids = pq.read_table(layout.records_file(keyword), columns=["photo_id"])["photo_id"].to_pylist()
        assert sorted(ids) == sorted(truth)

        records_md = result.asset_materializations_for_node("photo_records")[0].metadata
        assert records_md["rows"].value == records_md["dagster/partition_row_count"].value == len(truth)
        assert records_md["api_calls"].value >= 1 and records_md["calls_per_1000_photos"].value > 0
        assert records_md["skipped_photos"].value == 0 and "skipped_reasons" not in records_md
        assert records_md["retry_backoff_seconds"].value == 0 and records_md["api_budget_wait_seconds"].value >= 0
        assert records_md["latest_upload"].value <= records_md["searched_until"].value
        assert "photo_id" in records_md["preview"].value
        images_md = result.asset_materializations_for_node("photo_images")[0].metadata
        assert images_md["records"].value == images_md["dagster/partition_row_count"].value == len(truth)
        assert images_md["contact_sheet"].value.startswith("![") and images_md["contact_sheet_path"].value
        evaluations = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
        assert evaluations == {"records_are_valid": True, "images_match_manifest": True}

        manifest = pq.read_table(layout.manifest_file(keyword), columns=["photo_id", "status"]).to_pylist()
        assert {row["photo_id"] for row in manifest} == truth
        for row in manifest:
            assert row["status"] == sim.truth.download(row["photo_id"]).status, row

    # A run with nothing to do keeps its metadata small (the event log holds every run's).
    again = _materialize(dg.AssetSelection.assets(photo_images), partition_key=SAMPLE_QUERIES[0][0])
    images_md = again.asset_materializations_for_node("photo_images")[0].metadata
    assert images_md["handled_this_run"].value == 0 and "contact_sheet" not in images_md
    assert images_md["contact_sheet_path"].value

    result = _materialize(dg.AssetSelection.assets(photo_catalog))
    assert result.success
    catalog_md = result.asset_materializations_for_node("photo_catalog")[0].metadata
    catalog_rows = pq.read_metadata(layout.catalog_file).num_rows
    assert catalog_md["rows"].value == catalog_md["dagster/row_count"].value == catalog_rows
    assert {"records", "images", "duplicates", "write"} <= set(catalog_md["stage_seconds"].value)
    assert catalog_md["keywords_without_images"].value == [] and catalog_md["keywords"].value == 3
    assert catalog_md["near_duplicate_search"].value.startswith("hashes within 6 bits; every pair compared (~")
    catalog = pq.read_table(layout.catalog_file, columns=["photo_id", "keywords"]).to_pylist()
    expected: dict[int, set[str]] = {}
    for keyword, has_geo in SAMPLE_QUERIES:
        for photo_id in sim.truth.search_ids(text=keyword, has_geo=has_geo):
            expected.setdefault(photo_id, set()).add(keyword)
    assert {row["photo_id"]: set(row["keywords"]) for row in catalog} == expected
    # Each pair of the three keywords shares photos.
    shared = {frozenset(keywords) for keywords in expected.values() if len(keywords) > 1}
    assert {frozenset(pair) for pair in itertools.combinations([k for k, _ in SAMPLE_QUERIES], 2)} <= shared

    # Duplicates the simulator planted among the stored images are grouped.
    columns = ["photo_id", "image_status", "exact_duplicate_of", "near_duplicate_group"]
    rows = {row["photo_id"]: row for row in pq.read_table(layout.catalog_file, columns=columns).to_pylist()}
    checked = 0
    for kind, ids in sim.truth.duplicate_groups():
        if not all(rows.get(i, {}).get("image_status") == "ok" for i in ids):
            continue
        column = "exact_duplicate_of" if kind == "exact" else "near_duplicate_group"
        groups = {rows[i][column] for i in ids}
        assert len(groups) == 1 and None not in groups, (kind, ids, groups)
        checked += 1
    assert checked >= 2
    assert {e.check_name: e.passed for e in result.get_asset_check_evaluations()} == {"catalog_is_consistent": True}
    assert pq.ParquetFile(layout.catalog_file).metadata.row_group(0).column(0).compression == "SNAPPY"

    # Run options: another codec, and only identical perceptual hashes count as near duplicates.
    config = {"ops": {"photo_catalog": {"config": {"near_distance": 0, "compression": "zstd"}}}}
    result = _materialize(dg.AssetSelection.assets(photo_catalog), run_config=config)
    assert result.success
    catalog_md = result.asset_materializations_for_node("photo_catalog")[0].metadata
    assert catalog_md["near_duplicate_search"].value.startswith("hashes within 0 bits")
    assert pq.ParquetFile(layout.catalog_file).metadata.row_group(0).column(0).compression == "ZSTD"


@pytest.mark.parametrize(
    ("asset", "partition", "config", "message"),
    [
        (photo_records, "colosseum", {"overlap_hours": -2}, "overlap_hours must not be negative, not -2"),
        (photo_images, "colosseum", {"quality": 0}, "bad download options: quality=0 (must be from 1 to 100)"),
        (photo_catalog, None, {"compression": "rar"}, "compression must be one of none, snappy"),
        (photo_catalog, None, {"near_distance": 40}, "near_distance must be between 0 and 32 bits, not 40"),
    ],
    ids=["records-overlap", "images-quality", "catalog-codec", "catalog-distance"],
)
def test_bad_run_options_fail_at_once_with_one_line(pipeline_env, sim, asset, partition, config, message):
    layout = DataLayout.at(pipeline_env["FLICKR_DATA_DIR"])
    assert _materialize(dg.AssetSelection.assets(photo_records), partition_key="colosseum").success
    run_config = {"ops": {asset.op.name: {"config": config}}}
    result = _materialize(dg.AssetSelection.assets(asset), partition_key=partition, run_config=run_config)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    description = failure.step_failure_data.user_failure_data.description
    assert description.startswith(message) and "\n" not in description
    assert not any(e.event_type_value == "STEP_UP_FOR_RETRY" for e in result.all_events)
    assert not layout.manifest_file("colosseum").exists() and not layout.catalog_file.exists()


def test_missing_key_fails_at_once_with_one_clear_line(pipeline_env, monkeypatch, sim):
    monkeypatch.delenv("FLICKR_API_KEY")
    result = _materialize(dg.AssetSelection.assets(photo_records), partition_key="colosseum")
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    description = failure.step_failure_data.user_failure_data.description
    assert description.startswith("FLICKR_API_KEY is not set") and "\n" not in description
    assert not any(e.event_type_value == "STEP_UP_FOR_RETRY" for e in result.all_events)
    assert sim.stats.snapshot()["rest_calls"] == 0


def test_rejected_key_fails_in_one_call_without_printing_it(pipeline_env, monkeypatch, sim):
    wrong_key = "0123456789abcdef" * 2
    monkeypatch.setenv("FLICKR_API_KEY", wrong_key)
    result = _materialize(dg.AssetSelection.assets(photo_records), partition_key="stonehenge")
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    description = failure.step_failure_data.user_failure_data.description
    assert "FLICKR_API_KEY" in description and "Key not found" in description
    assert wrong_key not in description
    assert not any(e.event_type_value == "STEP_UP_FOR_RETRY" for e in result.all_events)
    assert sim.stats.snapshot()["rest_calls"] == 1


@pytest.mark.parametrize(
    ("asset", "partition"),
    [(photo_records, "colosseum"), (photo_images, "colosseum"), (photo_catalog, None)],
    ids=["records", "images", "catalog"],
)
def test_unwritable_data_folder_fails_at_once_with_one_line(pipeline_env, monkeypatch, sim, tmp_path, asset, partition):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("FLICKR_DATA_DIR", str(blocker / "data"))
    result = _materialize(dg.AssetSelection.assets(asset), partition_key=partition)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    description = failure.step_failure_data.user_failure_data.description
    assert description == (
        f"cannot create the data folder {blocker / 'data'}: Not a directory — "
        "set FLICKR_DATA_DIR to a folder this user can write"
    )
    assert not any(e.event_type_value == "STEP_UP_FOR_RETRY" for e in result.all_events)
    assert sim.stats.snapshot()["rest_calls"] == 0 and blocker.read_text() == "not a folder"


def test_checks_run_on_their_own_check_every_keyword_and_fail_on_a_missing_image(pipeline_env, sim):
    layout = DataLayout.at(pipeline_env["FLICKR_DATA_DIR"])
    assert _materialize(dg.AssetSelection.assets(photo_records, photo_images), partition_key="colosseum").success
    manifest = pq.read_table(layout.manifest_file("colosseum"), columns=["photo_id", "status", "path"]).to_pylist()
    removed = next(row for row in manifest if row["status"] == "ok")
    layout.resolve_relative(removed["path"]).unlink()

    # The UI's "Execute" on a check runs it without a partition: it checks every materialised keyword.
    checks = dg.AssetSelection.checks(records_are_valid, images_match_manifest)
    result = _materialize(checks)
    assert result.success
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert evaluations["records_are_valid"].passed
    assert evaluations["records_are_valid"].description == "records of 1 keyword: all good"
    images = evaluations["images_match_manifest"]
    assert not images.passed and images.description == "1 problem(s) with images of 1 keyword"
    assert f"photo {removed['photo_id']}: image {removed['path']} is missing" in images.metadata["first_problems"].value


@pytest.mark.parametrize(
    ("damaged", "message"),
    [("records", "records file {path} is not readable Parquet"), ("manifest", "{path}: unreadable manifest")],
)
def test_a_damaged_file_fails_photo_images_at_once_naming_it(pipeline_env, sim, damaged, message):
    layout = DataLayout.at(pipeline_env["FLICKR_DATA_DIR"])
    assert _materialize(dg.AssetSelection.assets(photo_records), partition_key="colosseum").success
    path = layout.records_file("colosseum") if damaged == "records" else layout.manifest_file("colosseum")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"PAR1 not parquet at all")
    result = _materialize(dg.AssetSelection.assets(photo_images), partition_key="colosseum")
    assert not result.success
    assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]  # nothing to wait for
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    description = failure.step_failure_data.user_failure_data.description
    assert description.startswith(message.format(path=path)) and "\n" not in description
    assert path.read_bytes() == b"PAR1 not parquet at all"  # left for the user to look at


def _failure_description(result: dg.ExecuteInProcessResult) -> str:
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    return failure.step_failure_data.user_failure_data.description


def test_a_damaged_records_file_fails_harvest_and_catalog_at_once_and_full_refresh_mends_it(pipeline_env, sim):
    layout = DataLayout.at(pipeline_env["FLICKR_DATA_DIR"])
    assert _materialize(dg.AssetSelection.assets(photo_records), partition_key="colosseum").success
    path = layout.records_file("colosseum")
    path.write_bytes(b"PAR1 not parquet at all")
    sim.stats.reset()
    for asset, partition, start in (
        (photo_records, "colosseum", f"records file {path} is not readable Parquet"),
        (photo_catalog, None, f"{path}: not a readable Parquet file"),
    ):
        result = _materialize(dg.AssetSelection.assets(asset), partition_key=partition)
        assert not result.success
        assert not [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]  # it would fail again
        description = _failure_description(result)
        assert description.startswith(start) and "\n" not in description, description
    assert "full_refresh" in _failure_description(
        _materialize(dg.AssetSelection.assets(photo_records), partition_key="colosseum")
    )
    assert sim.stats.snapshot()["rest_calls"] == 0  # found before any search, not after a whole walk

    config = {"ops": {"photo_records": {"config": {"full_refresh": True}}}}
    result = _materialize(dg.AssetSelection.assets(photo_records), partition_key="colosseum", run_config=config)
    assert result.success
    ids = set(pq.read_table(path, columns=["photo_id"])["photo_id"].to_pylist())
    assert ids == sim.truth.search_ids(text="colosseum", has_geo=True)


def test_a_keyword_s_failed_check_stays_visible_after_other_keywords_run(pipeline_env, sim):
    layout = DataLayout.at(pipeline_env["FLICKR_DATA_DIR"])
    both = dg.AssetSelection.assets(photo_records, photo_images)
    assert _materialize(both, partition_key="colosseum").success
    manifest = pq.read_table(layout.manifest_file("colosseum"), columns=["status", "path"]).to_pylist()
    damaged = layout.resolve_relative(next(row["path"] for row in manifest if row["status"] == "ok"))
    original = damaged.read_bytes()
    damaged.write_bytes(original + b"\0")

    def images_check(partition: str) -> dg.AssetCheckEvaluation:
        result = _materialize(both, partition_key=partition)
        assert result.success, partition  # a warning about another keyword blocks nothing
        return {e.check_name: e for e in result.get_asset_check_evaluations()}["images_match_manifest"]

    own = images_check("colosseum")
    assert not own.passed and own.severity == dg.AssetCheckSeverity.ERROR
    assert own.description == "1 problem(s) with images of 'colosseum'"
    other = images_check("stonehenge")  # its own images are fine; colosseum's problem is still known
    assert not other.passed and other.severity == dg.AssetCheckSeverity.WARN
    assert other.description == (
        "images of 'stonehenge': all good; 1 other keyword had problems at its last check: 'colosseum' (1)"
    )
    assert other.metadata["keywords_with_problems"].value == {"colosseum": 1}

    damaged.write_bytes(original)  # mended and checked again: every keyword is clean
    assert images_check("colosseum").passed and images_check("stonehenge").passed
