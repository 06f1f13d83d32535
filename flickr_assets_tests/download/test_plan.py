"""Planning: deterministic shards in record order, what is skipped, what is tried again."""

import datetime as dt
from collections import Counter

import pyarrow as pa
import pytest

from flickr_assets.download.options import DownloadOptions
from flickr_assets.download.plan import (
    ImagePaths,
    RecordsError,
    choose_source,
    embedded_metadata,
    image_file_name,
    iter_tasks,
    known_too_small,
    open_records,
    plan_run,
)
from flickr_assets.imaging.metadata import metadata_digest
from flickr_assets.storage.layout import DataLayout

NOW = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
OPTIONS = DownloadOptions(files_per_shard=10)


def records(ids: list[int], **overrides: object) -> pa.Table:
    rows = []
    for photo_id in ids:
        row = {
            "photo_id": photo_id,
            "secret": f"s{photo_id}",
            "server": "65535",
            "owner": "12345@N00",
            "url_l": f"http://127.0.0.1:1/65535/{photo_id}_s{photo_id}_b.jpg",
            "width_l": 1024,
            "height_l": 768,
            "url_o": None,
            "width_o": None,
            "height_o": None,
            "title": f"photo {photo_id}",
        }
        rows.append(row | overrides)
    return pa.Table.from_pylist(rows)


def row(photo_id: int, status: str, path: str | None = None) -> dict:
    return {"photo_id": photo_id, "status": status, "path": path, "attempts": 1, "updated_at": NOW}


def digest_of(photo_id: int, **overrides: object) -> str:
    return metadata_digest(embedded_metadata(records([photo_id], **overrides).to_pylist()[0]))


@pytest.fixture
def layout(tmp_path) -> DataLayout:
    return DataLayout.at(tmp_path)


def shards(plan) -> dict[int, int]:
    return {photo_id: task.shard for photo_id, task in plan.tasks.items()}


def test_fresh_plan_fills_shards_in_record_order(layout):
    ids = [9000 - i for i in range(25)]  # record order, not ID order, decides
    plan = plan_run(layout, "k", records(ids), {}, {}, OPTIONS)
    assert plan.records == 25 and plan.skipped == 0
    assert list(plan.tasks) == ids
    assert [shards(plan)[i] for i in ids] == [0] * 10 + [1] * 10 + [2] * 5
    assert plan.tasks[9000].file_name == "9000_s9000_65535_12345@N00.jpg"


def test_duplicate_records_are_planned_once(layout):
    plan = plan_run(layout, "k", records([1, 2, 1, 3]), {}, {}, OPTIONS)
    assert plan.records == 3 and list(plan.tasks) == [1, 2, 3]


def test_replanning_after_a_crash_gives_the_same_shards(layout):
    ids = list(range(1, 31))
    first = plan_run(layout, "k", records(ids), {}, {}, OPTIONS)
    # The crashed run finished photos out of order across a shard boundary; its rows are only in the journal.
    journal = {}
    for photo_id in [1, 2, 3, 11, 12, 25]:
        shard = first.tasks[photo_id].shard
        path = f"images/k/{shard:04d}/{first.tasks[photo_id].file_name}"
        journal[photo_id] = row(photo_id, "not_found", None) if photo_id == 2 else row(photo_id, "failed", path)
    again = plan_run(layout, "k", records(ids), {}, journal, OPTIONS)
    assert shards(again) == {i: s for i, s in shards(first).items() if i != 2}
    assert again.tasks[25].shard == 2


def test_photos_an_interrupted_run_placed_keep_their_places_when_the_records_were_reordered(layout):
    options = DownloadOptions(files_per_shard=2)
    first = plan_run(layout, "k", records([1, 2]), {}, {}, options)
    assert shards(first) == {1: 0, 2: 0}
    path = f"images/k/0000/{first.tasks[1].file_name}"
    journal = {1: row(1, "failed", path)}  # killed after photo 1; a harvest then moved it to the end
    again = plan_run(layout, "k", records([2, 3, 4, 1]), {}, journal, options)
    assert shards(again) == {2: 0, 3: 1, 4: 1, 1: 0}  # shard 0 keeps a place for photo 1: never 3 files
    assert max(Counter(shards(again).values()).values()) <= 2


