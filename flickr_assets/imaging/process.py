"""process_image: served bytes -> the JPEG to store (oriented, unframed, resized, metadata inside) + facts."""

import io
import math
from collections.abc import Mapping

import numpy as np
from PIL import Image

from flickr_assets.imaging.decode import OpenedImage, load, open_image, to_rgb, upright
from flickr_assets.imaging.frame import Frame, detect_frame
from flickr_assets.imaging.jpeg_segments import check_structure, splice
from flickr_assets.imaging.metadata import metadata_segments
from flickr_assets.imaging.model import Box, ImagingOptions, ProcessedImage, Size
from flickr_assets.imaging.phash import draft_size, phash_of

#: Extra pixels cut inside a detected frame edge (like the seed's extra trim for layered frames).
_MARGIN = 2
_NESTED_MARGIN = 2


def _fit(size: Size, max_side: int) -> Size:
    """``size`` scaled down (never up) so that its longest side is at most ``max_side``."""
    width, height = size
    longest = max(width, height)
    if longest <= max_side:
        return size
    factor = max_side / longest
    return max(1, round(width * factor)), max(1, round(height * factor))


def _too_small(original: Size, crop: Box | None = None) -> ProcessedImage:
    return ProcessedImage("too_small", None, original, None, crop, reencoded=False, phash=None)


def _source_box(frame: Frame, analysed: Size, size: Size) -> Box:
    """The content box of ``frame`` (found in an image of size ``analysed``) in source pixels (``size``).

    Each cut side moves a margin further in: ringing and resampling blur the frame edge, and a thin inner
    layer of a nested frame can hide in that blur (the seed trimmed extra for layered frames too).
    """
    left, top, right, bottom = frame.box
    width, height = size
    sx, sy = width / analysed[0], height / analysed[1]
    margin = [
        _MARGIN + math.ceil(s) - 1 + (_NESTED_MARGIN if n > 1 else 0)
        for n, s in zip(frame.layers, (sx, sy, sx, sy), strict=True)
    ]
    return (
        min(width, math.ceil(left * sx) + margin[0]) if frame.layers[0] else 0,
        min(height, math.ceil(top * sy) + margin[1]) if frame.layers[1] else 0,
        max(0, math.floor(right * sx) - margin[2]) if frame.layers[2] else width,
        max(0, math.floor(bottom * sy) - margin[3]) if frame.layers[3] else height,
    )


def _encode(image: Image.Image, quality: int, icc_profile: bytes | None) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, icc_profile=icc_profile)
    return buffer.getvalue()


def _icc(source: OpenedImage, image: Image.Image) -> bytes | None:
    """The source's colour profile, kept only when it still describes the pixels (RGB in, RGB out)."""
    return source.image.info.get("icc_profile") if image.mode == "RGB" and source.image.mode == "RGB" else None


def _decode_upright(data: bytes, source: OpenedImage, request: Size | None, *, reopen: bool = False) -> Image.Image:
    """Decode (JPEG at the draft scale that still covers ``request``, an oriented size) and orient."""
    image = open_image(data, max_pixels=source.size[0] * source.size[1]).image if reopen else source.image
    if request is not None and source.is_jpeg:
        raw_request = (request[1], request[0]) if source.swaps_axes else request
        image.draft(None, (max(1, raw_request[0]), max(1, raw_request[1])))
    image = load(image)
    if getattr(image, "n_frames", 1) > 1:
        image.seek(0)
    return upright(image, source.orientation)


def _keep_or_crop(
    data: bytes, source: OpenedImage, metadata: Mapping[str, object], opts: ImagingOptions
) -> ProcessedImage:
    """A JPEG that needs no rotation and no resize: keep its bytes unless a reduced-scale decode shows a frame."""
    coarse = source.image
    coarse.draft("RGB", draft_size(coarse.size))
    load(coarse)
    if detect_frame(np.asarray(coarse)) is not None:
        rgb = to_rgb(_decode_upright(data, source, None, reopen=True))
        frame = detect_frame(np.asarray(rgb))
        if frame is not None:
            return _cropped(data, rgb, source, _source_box(frame, source.size, source.size), metadata, opts)
    jpeg = splice(data, metadata_segments(metadata))
    return ProcessedImage("ok", jpeg, source.size, source.size, None, reencoded=False, phash=phash_of(coarse))


def _cropped(
    data: bytes,
    working: Image.Image,
    source: OpenedImage,
    crop: Box | None,
    metadata: Mapping[str, object],
    opts: ImagingOptions,
) -> ProcessedImage:
    """Crop ``working`` (the oriented source at some scale) to ``crop`` (source px), resize, encode and embed
    the metadata (or ``too_small``)."""
    width, height = source.size
    left, top, right, bottom = crop or (0, 0, width, height)
    crop_size = (right - left, bottom - top)
    final = _fit(crop_size, opts.max_side)
    if min(final) < opts.min_side:
        return _too_small(source.size, crop)
    sx, sy = width / working.size[0], height / working.size[1]
    if source.is_jpeg and (crop_size[0] / sx < final[0] - 0.5 or crop_size[1] / sy < final[1] - 0.5):
        # The draft scale chosen for the whole image is too coarse for the cropped part: decode finer.
        need = (math.ceil(final[0] * width / crop_size[0]), math.ceil(final[1] * height / crop_size[1]))
        working = to_rgb(_decode_upright(data, source, need, reopen=True))
        sx, sy = width / working.size[0], height / working.size[1]
    if final == crop_size and working.size == source.size:
        image = working.crop((left, top, right, bottom)) if crop else working
    else:
        box = (left / sx, top / sy, right / sx, bottom / sy)
        image = working.resize(final, Image.Resampling.LANCZOS, box=box)
    encoded = _encode(image, opts.quality, _icc(source, working))
    jpeg = splice(encoded, metadata_segments(metadata))
    return ProcessedImage("ok", jpeg, source.size, image.size, crop, reencoded=True, phash=phash_of(jpeg))


def _reencode(data: bytes, source: OpenedImage, metadata: Mapping[str, object], opts: ImagingOptions) -> ProcessedImage:
    """Rotate, unframe, resize and encode: JPEGs decoded at the draft scale of the final size."""
    working = to_rgb(_decode_upright(data, source, _fit(source.size, opts.max_side)))
    frame = detect_frame(np.asarray(working))
    crop = None if frame is None else _source_box(frame, working.size, source.size)
    return _cropped(data, working, source, crop, metadata, opts)


def process_image(data: bytes, metadata: Mapping[str, object], opts: ImagingOptions | None = None) -> ProcessedImage:
    """Turn served image bytes into the JPEG to store, following the seed's rules.

    EXIF orientation first; frames removed; longest side scaled down to ``opts.max_side``; ``too_small``
    when a side of the result would be under ``opts.min_side`` (decided from the header when possible);
    the record in the file as JSON comment, EXIF and XMP. A JPEG needing none of this keeps its served
    bytes (only metadata segments change). Raises InvalidImage for bodies that are not a usable image.
    """
    opts = opts or ImagingOptions()
    source = open_image(data, opts.max_pixels, opts.max_full_decode_pixels)
    if min(_fit(source.size, opts.max_side)) < opts.min_side:
        return _too_small(source.size)
    if source.is_jpeg:
        check_structure(data)
    unchanged = source.orientation == 1 and max(source.size) <= opts.max_side
    if source.is_jpeg and unchanged and source.image.mode in ("RGB", "L"):
        return _keep_or_crop(data, source, metadata, opts)
    return _reencode(data, source, metadata, opts)
