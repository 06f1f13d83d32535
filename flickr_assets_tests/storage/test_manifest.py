"""The manifest journal survives crashes, merges atomically and rejects malformed rows clearly."""

import contextlib
import datetime as dt
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from flickr_assets.storage import manifest
from flickr_assets.storage.layout import DataLayout
from flickr_assets.storage.manifest import (
    ManifestError,
    ManifestJournal,
    check_row,
    journal_file,
    load_rows,
    merge_journal,
    merged_rows,
    read_manifest,
    write_manifest,
)
from flickr_assets.storage.schemas import MANIFEST

NOW = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.UTC)


def row(photo_id: int, status: str = "ok", **values: object) -> dict:
    out = {"photo_id": photo_id, "status": status, "attempts": 1, "updated_at": NOW}
    if status == "ok":
        out |= {"path": f"images/k/0000/{photo_id}.jpg", "sha256": f"{photo_id:064x}"}
    return out | values


@pytest.fixture
def layout(tmp_path):
    return DataLayout.at(tmp_path / "data")


def test_journal_rows_overlay_the_merged_manifest_latest_wins(layout):
    write_manifest(layout, "stonehenge", [row(3, "failed", reason="HTTP 503"), row(1)])
    with ManifestJournal(journal_file(layout, "stonehenge")) as journal:
        journal.append(row(3, attempts=2))
        journal.append(row(7, "not_found", reason="HTTP 404"))
        journal.append(row(7, "not_found", reason="HTTP 404 again"))
    rows = load_rows(layout, "stonehenge")
    assert sorted(rows) == [1, 3, 7]
    assert rows[3]["status"] == "ok" and rows[3]["attempts"] == 2
    assert rows[7]["reason"] == "HTTP 404 again"
    assert rows[3]["updated_at"] == NOW


def test_merge_writes_sorted_parquet_and_removes_the_journal(layout):
    with ManifestJournal(journal_file(layout, "k")) as journal:
        for photo_id in (5, 2, 9):
            journal.append(row(photo_id))
    table = merge_journal(layout, "k", record_ids={2, 5, 9})
    assert not journal_file(layout, "k").exists()
    on_disk = pq.read_table(layout.manifest_file("k"))
    assert on_disk.column_names == MANIFEST.names
    assert read_manifest(layout, "k").schema.equals(MANIFEST, check_metadata=False)
    assert on_disk["photo_id"].to_pylist() == [2, 5, 9] == table["photo_id"].to_pylist()
    # Only the manifest and the lock-free folder remain: no temp files.
    assert sorted(p.name for p in layout.manifest_dir("k").iterdir()) == ["manifest.parquet"]


def test_crash_between_merge_and_journal_removal_replays_to_the_same_rows(layout):
    with ManifestJournal(journal_file(layout, "k")) as journal:
        journal.append(row(1))
        journal.append(row(2, "too_small"))
    write_manifest(layout, "k", load_rows(layout, "k").values())  # merged, but the journal is still there
    assert journal_file(layout, "k").exists()
    assert load_rows(layout, "k") == {r["photo_id"]: r for r in read_manifest(layout, "k").to_pylist()}
    merged = merge_journal(layout, "k", record_ids={1, 2})
    assert merged.num_rows == 2


def test_torn_last_line_is_dropped_and_the_next_row_starts_a_fresh_line(layout):
    path = journal_file(layout, "k")
    with ManifestJournal(path) as journal:
        journal.append(row(1))
    with open(path, "ab") as handle:
        handle.write(b'{"photo_id": 2, "sta')  # a crash in the middle of a write
    assert sorted(load_rows(layout, "k")) == [1]
    with ManifestJournal(path) as journal:
        journal.append(row(3))
    assert sorted(load_rows(layout, "k")) == [1, 3]


def test_a_damaged_line_in_the_middle_is_skipped_with_a_warning(layout, caplog):
    path = journal_file(layout, "k")
    with ManifestJournal(path) as journal:
        journal.append(row(1))
    with open(path, "ab") as handle:
        handle.write(b"not json at all\n")
    with ManifestJournal(path) as journal:
        journal.append(row(2))
    assert sorted(load_rows(layout, "k")) == [1, 2]
    assert f"{path}:2: skipping unreadable journal line" in caplog.text


