"""The bad-input zoo: the photos of the "test pattern" keyword, each serving one kind of bad image."""

import numpy as np

from .columns import Columns
from .geometry import NO_FRAME, ONE_SIDE

# Zoo kinds: what each serves, and what the downloader should conclude.
ZOO_KINDS: tuple[tuple[str, str], ...] = (
    ("zero_bytes", "invalid"),
    ("bomb", "invalid"),
    ("cmyk", "ok"),
    ("greyscale", "ok"),
    ("png_as_jpg", "ok"),
    ("gif_as_jpg", "ok"),
    ("one_side_frame", "ok"),
    ("tiny", "too_small"),
    ("large_gone", "ok"),  # the Large answers the placeholder, the Original is there: the seed's fallback
    ("png_original", "ok"),  # no Large; the Original is a PNG (``originalformat="png"``, ``_o.png``, image/png)
)
ZOO_SIZE = 40
NORMAL = -1  # the zoo column of every photo outside the zoo


def configure_zoo(cols: Columns) -> None:
    """Give the bad-input zoo photos predictable sizes: a Large for all but the tiny one and the PNG original."""
    for row in np.flatnonzero(cols.zoo != NORMAL):
        kind = ZOO_KINDS[cols.zoo[row]][0]
        cols.deleted[row] = False
        cols.orientation[row] = 1
        cols.frame[row], cols.frame_fraction[row] = (ONE_SIDE, 0.08) if kind == "one_side_frame" else (NO_FRAME, 0)
        cols.width[row], cols.height[row], cols.large[row] = (320, 240, False) if kind == "tiny" else (1600, 1200, True)
        if kind == "png_original":
            cols.large[row] = False


def original_format(cols: Columns, row: int) -> str:
    """A photo's ``originalformat``: "png" for the zoo's PNG original, "jpg" for every other photo."""
    return "png" if cols.zoo[row] != NORMAL and ZOO_KINDS[cols.zoo[row]][0] == "png_original" else "jpg"
