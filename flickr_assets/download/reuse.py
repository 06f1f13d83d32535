"""Photos already stored for another keyword: found in the other keywords' manifests, hard-linked."""

import logging
from pathlib import Path, PurePosixPath

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from flickr_assets.storage.atomic import link_or_copy
from flickr_assets.storage.digest import file_sha256
from flickr_assets.storage.layout import DataLayout

log = logging.getLogger(__name__)

#: Columns copied from the other keyword's row: the image is the same file, so are its facts.
COPIED_COLUMNS = (
    "source",
    "url",
    "original_width",
    "original_height",
    "stored_width",
    "stored_height",
    "crop_left",
    "crop_top",
    "crop_right",
    "crop_bottom",
    "reencoded",
    "sha256",
    "source_sha256",
    "phash",
)


def stored_elsewhere(layout: DataLayout, keyword: str, file_names: dict[int, str]) -> dict[int, dict]:
    """``ok`` rows of other keywords' merged manifests for the photos of ``file_names`` (photo ID -> the file
    name its record gives now; the first keyword found wins).

    Only a file of that very name is taken: the name holds the photo's secret and server, which Flickr changes
    when the owner replaces the photo or changes who may see it, so a file stored under an older name may show
    another picture and embeds an outdated record."""
    found: dict[int, dict] = {}
    own = layout.manifest_dir(keyword).name
    root = layout.manifests_root
    if not file_names or not root.exists():
        return found
    wanted = pa.array(sorted(file_names), type=pa.int64())
    for folder in sorted(root.iterdir()):
        manifest = folder / layout.manifest_file(keyword).name
        if folder.name == own or not folder.name.startswith("keyword=") or not manifest.exists():
            continue
        try:
            table = pq.read_table(manifest, columns=["photo_id", "status", "path", *COPIED_COLUMNS])
        except Exception as error:  # a damaged manifest of another keyword must not stop this one
            log.warning("%s: ignoring unreadable manifest (%s)", manifest, error)
            continue
        mask = pc.and_(pc.equal(table["status"], "ok"), pc.is_in(table["photo_id"], value_set=wanted))
        for row in table.filter(mask).to_pylist():
            if row["path"] and row["sha256"] and PurePosixPath(row["path"]).name == file_names[row["photo_id"]]:
                row["linked_from"] = folder.name
                found.setdefault(row["photo_id"], row)
    return found


def link_stored(layout: DataLayout, other: dict, destination: Path) -> bool:
    """Hard-link (or copy) the other keyword's file to ``destination`` if it still exists and still has
    its recorded sha256; return whether it did."""
    try:
        source = layout.resolve_relative(other["path"])
    except ValueError:
        return False
    if not source.is_file() or file_sha256(source) != other["sha256"]:
        return False
    link_or_copy(source, destination)
    return True