def test_new_photos_go_to_the_last_shard_with_room_and_old_ones_keep_theirs(layout):
    merged = {}
    for i in range(1, 16):  # shard 0 full, shard 1 has 5
        shard = 0 if i <= 10 else 1
        merged[i] = row(i, "failed", f"images/k/{shard:04d}/{i}_s{i}_65535_12345@N00.jpg")
    plan = plan_run(layout, "k", records([*range(20, 30), *range(1, 16)]), merged, merged, OPTIONS)
    got = shards(plan)
    assert [got[i] for i in range(20, 30)] == [1] * 5 + [2] * 5
    assert [got[i] for i in range(1, 16)] == [0] * 10 + [1] * 5


def test_final_rows_are_skipped_ok_rows_only_while_their_file_exists(layout):
    stored = layout.image_file("k", 0, "1_s1_65535_12345@N00.jpg")
    stored.parent.mkdir(parents=True)
    stored.write_bytes(b"jpeg")
    rows = {
        1: row(1, "ok", layout.relative(stored)) | {"sha256": "x", "metadata_sha256": digest_of(1)},
        2: row(2, "ok", "images/k/0000/2_s2_65535_12345@N00.jpg") | {"sha256": "y"},  # file gone
        3: row(3, "too_small"),
        4: row(4, "unavailable"),
        5: row(5, "failed", "images/k/0000/5_s5_65535_12345@N00.jpg"),
        6: row(6, "invalid"),
    }
    plan = plan_run(layout, "k", records([1, 2, 3, 4, 5, 6, 7]), rows, rows, OPTIONS)
    assert list(plan.tasks) == [2, 5, 7] and plan.skipped == 4
    assert plan.tasks[2].shard == 0
    no_retry = plan_run(layout, "k", records([1, 2, 3, 4, 5, 6, 7]), rows, rows, DownloadOptions(retry_failed=False))
    assert list(no_retry.tasks) == [2, 7]


def test_a_photo_whose_secret_changed_is_fetched_again_into_its_shard(layout):
    old = layout.image_file("k", 3, "1_old_65535_12345@N00.jpg")
    old.parent.mkdir(parents=True)
    old.write_bytes(b"jpeg")
    rows = {1: row(1, "ok", layout.relative(old)) | {"sha256": "x"}}
    plan = plan_run(layout, "k", records([1], secret="new"), rows, rows, OPTIONS)
    assert plan.tasks[1].shard == 3 and plan.tasks[1].file_name == "1_new_65535_12345@N00.jpg"


def test_tasks_stream_with_their_full_record(layout):
    plan = plan_run(layout, "k", records([5, 6, 7]), {}, {}, OPTIONS)
    del plan.tasks[6]
    got = list(iter_tasks(records([5, 6, 7]), plan.tasks))
    assert [t.photo_id for t in got] == [5, 7] and got[1].record["title"] == "photo 7"
    assert plan.tasks == {}  # handed-out tasks are not kept


def test_sources_and_the_record_size_rule():
    large = choose_source({"url_l": "L", "width_l": 1024, "height_l": 499, "url_o": "O"})
    assert large.kind == "large" and large.url == "L"
    assert known_too_small(large, DownloadOptions())
    original = choose_source({"url_l": None, "url_o": "O", "width_o": 4000, "height_o": 1000})
    assert original.kind == "original"
    assert known_too_small(original, DownloadOptions())  # 4000x1000 would be stored at 1024x256
    assert not known_too_small(choose_source({"url_o": "O", "width_o": 2000, "height_o": 1000}), DownloadOptions())
    assert not known_too_small(choose_source({"url_o": "O", "width_o": None, "height_o": None}), DownloadOptions())
    assert choose_source({"url_l": None, "url_o": None}) is None


