"""Photos already stored for another keyword: found in the other keywords' manifests (linked by ``engine``)."""

import logging
from pathlib import PurePosixPath

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

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
            # metadata_sha256 is absent from manifests written before it existed: such files are checked by hand
            extra = ["metadata_sha256"] if "metadata_sha256" in pq.read_schema(manifest).names else []
            table = pq.read_table(manifest, columns=["photo_id", "status", "path", *COPIED_COLUMNS, *extra])
        except Exception as error:  # a damaged manifest of another keyword must not stop this one
            log.warning("%s: ignoring unreadable manifest (%s)", manifest, error)
            continue
        mask = pc.and_(pc.equal(table["status"], "ok"), pc.is_in(table["photo_id"], value_set=wanted))
        for row in table.filter(mask).to_pylist():
            row.setdefault("metadata_sha256", None)
            if row["path"] and row["sha256"] and PurePosixPath(row["path"]).name == file_names[row["photo_id"]]:
                row["linked_from"] = folder.name
                found.setdefault(row["photo_id"], row)
    return found
