"""Find uniform frames (borders) around a photo, per side and layer by layer, without cutting into content.

A layer on one side is a run of lines (rows or columns) that are each uniform along their whole length and
all of the same colour, followed by an abrupt change: the lines just inside must differ from the frame
colour, either in their average colour or in most of their pixels. Sky, walls and shadows at an edge
fail one of these tests: they drift in colour (gradients), or end in a ragged line that is mostly the same
colour. Runs longer than ``max_fraction`` of a side are content, not frames. Layers are peeled one after
another, so 2-3 nested frames of different colours or widths come off in turn.
"""

from dataclasses import dataclass

import numpy as np

from flickr_assets.imaging.model import Box

_TOP, _BOTTOM, _LEFT, _RIGHT = range(4)


@dataclass(frozen=True)
class FrameRules:
    """Thresholds on 0-255 pixel values; ``skip``/``band`` are line counts at the scale being analysed."""

    max_fraction: float = 0.25  # a side's frame never exceeds this share of the image
    line_std: float = 10.0  # a frame line's pixels vary at most this much (noise, JPEG)
    color_tol: float = 10.0  # a layer's lines share its first clean line's average colour within this
    step: float = 16.0  # ... and the content inside differs on average by at least this,
    pixel_diff: float = 32.0  # ... or at least `pixel_share` of its pixels differ by more than this
    pixel_share: float = 0.5
    skip: int = 2  # lines between frame and the inside band that may be blurred by resampling or JPEG
    lead: int = 3  # lines at the start of an inner layer that may blend it with the outer one
    drift: float = 6.0  # the average colour of a layer's last lines stays this close to its first lines'
    band: int = 3  # lines of content compared with the frame
    # Shortest layer kept. One line: at a reduced-scale decode a frame line may be blurred away, and at full
    # scale a one-line layer is often the blend between two nested layers.
    min_run: int = 1


def _lines(pixels: np.ndarray, box: Box, side: int, depth: int) -> np.ndarray:
    """The first ``depth`` lines of ``side`` inside ``box``, outermost first, shape (depth, length, channels)."""
    left, top, right, bottom = box
    if side == _TOP:
        return pixels[top : top + depth, left:right]
    if side == _BOTTOM:
        return pixels[bottom - depth : bottom, left:right][::-1]
    if side == _LEFT:
        return pixels[top:bottom, left : left + depth].transpose(1, 0, 2)
    return pixels[top:bottom, right - depth : right][:, ::-1].transpose(1, 0, 2)


