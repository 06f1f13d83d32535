"""64-bit DCT perceptual hash (pHash) and Hamming distance, for exact and near-duplicate grouping."""

import io
from functools import cache

import numpy as np
from PIL import Image

_SIDE = 32  # the greyscale thumbnail the DCT runs on
_LOW = 8  # the 8x8 lowest frequencies give 64 bits
_MASK = (1 << 64) - 1
#: The hashed decode has a longest side of at least this many pixels (JPEG draft picks the scale).
HASH_DECODE_SIDE = 256


@cache
def _dct_matrix() -> np.ndarray:
    """Orthonormal DCT-II basis for the first _LOW frequencies over _SIDE samples, shape (_LOW, _SIDE)."""
    k = np.arange(_LOW)[:, None]
    n = np.arange(_SIDE)[None, :]
    basis = np.cos(np.pi * (2 * n + 1) * k / (2 * _SIDE)) * np.sqrt(2 / _SIDE)
    basis[0] /= np.sqrt(2)
    return basis


def draft_size(size: tuple[int, int], side: int = HASH_DECODE_SIDE) -> tuple[int, int]:
    """The ``Image.draft`` request that reduces a JPEG of ``size`` as far as possible keeping ``side`` px."""
    w, h = size
    scale = 1
    while scale < 8 and max(w, h) // (scale * 2) >= side:
        scale *= 2
    return max(1, w // scale), max(1, h // scale)


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def phash_of(image: Image.Image | bytes) -> int:
    """The pHash of an image (or of encoded image bytes) as a signed int64 value.

    Greyscale 32x32 thumbnail -> 2-D DCT -> 8x8 low frequencies -> one bit per coefficient above their median.
    For bytes, JPEGs are decoded at reduced scale (see :func:`draft_size`), the same decode
    :func:`~flickr_assets.imaging.process_image` hashes, so both give the same value for the same file.
    """
    if isinstance(image, bytes | bytearray | memoryview):
        image = Image.open(io.BytesIO(image))
        image.draft("RGB", draft_size(image.size))
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    thumb = image.convert("L").resize((_SIDE, _SIDE), Image.Resampling.BOX, reducing_gap=None)
    pixels = np.asarray(thumb, dtype=np.float64)
    basis = _dct_matrix()
    low = basis @ pixels @ basis.T
    bits = (low > np.median(low)).ravel()
    value = int.from_bytes(np.packbits(bits).tobytes(), "big")
    return _signed(value)


def hamming(a: int, b: int) -> int:
    """Number of differing bits between two 64-bit hashes (signed or unsigned)."""
    return ((a ^ b) & _MASK).bit_count()
