"""The records store: merge keeps one row per photo_id, first_seen survives, crashes leave the old file."""

import json
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flickr_assets.storage.layout import DataLayout
from flickr_assets.storage.records import RecordsWriter, append_coverage, read_state, write_state
from flickr_assets.storage.schemas import COVERAGE, RECORDS, SchemaMismatch

T0 = datetime(2024, 1, 1, tzinfo=UTC)
T1 = T0 + timedelta(days=3)


def row(photo_id: int, seen: datetime, title: str = "t") -> dict:
    return {
        "photo_id": photo_id,
        "keyword": "k",
        "owner": "1@N01",
        "secret": "s",
        "server": "1",
        "title": title,
        "tags": ["a", "b"],
        "date_upload": T0 - timedelta(days=photo_id),
        "date_taken": datetime(2020, 1, 1),
        "first_seen": seen,
        "last_seen": seen,
    }


def harvest(layout: DataLayout, rows: list[dict], replace: bool = False, row_group_size: int = 7):
    with RecordsWriter(layout, "k", row_group_size=row_group_size) as writer:
        writer.add(rows)
        return writer.commit(replace=replace)


def read(layout: DataLayout) -> dict[int, dict]:
    table = pq.read_table(layout.records_file("k"))
    assert table.schema.names == RECORDS.names
    table = table.cast(RECORDS)  # Parquet keeps second timestamps as ms; values are whole seconds
    rows = table.to_pylist()
    assert len(rows) == len({r["photo_id"] for r in rows}), "duplicate photo_id"
    return {r["photo_id"]: r for r in rows}


def test_merge_keeps_one_row_per_photo_with_old_first_seen(tmp_path):
    layout = DataLayout.at(tmp_path)
    first = harvest(layout, [row(i, T0, "old") for i in range(1, 51)])
    assert (first.rows, first.new_rows, first.updated_rows) == (50, 50, 0)

    second = harvest(layout, [row(i, T1, "new") for i in range(40, 81)])
    assert (second.rows, second.new_rows, second.updated_rows, second.dropped_rows) == (80, 30, 11, 0)
    rows = read(layout)
    assert set(rows) == set(range(1, 81))
    assert rows[10]["title"] == "old" and rows[10]["last_seen"] == T0
    assert rows[45]["title"] == "new" and rows[45]["first_seen"] == T0 and rows[45]["last_seen"] == T1
    assert rows[70]["first_seen"] == T1 and rows[70]["tags"] == ["a", "b"]


def test_duplicates_inside_one_harvest_keep_the_last_copy(tmp_path):
    layout = DataLayout.at(tmp_path)
    result = harvest(layout, [row(1, T0, "a"), row(2, T0), row(1, T0, "b"), row(1, T0, "c"), row(3, T0)])
    assert result.rows == 3
    assert read(layout)[1]["title"] == "c"


def test_full_refresh_drops_rows_not_found_again(tmp_path):
    layout = DataLayout.at(tmp_path)
    harvest(layout, [row(i, T0) for i in range(1, 21)])
    result = harvest(layout, [row(i, T1) for i in range(11, 31)], replace=True)
    assert (result.rows, result.dropped_rows, result.new_rows, result.updated_rows) == (20, 10, 10, 10)
    rows = read(layout)
    assert set(rows) == set(range(11, 31)) and rows[15]["first_seen"] == T0


def test_failure_before_commit_leaves_the_previous_file_and_no_scratch(tmp_path):
    layout = DataLayout.at(tmp_path)
    harvest(layout, [row(i, T0) for i in range(1, 11)])
    before = layout.records_file("k").read_bytes()
    with pytest.raises(RuntimeError), RecordsWriter(layout, "k", row_group_size=3) as writer:
        writer.add([row(i, T1) for i in range(100, 120)])
        raise RuntimeError("killed mid-harvest")
    assert layout.records_file("k").read_bytes() == before
    assert [p.name for p in layout.records_dir("k").iterdir()] == ["photos.parquet"]


def test_empty_harvest_on_empty_store_writes_an_empty_typed_file(tmp_path):
    layout = DataLayout.at(tmp_path)
    assert harvest(layout, []).rows == 0
    assert read(layout) == {}


def test_coverage_appends_and_state_round_trips(tmp_path):
    layout = DataLayout.at(tmp_path)
    window = {
        "harvest_started": T0,
        "window_start": T0 - timedelta(days=1),
        "window_end": T0,
        "reported_total": 12,
        "rows_received": 12,
        "new_rows": 11,
        "calls": 1,
    }
    assert append_coverage(layout, "k", [window]) == 1
    assert append_coverage(layout, "k", [window, {**window, "reported_total": None}]) == 3
    table = pq.read_table(layout.coverage_file("k"))
    assert table.schema.names == COVERAGE.names and table.cast(COVERAGE).num_rows == 3
    assert table.column("reported_total").to_pylist() == [12, 12, None]

    assert read_state(layout, "k") is None
    write_state(layout, "k", {"fingerprint": "abc", "harvested_until": T0.isoformat()})
    assert read_state(layout, "k")["fingerprint"] == "abc"
    layout.harvest_state_file("k").write_text("{not json")
    assert read_state(layout, "k") is None  # damaged state only costs a full harvest
    layout.harvest_state_file("k").write_text(json.dumps({"version": 999}))
    assert read_state(layout, "k") is None


def _rewrite(path, table) -> None:
    pq.write_table(table, path)


def test_a_file_of_another_version_is_merged_new_column_null_old_column_dropped(tmp_path):
    layout = DataLayout.at(tmp_path)
    harvest(layout, [row(i, T0, "old") for i in range(1, 11)])
    path = layout.records_file("k")
    older = pq.read_table(path).drop_columns(["views"])  # written before `views` existed ...
    _rewrite(path, older.append_column("retired", pa.array(["x"] * older.num_rows)))  # ... with one since retired

    merged = harvest(layout, [row(i, T1, "new") for i in range(8, 13)])
    assert (merged.rows, merged.new_rows, merged.updated_rows) == (12, 2, 3)
    rows = read(layout)  # exactly RECORDS' columns again
    assert rows[1]["title"] == "old" and rows[1]["views"] is None
    assert rows[9]["title"] == "new" and rows[9]["first_seen"] == T0


def test_a_file_that_cannot_be_merged_names_itself_and_the_way_out(tmp_path):
    layout = DataLayout.at(tmp_path)
    harvest(layout, [row(i, T0) for i in range(1, 4)])
    path = layout.records_file("k")
    before = path.read_bytes()
    table = pq.read_table(path)
    _rewrite(path, table.set_column(table.schema.get_field_index("tags"), "tags", pa.array(["a b"] * 3)))
    changed = path.read_bytes()
    with pytest.raises(SchemaMismatch, match=f"records file {path} has columns of other types.*full_refresh"):
        harvest(layout, [row(5, T1)])
    assert path.read_bytes() == changed != before  # left as it was
