"""Atomic writes leave either the whole new file or the old one, and no temp files."""

import os
import subprocess
import sys

import pytest

from flickr_assets.storage import atomic
from flickr_assets.storage.atomic import (
    atomic_path,
    link_or_copy,
    make_durable,
    remove_stale_temp_files,
    write_bytes,
)


def test_write_replaces_whole_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a" / "file.bin"
    write_bytes(target, b"old")
    write_bytes(target, b"new contents")
    assert target.read_bytes() == b"new contents"
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.bin"]


def test_failed_write_keeps_old_file(tmp_path):
    target = tmp_path / "file.bin"
    write_bytes(target, b"old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("crash")
    assert target.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [target]


def test_killed_writer_leaves_only_a_temp_file_that_cleanup_removes(tmp_path):
    target = tmp_path / "file.bin"
    code = (
        "import os, sys; from pathlib import Path; from flickr_assets.storage.atomic import atomic_path\n"
        f"with atomic_path(Path({str(target)!r})) as t:\n"
        "    t.write_bytes(b'partial'); os.kill(os.getpid(), 9)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=False)
    assert not target.exists()
    assert remove_stale_temp_files(tmp_path) == 1
    assert list(tmp_path.iterdir()) == []


def test_link_or_copy_shares_the_inode(tmp_path):
    source = tmp_path / "src.jpg"
    source.write_bytes(b"jpeg")
    link_or_copy(source, tmp_path / "k" / "dst.jpg")
    assert os.stat(source).st_ino == os.stat(tmp_path / "k" / "dst.jpg").st_ino


def test_a_failed_write_bytes_keeps_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "file.bin"
    write_bytes(target, b"old")
    with pytest.raises(TypeError):
        write_bytes(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [target]


@pytest.mark.parametrize("syncfs", [True, False], ids=["syncfs", "fsync-each"])
def test_files_written_without_fsync_are_whole_and_made_durable_together(tmp_path, monkeypatch, syncfs):
    # The bytes read back come from the page cache either way: what makes them durable are the sync calls.
    real_syncfs, real_fsync = atomic._syncfs(), atomic._fsync_file
    synced: list[object] = []
    if not syncfs:
        monkeypatch.setattr(atomic, "_syncfs", lambda: None)  # a C library without syncfs
    elif real_syncfs is None:
        pytest.skip("no syncfs on this system")
    else:
        monkeypatch.setattr(atomic, "_syncfs", lambda: lambda fd: synced.append("syncfs") or real_syncfs(fd))
    monkeypatch.setattr(atomic, "_fsync_file", lambda path: synced.append(path) or real_fsync(path))
    files = [tmp_path / f"shard-{n % 3}" / f"{n}.jpg" for n in range(12)]
    for n, path in enumerate(files):
        write_bytes(path, bytes([n]) * (1000 + n), durable=False)
    assert synced == []  # nothing synced while writing
    make_durable(tmp_path, files)
    assert synced == (["syncfs"] if syncfs else files)  # one syncfs for the lot, else every file
    assert [path.read_bytes() for path in files] == [bytes([n]) * (1000 + n) for n in range(12)]
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted(
        [f"shard-{n}" for n in range(3)] + [p.name for p in files]
    )
