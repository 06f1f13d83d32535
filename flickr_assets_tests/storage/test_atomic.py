"""Atomic writes leave either the whole new file or the old one, and no temp files."""

import os
import subprocess
import sys

import pytest

from flickr_assets.storage.atomic import atomic_path, link_or_copy, remove_stale_temp_files, write_bytes


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
