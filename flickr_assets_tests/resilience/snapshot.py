"""What a data folder holds, in a form two runs can be compared by, and the leftovers a crash may leave."""

import hashlib
from pathlib import Path

import pyarrow.parquet as pq
from PIL import Image

from flickr_assets.storage.layout import DataLayout
from flickr_assets.storage.manifest import load_rows

#: Columns that say *when* something happened (or how hard it was), not *what* was found.
RECORD_TIMING = {"first_seen", "last_seen"}
MANIFEST_COLUMNS = [
    "photo_id",
    "status",
    "path",
    "stored_width",
    "stored_height",
    "crop_left",
    "crop_top",
    "crop_right",
    "crop_bottom",
    "sha256",
    "source_sha256",
]


def _rows(path: Path, exclude: set[str] = frozenset(), columns: list[str] | None = None) -> list[dict]:
    table = pq.read_table(path, columns=columns)
    table = table.select([name for name in table.column_names if name not in exclude])
    return sorted(table.to_pylist(), key=lambda row: row["photo_id"])


def records(layout: DataLayout, keyword: str) -> list[dict]:
    """The keyword's records, sorted by photo ID, without first_seen/last_seen."""
    return _rows(layout.records_file(keyword), RECORD_TIMING)


def manifest(layout: DataLayout, keyword: str) -> list[dict]:
    """The keyword's manifest rows (outcome, file, size, crop box, digests), without attempts or times."""
    return _rows(layout.manifest_file(keyword), columns=MANIFEST_COLUMNS)


def catalog(layout: DataLayout) -> list[dict]:
    """The catalog rows, sorted by photo ID, without first_seen/last_seen, each image's sha256 checked against
    its file."""
    rows = _rows(layout.catalog_file, RECORD_TIMING)
    for row in rows:
        if row["image_path"]:
            data = layout.resolve_relative(row["image_path"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == row["image_sha256"], row["photo_id"]
    return rows


def image_hashes(layout: DataLayout) -> dict[str, str]:
    """Relative path -> sha256 of every stored image file (stored files embed no harvest times)."""
    return {
        layout.relative(path): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(layout.images_root.rglob("*"))
        if path.is_file()
    }


def manifest_hash_problems(layout: DataLayout, keyword: str) -> list[str]:
    """Rows (of the manifest, overlaid by the journal a run that did not finish leaves) whose stored file is
    missing or whose sha256 is not the file's."""
    problems = []
    for row in load_rows(layout, keyword).values():
        if row["status"] != "ok":
            continue
        path = layout.resolve_relative(row["path"])
        if not path.exists():
            problems.append(f"{row['photo_id']}: {path} missing")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != row["sha256"]:
            problems.append(f"{row['photo_id']}: {path} does not have the manifest's sha256")
    return problems


def leftovers(root: Path) -> list[str]:
    """Temp files, empty files and undecodable JPEGs anywhere under ``root`` (a crash's debris)."""
    found = []
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        if path.name.startswith(".") and path.name.endswith(".tmp"):
            found.append(f"temp file {path}")
        elif path.suffix == ".jpg" and path.stat().st_size == 0:
            found.append(f"empty image {path}")
        elif path.suffix == ".jpg":
            try:
                with Image.open(path) as image:
                    image.load()
            except (OSError, SyntaxError) as error:
                found.append(f"undecodable image {path}: {error}")
    return found


def files_outside(root: Path, allowed: list[Path]) -> list[str]:
    """Files under ``root`` that lie in none of the ``allowed`` folders."""
    allowed = [folder.resolve() for folder in allowed]
    return [
        str(path)
        for path in sorted(root.rglob("*"))
        if path.is_file()
        and not any(folder == path.resolve().parent or folder in path.resolve().parents for folder in allowed)
    ]