def _best_run(means: np.ndarray, uniform: np.ndarray, rules: FrameRules) -> tuple[int, int]:
    """(length, lead) of the longest run over the lines given, trying 0..``rules.lead`` blended lead-in lines."""
    best = (0, 0)
    for lead in range(min(rules.lead, len(means) - 1) + 1):
        if not uniform[lead]:
            break
        block = means[lead : lead + 3]
        colour = np.sort(block, axis=0)[len(block) // 2]  # median of up to three lines
        ok = uniform & (np.abs(means - colour).max(axis=1) <= rules.color_tol)
        ok[:lead] = True
        breaks = np.flatnonzero(~ok)
        run = int(breaks[0]) if len(breaks) else len(means)
        if run > best[0]:
            best = (run, lead)
        if run > rules.lead + 3:  # the run did not stop in the first lines: no blend to look past
            break
    return best


def _run(pixels: np.ndarray, box: Box, side: int, limit: int, rules: FrameRules) -> tuple[int, int, np.ndarray]:
    """The run of uniform same-coloured lines at the edge: (length, blended lead-in lines, line means).

    A layer may start with up to ``rules.lead`` uniform lines of another colour: the blend of the previous
    layer into this one (JPEG chroma, resampling). The colour is the median of the three lines after them.
    The length is ``limit`` + 1 when the run goes on. Content at the edge costs one line.
    """
    first = _lines(pixels, box, side, 1).astype(np.float32)[0]
    if float(first.std(axis=0).max()) > rules.line_std:
        return 0, 0, first.mean(axis=0)[None]
    depth = min(8, limit + 1)
    while True:
        lines = _lines(pixels, box, side, depth).astype(np.float32)
        means = lines.mean(axis=1)
        variance = np.square(lines).mean(axis=1) - np.square(means)
        run, lead = _best_run(means, variance.max(axis=1) <= rules.line_std**2, rules)
        if run < depth or depth >= limit + 1:
            return run, lead, means
        depth = min(depth * 2, limit + 1)


def _layer(pixels: np.ndarray, box: Box, side: int, room: int, rules: FrameRules) -> int:
    """Thickness of the outermost frame layer on ``side`` of ``box`` (0 when there is none)."""
    left, top, right, bottom = box
    extent = bottom - top if side in (_TOP, _BOTTOM) else right - left
    room = min(room, extent - rules.skip - rules.band)
    if room < rules.min_run:
        return 0
    run, lead, means = _run(pixels, box, side, room, rules)
    # A blended lead-in must be followed by a real layer, not by one line of content that happens to be flat.
    if run - lead < (rules.min_run if lead == 0 else max(rules.min_run, 3)) or run > room:
        return 0
    frame = means[max(lead, run - 3) : run].mean(axis=0)
    if float(np.abs(frame - means[lead : lead + 3].mean(axis=0)).max()) > rules.drift:
        return 0  # the colour drifts across the run: a gradient (sky, wall), not a painted frame
    after = _lines(pixels, box, side, run + rules.skip + rules.band)[run:].astype(np.float32)
    inside = after[rules.skip :]
    colour_step = float(np.abs(inside.mean(axis=(0, 1)) - frame).max())
    differing = float((np.abs(inside - frame).max(axis=2) > rules.pixel_diff).mean())
    if colour_step < rules.step and differing < rules.pixel_share:
        return 0
    # Lines blurred by JPEG ringing or resampling at the frame edge: still mostly frame-coloured.
    for line in after[: min(rules.skip, room - run)]:
        if float((np.abs(line - frame).max(axis=1) <= rules.pixel_diff).mean()) < 0.9:
            break
        run += 1
    return run


@dataclass(frozen=True)
class Frame:
    """A detected frame: the content ``box`` (left, top, right, bottom) and the layers found per side."""

    box: Box
    layers: tuple[int, int, int, int]  # left, top, right, bottom


def detect_frame(pixels: np.ndarray, rules: FrameRules | None = None) -> Frame | None:
    """The frame around ``pixels`` (an (h, w) or (h, w, channels) uint8 array), or None when there is none."""
    rules = rules or FrameRules()
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    height, width = pixels.shape[:2]
    limit = (int(height * rules.max_fraction), int(width * rules.max_fraction))
    box = [0, 0, width, height]
    cut = [0, 0, 0, 0]
    layers = [0, 0, 0, 0]
    # box index moved by each side, and the direction it moves in
    edge = {_TOP: (1, 1), _BOTTOM: (3, -1), _LEFT: (0, 1), _RIGHT: (2, -1)}
    for _ in range(8):  # nested layers: each pass peels at most one layer per side
        peeled = False
        for side in (_TOP, _BOTTOM, _LEFT, _RIGHT):
            room = limit[0 if side in (_TOP, _BOTTOM) else 1] - cut[side]
            thickness = _layer(pixels, (box[0], box[1], box[2], box[3]), side, room, rules)
            if thickness:
                index, direction = edge[side]
                box[index] += direction * thickness
                cut[side] += thickness
                layers[index] += 1
                peeled = True
        if not peeled:
            break
    if not any(cut):
        return None
    return Frame((box[0], box[1], box[2], box[3]), (layers[0], layers[1], layers[2], layers[3]))


def find_frame(pixels: np.ndarray, rules: FrameRules | None = None) -> Box | None:
    """The content box (left, top, right, bottom) inside any frame around ``pixels``, or None."""
    frame = detect_frame(pixels, rules)
    return None if frame is None else frame.box
