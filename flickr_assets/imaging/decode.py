"""Opening served bytes safely: recognise the format, refuse non-images and bombs, decode strictly, orient."""

import io
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from flickr_assets.imaging.model import InvalidImage, Size

#: EXIF orientation -> the transpose that makes the pixels upright.
_UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
#: Leading bytes of the image formats a host may serve, and their names.
_MAGIC = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"RIFF", "WebP"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)
_OPEN_ERRORS = (OSError, SyntaxError, ValueError, struct.error, EOFError, IndexError, TypeError, KeyError)


@dataclass(frozen=True)
class OpenedImage:
    """An opened (not yet decoded) image with its header facts."""

    image: Image.Image
    format: str
    orientation: int  # EXIF orientation 1..8 (1 when absent or invalid)
    size: Size  # width, height after orientation

    @property
    def is_jpeg(self) -> bool:
        """JPEG (or MPO, a JPEG with more frames): draft decoding and byte-keeping apply."""
        return self.format in ("JPEG", "MPO")

    @property
    def swaps_axes(self) -> bool:
        """Whether the stored pixels are the upright image turned by 90 degrees (width and height swapped)."""
        return self.orientation in (5, 6, 7, 8)


def _describe_non_image(data: bytes) -> str:
    head = data[:512].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head[:1] == b"<":
        snippet = head[:40].decode("utf-8", "replace").split("\n")[0]
        return f"not an image: the body is HTML/XML (starts with {snippet!r})"
    sample = data[:512]
    printable = sum(32 <= c < 127 or c in (9, 10, 13) for c in sample)
    if printable >= 0.95 * len(sample):
        snippet = sample[:40].decode("ascii", "replace").split("\n")[0]
        return f"not an image: the body is text (starts with {snippet!r})"
    name = sniff_format(data)
    if name is not None:
        return f"corrupt {name} image: the header cannot be read (first bytes {data[:8].hex(' ')})"
    return f"not an image: unrecognised format (first bytes {data[:8].hex(' ')})"


def sniff_format(data: bytes) -> str | None:
    """The image format ``data`` starts like (``JPEG``, ``PNG``, ``GIF``, ``WebP``, ...), None if none."""
    for magic, name in _MAGIC:
        if data.startswith(magic) and (name != "WebP" or data[8:12] == b"WEBP"):
            return name
    return None


def _open_ignoring_pillow_cap(data: bytes) -> Image.Image:
    """Open like ``Image.open`` but without Pillow's process-wide pixel cap (ours is checked by the caller)."""
    Image.init()
    for fmt in Image.ID:
        factory, accept = Image.OPEN[fmt]
        if accept is not None and not accept(data[:16]):
            continue
        try:
            return factory(io.BytesIO(data), "")
        except _OPEN_ERRORS:
            continue
    raise InvalidImage(_describe_non_image(data))


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(0x0112, 1)
    except _OPEN_ERRORS:
        return 1  # unreadable EXIF: the pixels are what we have
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def open_image(data: bytes, max_pixels: int, max_full_decode_pixels: int | None = None) -> OpenedImage:
    """Open ``data`` and read its header; raise InvalidImage for empty, non-image or oversized bodies (over
    ``max_pixels``, or ``max_full_decode_pixels`` for a format decoded at full size, i.e. not JPEG)."""
    if not data:
        raise InvalidImage("empty body (0 bytes)")
    if sniff_format(data) is None and data.lstrip()[:1] in (b"<", b"{", b"["):
        raise InvalidImage(_describe_non_image(data))
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        image = _open_ignoring_pillow_cap(data)
    except UnidentifiedImageError:
        raise InvalidImage(_describe_non_image(data)) from None
    except _OPEN_ERRORS as exc:
        raise InvalidImage(f"corrupt image header: {_one_line(exc)}") from None
    width, height = image.size
    if width < 1 or height < 1:
        raise InvalidImage(f"corrupt image header: size {width}x{height}")
    orientation = _orientation(image)  # EXIF is in the header: no pixel is decoded yet
    size = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
    source = OpenedImage(image=image, format=image.format or "unknown", orientation=orientation, size=size)
    limit, what = max_pixels, "the limit"
    if not source.is_jpeg and max_full_decode_pixels is not None and max_full_decode_pixels < max_pixels:
        limit, what = max_full_decode_pixels, f"the limit for a {source.format} image (decoded at full size)"
    if width * height > limit:
        raise InvalidImage(
            f"image too large: header says {width}x{height} = {width * height:,} pixels, over {what} of "
            f"{limit:,} (decompression bomb?)"
        )
    return source


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


@contextmanager
def _strict_loading() -> Iterator[None]:
    """Refuse truncated files while decoding, whatever the process-wide Pillow setting is."""
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous


def load(image: Image.Image) -> Image.Image:
    """Decode ``image`` fully (at its draft scale, if one was set); raise InvalidImage when it is broken."""
    try:
        with _strict_loading():
            image.load()
    except (*_OPEN_ERRORS, Image.DecompressionBombError) as exc:
        message = _one_line(exc)
        kind = "truncated" if "truncated" in message or isinstance(exc, EOFError) else "corrupt"
        raise InvalidImage(f"{kind} {image.format or ''} image: {message}".replace("  ", " ")) from None
    return image


def upright(image: Image.Image, orientation: int) -> Image.Image:
    """``image`` with its EXIF orientation applied (a no-op for orientation 1)."""
    method = _UPRIGHT.get(orientation)
    return image if method is None else image.transpose(method)


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB pixels: transparency flattened on white, 16-bit and float scaled, CMYK/palette/grey converted."""
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", image.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    if image.mode.startswith("I") or image.mode == "F":
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
        grey = np.clip(values * (255.0 / top), 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")
    return image.convert("RGB")
