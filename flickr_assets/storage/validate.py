"""Data-quality rules for the stored tables and files; each returns one line per problem found."""

from collections import Counter
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq

from flickr_assets.storage.digest import file_sha256
from flickr_assets.storage.layout import FILES_PER_SHARD, DataLayout

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
        problems.append(f"{path}: {duplicates} duplicate photo_id values")
    for name in REQUIRED_RECORD_FIELDS:
        missing = table[name].null_count
        if missing:
            problems.append(f"{path}: {missing} rows without {name}")
    wrong = len(table) - pc.sum(pc.equal(table["keyword"], keyword)).as_py() if len(table) else 0
    if wrong:
        problems.append(f"{path}: {wrong} rows belong to another keyword")
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
        file = layout.resolve_relative(row["path"]) if row["path"] else None
        if file is None or not file.exists():
            problems.append(f"photo {row['photo_id']}: image {row['path']} is missing")
        elif verify_hashes and file_sha256(file) != row["sha256"]:
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
