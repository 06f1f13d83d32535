"""A small preview of a keyword: a grid of thumbnails of a few stored images, as one JPEG."""

import io
import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image, UnidentifiedImageError

from flickr_assets.storage.atomic import write_bytes
from flickr_assets.storage.layout import DataLayout

log = logging.getLogger(__name__)

THUMB = 160
COLUMNS = 4
GAP = 4


def make_contact_sheet(layout: DataLayout, keyword: str, manifest: pa.Table, count: int = 12) -> Path | None:
    """Write a grid of up to ``count`` thumbnails of the keyword's stored images (the first by photo ID)
    to ``DataLayout.contact_sheet_file``; return its path, or None (and no sheet) when nothing is stored."""
    path = layout.contact_sheet_file(keyword)
    if count <= 0 or manifest.num_rows == 0:
        path.unlink(missing_ok=True)  # a sheet of photos the keyword no longer has would mislead
        return None
    ok = manifest.filter(pc.equal(manifest["status"], "ok")).sort_by("photo_id").slice(0, count)
    thumbs = []
    for relative in ok["path"].to_pylist():
        try:
            with Image.open(layout.resolve_relative(relative)) as image:
                image.draft("RGB", (THUMB, THUMB))
                thumb = image.convert("RGB")
                thumb.thumbnail((THUMB, THUMB))
                thumbs.append(thumb)
        except (OSError, UnidentifiedImageError, ValueError) as error:
            log.warning("contact sheet: skipping %s (%s)", relative, error)
    if not thumbs:
        path.unlink(missing_ok=True)
        return None
    columns = min(COLUMNS, len(thumbs))
    rows = -(-len(thumbs) // columns)
    sheet = Image.new("RGB", (columns * (THUMB + GAP) + GAP, rows * (THUMB + GAP) + GAP), "white")
    for index, thumb in enumerate(thumbs):
        x = GAP + (index % columns) * (THUMB + GAP) + (THUMB - thumb.width) // 2
        y = GAP + (index // columns) * (THUMB + GAP) + (THUMB - thumb.height) // 2
        sheet.paste(thumb, (x, y))
    buffer = io.BytesIO()
    sheet.save(buffer, "JPEG", quality=85)
    write_bytes(path, buffer.getvalue())
    return path
