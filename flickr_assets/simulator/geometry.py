"""Pixel geometry shared by the image renderer and the ground truth, so both agree to the pixel."""

from .spec import LARGE_EDGE, MIN_SIDE

# Frame kinds (the `frame` array of the universe).
NO_FRAME, BLACK, WHITE, COLOUR, LAYERED, ONE_SIDE = range(6)


def scaled_dims(width: int, height: int, edge: int) -> tuple[int, int]:
    """Size of a photo scaled so its longest side is ``edge`` (never enlarged)."""
    longest = max(width, height)
    if longest <= edge:
        return width, height
    scale = edge / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


def layer_count(kind: int, content: int) -> int:
    """How many nested frames a photo has (layered frames: 2 or 3)."""
    if kind == LAYERED:
        return 2 + content % 2
    return 0 if kind == NO_FRAME else 1


def frame_insets(kind: int, fraction: float, content: int, width: int, height: int) -> tuple[int, int, int, int]:
    """Frame thickness (left, top, right, bottom) in pixels of an image of ``width`` x ``height``."""
    if kind == NO_FRAME or width < 16 or height < 16:
        return 0, 0, 0, 0
    layers = layer_count(kind, content)
    each = max(1, round(fraction / layers * min(width, height)))
    total = each * layers
    if kind == ONE_SIDE:
        return total, 0, 0, 0
    return total, total, total, total


def content_box(kind: int, fraction: float, content: int, width: int, height: int) -> tuple[int, int, int, int] | None:
    """(left, top, right, bottom) of the non-frame part of an image, or None when it has no frame."""
    left, top, right, bottom = frame_insets(kind, fraction, content, width, height)
    if not (left or top or right or bottom):
        return None
    return left, top, width - right, height - bottom


def final_size(width: int, height: int, box: tuple[int, int, int, int] | None) -> tuple[int, int]:
    """Size the downloader stores: the content box (or whole image) scaled to at most LARGE_EDGE."""
    if box is not None:
        width, height = box[2] - box[0], box[3] - box[1]
    return scaled_dims(width, height, LARGE_EDGE)


def is_too_small(width: int, height: int, box: tuple[int, int, int, int] | None) -> bool:
    """The downloader's rule: a side of the stored image would be under MIN_SIDE."""
    return min(final_size(width, height, box)) < MIN_SIDE