def test_rows_written_before_a_sigkill_are_all_readable(layout):
    path = journal_file(layout, "k")
    code = (
        "import datetime as dt, os\nfrom pathlib import Path\n"
        "from flickr_assets.storage.manifest import ManifestJournal\n"
        f"j = ManifestJournal(Path({str(path)!r}), sync_every=1000, sync_seconds=1000)\n"
        "for i in range(500):\n"
        "    j.append({'photo_id': i, 'status': 'not_found', 'attempts': 1,"
        " 'updated_at': dt.datetime.now(dt.UTC)})\n"
        "os.kill(os.getpid(), 9)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=False)
    assert sorted(load_rows(layout, "k")) == list(range(500))


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"status": "done"}, "status 'done' is not one of ok, too_small"),
        ({"status": "ok", "sha256": None}, "an ok row needs path and sha256 (photo 4)"),
        ({"colour": "red"}, "unknown columns ['colour']"),
        ({"attempts": None}, "missing required attempts"),
    ],
)
def test_malformed_rows_are_rejected_with_what_is_wrong(bad, message):
    with pytest.raises(ManifestError, match=r"^where: ") as caught:
        check_row(row(4) | bad, "where")
    assert message in str(caught.value)


def test_an_unreadable_manifest_names_its_path(layout):
    path = layout.manifest_file("k")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(ManifestError, match="unreadable manifest") as caught:
        read_manifest(layout, "k")
    assert str(path) in str(caught.value)


def test_a_manifest_of_an_older_version_is_read_and_a_broken_one_names_its_path(layout):
    write_manifest(layout, "k", [row(1), row(2, "not_found")])
    path = layout.manifest_file("k")
    pq.write_table(pq.read_table(path).drop_columns(["source_sha256", "phash"]), path)  # before those columns
    rows = merged_rows(layout, "k")
    assert sorted(rows) == [1, 2] and rows[1]["source_sha256"] is None and rows[1]["sha256"] == f"{1:064x}"
    pq.write_table(pq.read_table(path).drop_columns(["status"]), path)
    with pytest.raises(ManifestError, match="lacks the column status") as caught:
        merged_rows(layout, "k")
    assert str(path) in str(caught.value)


class Crash(Exception):
    pass


@pytest.mark.parametrize("crash_at", [None, 1, 2, 3])
def test_rows_move_between_manifest_and_retired_rows_and_a_crash_loses_none(layout, monkeypatch, crash_at):
    write_manifest(layout, "k", [row(1), row(2), row(3, "not_found")])
    manifest.merge_journal(layout, "k", record_ids={1, 2})  # 3 left the records
    assert sorted(merged_rows(layout, "k")) == [1, 2, 3]
    assert read_manifest(layout, "k")["photo_id"].to_pylist() == [1, 2]
    with ManifestJournal(journal_file(layout, "k")) as journal:
        journal.append(row(4))

    writes = 0
    real_write = manifest._write_rows_file

    def crashing_write(*args: object) -> object:
        nonlocal writes
        writes += 1
        if writes == crash_at:
            raise Crash
        return real_write(*args)

    monkeypatch.setattr(manifest, "_write_rows_file", crashing_write)
    with contextlib.suppress(Crash):
        manifest.merge_journal(layout, "k", record_ids={2, 3, 4})  # 1 leaves, 3 comes back, 4 is new
    rows = load_rows(layout, "k", merged_rows(layout, "k"))  # what the next run starts from
    assert sorted(rows) == [1, 2, 3, 4] and rows[3]["status"] == "not_found"
    if crash_at is None:
        assert read_manifest(layout, "k")["photo_id"].to_pylist() == [2, 3, 4]
        assert pq.read_table(layout.retired_rows_file("k"))["photo_id"].to_pylist() == [1]
        assert not journal_file(layout, "k").exists()
