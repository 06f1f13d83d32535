"""Data-quality rules for the stored tables and files; each returns one line per problem found."""

from collections import Counter
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from flickr_assets.storage.digest import file_sha256
from flickr_assets.storage.layout import FILES_PER_SHARD, DataLayout
from flickr_assets.wording import counted

#: Record columns that must never be null.
REQUIRED_RECORD_FIELDS = ("photo_id", "keyword", "owner", "secret", "server", "date_upload", "first_seen", "last_seen")


def records_problems(layout: DataLayout, keyword: str) -> list[str]:
    """Duplicate photo IDs, missing required fields or a wrong keyword in the keyword's records."""
    path = layout.records_file(keyword)
    if not path.exists():
        return [f"{path}: no records file"]
    table = pq.read_table(path, columns=list(REQUIRED_RECORD_FIELDS))
    problems = []
    ids = table["photo_id"]
    duplicates = len(ids) - len(pc.unique(ids))
    if duplicates:
        problems.append(f"{path}: {counted(duplicates, 'duplicate photo_id value')}")
    for name in REQUIRED_RECORD_FIELDS:
        missing = table[name].null_count
        if missing:
            problems.append(f"{path}: {counted(missing, 'row')} without {name}")
    wrong = len(table) - pc.sum(pc.equal(table["keyword"], keyword)).as_py() if len(table) else 0
    if wrong:
        problems.append(f"{path}: {counted(wrong, 'row')} of another keyword")
    return problems


def manifest_problems(layout: DataLayout, keyword: str, verify_hashes: bool = True) -> list[str]:
    """Stored images that are missing, altered (not read with ``verify_hashes=False``), or in a shard folder
    holding more than :data:`FILES_PER_SHARD` files."""
    path = layout.manifest_file(keyword)
    if not path.exists():
        return [f"{path}: no manifest"]
    table = pq.read_table(path, columns=["photo_id", "status", "path", "sha256"])
    problems: list[str] = []
    ok = table.filter(pc.equal(table["status"], "ok")).to_pylist()
    for row in ok:
        problem = stored_image_problem(layout, row["photo_id"], row["path"])
        if problem is not None:
            problems.append(problem)
        elif verify_hashes and file_sha256(layout.resolve_relative(row["path"])) != row["sha256"]:
            problems.append(f"photo {row['photo_id']}: image {row['path']} does not match its sha256")
    folders = Counter(Path(row["path"]).parent.as_posix() for row in ok if row["path"])
    problems += [
        f"folder {folder} holds {count} images (limit {FILES_PER_SHARD})"
        for folder, count in folders.items()
        if count > FILES_PER_SHARD
    ]
    images_dir = layout.images_dir(keyword)
    if images_dir.exists():
        for shard in images_dir.iterdir():
            count = sum(1 for _ in shard.glob("*.jpg")) if shard.is_dir() else 0
            if count > FILES_PER_SHARD:
                problems.append(f"folder {layout.relative(shard)} holds {count} files (limit {FILES_PER_SHARD})")
    return sorted(set(problems))


def stored_image_problem(layout: DataLayout, photo_id: int, relative: str | None) -> str | None:
    """What is wrong with the stored image of an ``ok`` photo at ``relative`` (None: its file is there)."""
    if not relative:
        return f"photo {photo_id}: status ok but no image path"
    try:
        file = layout.resolve_relative(relative)
    except ValueError:
        return f"photo {photo_id}: image path {relative} leaves the data folder"
    return None if file.is_file() else f"photo {photo_id}: image {relative} is missing"
