"""Pure rules that sort a static-host answer into what it means (no I/O)."""

import io
import re
import urllib.parse

from PIL import Image

from flickr_assets.imaging.decode import sniff_format

#: Flickr redirects a removed or hidden photo to ``…/photo_unavailable[_l|_h].png`` (a 200 PNG);
#: older pages used ``photo_unavailable.gif``.
PLACEHOLDER_MARK = "photo_unavailable"

#: Pixel sizes of the placeholder images (default, ``_l``/``_b``, ``_h``, small sizes).
PLACEHOLDER_SIZES = frozenset({(500, 374), (1024, 768), (1600, 1200), (640, 480), (800, 600), (240, 180)})

#: The lightest grey taken for a placeholder's background: a page that is mostly white is a document.
PLACEHOLDER_GREY_MAX = 245

_ORIGINAL_RE = re.compile(r"_o\.[A-Za-z0-9]+$")


def is_original_url(url: str) -> bool:
    """True for an Original (``…_o.<format>``), which Flickr throttles much harder."""
    return bool(_ORIGINAL_RE.search(urllib.parse.urlsplit(url).path))


def is_placeholder_url(url: str) -> bool:
    """True when a URL (a redirect target) names Flickr's "photo unavailable" placeholder."""
    return PLACEHOLDER_MARK in urllib.parse.unquote(url).lower()


def is_placeholder_body(body: bytes) -> bool:
    """True when a 200 body is Flickr's "photo unavailable" placeholder served in place of the photo: a PNG
    or GIF of a placeholder size (500x374, 1024x768, ...) that is mostly one flat light grey. Real photos,
    even ones served as PNG, are never that flat; scans and screenshots that are are white, not grey."""
    if sniff_format(body) not in ("PNG", "GIF"):
        return False
    try:
        with Image.open(io.BytesIO(body)) as image:
            if image.size not in PLACEHOLDER_SIZES:
                return False
            grey = image.convert("L").reduce(4)
    except (OSError, ValueError, Image.DecompressionBombError):
        return False
    histogram = grey.histogram()
    peak = max(range(256), key=histogram.__getitem__)
    flat = sum(histogram[max(0, peak - 3) : peak + 4])
    return 180 <= peak <= PLACEHOLDER_GREY_MAX and flat >= 0.8 * grey.width * grey.height


def is_text_body(body: bytes, content_type: str | None) -> bool:
    """True for an HTML or other text answer (an error page, a proxy's notice): worth trying again."""
    if content_type and content_type.split(";")[0].strip().lower().startswith("text/"):
        return True
    return body[:64].lstrip().lower().startswith((b"<!doctype", b"<html", b"<?xml", b"<head", b"<body"))


def describe_body(body: bytes, content_type: str | None) -> str:
    """A short description of a body that is not an image, for the manifest's reason."""
    head = body[:16].lstrip().lower()
    kind = "HTML" if head.startswith((b"<!doctype", b"<html", b"<")) else "non-image"
    return f"{kind} body ({content_type or 'no content type'}, {len(body)} bytes)"


def is_retryable_status(status: int) -> bool:
    """HTTP statuses that may succeed on a later try: timeouts, throttling and server errors."""
    return status in (408, 425, 429) or 500 <= status <= 599


def is_missing_status(status: int) -> bool:
    """HTTP statuses that say the photo is gone for good."""
    return status in (404, 410)