def test_file_names_are_safe():
    name = image_file_name({"photo_id": 7, "secret": "ab/..", "server": "1", "owner": "x y@N00"})
    assert name == "7_ab%2F.._1_x%20y@N00.jpg" and "/" not in name


def test_bad_records_are_reported_with_where(tmp_path):
    with pytest.raises(RecordsError, match=r"records file .*missing\.parquet does not exist"):
        open_records(tmp_path / "missing.parquet")
    (tmp_path / "bad.parquet").write_text("nope")
    with pytest.raises(RecordsError, match="is not readable Parquet"):
        open_records(tmp_path / "bad.parquet")
    with pytest.raises(RecordsError, match="records table lacks columns url_l, width_l"):
        open_records(pa.table({"photo_id": [1], "secret": ["s"], "server": ["1"], "owner": ["o"]}))


def test_image_paths_match_the_layout_and_only_read_this_keywords_shards(layout):
    paths = ImagePaths(layout, "eiffel tower")
    for shard, name in [(0, "1_a_2_3@N00.jpg"), (0, "4_b_5_6@N00.jpg"), (12, "7_c_8_9@N00.jpg")]:
        path = paths.file(shard, name)
        assert path == layout.image_file("eiffel tower", shard, name)
        assert paths.relative(path) == layout.relative(path)
        assert paths.shard_of(paths.relative(path)) == shard
    with pytest.raises(ValueError, match="unsafe image file name"):
        paths.file(0, "../escape.jpg")
    other = layout.relative(layout.image_file("colosseum", 3, "1_a_2_3@N00.jpg"))
    prefix = paths.images_prefix
    wrongs = [None, "", other, prefix + "0001", prefix + "x1/a.jpg", prefix + "0001/../../a.jpg", prefix + "0001/.a"]
    for wrong in wrongs:
        assert paths.shard_of(wrong) is None, wrong


def test_a_stored_photo_whose_record_changed_is_planned_for_its_metadata_only(layout):
    names = {i: image_file_name(records([i]).to_pylist()[0]) for i in (1, 2, 3)}
    rows = {}
    for photo_id, digest in ((1, digest_of(1)), (2, digest_of(2, title="old")), (3, None)):
        stored = layout.image_file("k", 0, names[photo_id])
        stored.parent.mkdir(parents=True, exist_ok=True)
        stored.write_bytes(b"jpeg")
        rows[photo_id] = row(photo_id, "ok", layout.relative(stored)) | {"sha256": "x", "metadata_sha256": digest}
    views = pa.Table.from_pylist([r | {"views": 1000} for r in records([1, 2, 3]).to_pylist()])
    plan = plan_run(layout, "k", views, rows, rows, OPTIONS)
    # 1 unchanged (a new view count alone is not worth a rewrite), 2 retitled, 3 from a manifest without digests
    assert plan.skipped == 1 and sorted(plan.tasks) == [2, 3]
    assert plan.tasks[2].restamp == rows[2] and plan.tasks[2].digest == digest_of(2)
    assert plan.tasks[3].restamp == rows[3] and plan.tasks[3].digest == digest_of(3)


def test_only_records_found_again_since_their_file_was_written_are_digested(layout):
    """A harvest rewrites a record only when it finds the photo again, stamping last_seen: a record last seen
    before its row was written is the one its file embeds, whatever it holds (not digested on every run)."""
    name = image_file_name(records([2]).to_pylist()[0])
    stored = layout.image_file("k", 0, name)
    stored.parent.mkdir(parents=True, exist_ok=True)
    stored.write_bytes(b"jpeg")
    rows = {2: row(2, "ok", layout.relative(stored)) | {"sha256": "x", "metadata_sha256": digest_of(2, title="old")}}
    for seen, planned in ((NOW - dt.timedelta(days=1), False), (NOW + dt.timedelta(days=1), True)):
        plan = plan_run(layout, "k", records([2], last_seen=seen), rows, rows, OPTIONS)
        assert (2 in plan.tasks) is planned, seen
