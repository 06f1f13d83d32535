"""The static photo host: image URLs checked like Flickr's (server, secret, size), placeholders, faults, rendering."""

import random
import re
from dataclasses import replace
from typing import TYPE_CHECKING

from .faults import STATIC_KINDS
from .images import RenderKey
from .photos import photo_secret, server, sizes
from .reply import DROP, NOT_FOUND, Reply
from .responses import HTML_5XX, HTML_429
from .spec import SUFFIX_TO_SIZE
from .zoo import NORMAL, ZOO_KINDS, original_format

if TYPE_CHECKING:  # server.py imports this module to answer requests
    from .server import Simulator

PLACEHOLDER_PATH = "/pw/images/en-us/photo_unavailable.png"
PLACEHOLDER_LARGE_PATH = "/pw/images/en-us/photo_unavailable_l.png"
PHOTO_PATH = re.compile(r"^/(\d+)/(\d+)_([0-9a-f]+)(?:_([a-z0-9]+))?\.(jpg|png|gif)$")


def answer(sim: "Simulator", match: re.Match[str]) -> Reply:
    """The answer to a request for a photo path (a ``PHOTO_PATH`` match): JPEG, placeholder redirect or fault."""
    srv, photo_id, given_secret, suffix, ext = (
        match.group(1),
        int(match.group(2)),
        match.group(3),
        match.group(4),
        match.group(5),
    )
    universe = sim.universe
    row = universe.row_of(photo_id)
    if row is None:
        return NOT_FOUND
    fault = sim.draw_fault(STATIC_KINDS)
    if fault == "drop":
        sim.stats.fault(fault)
        return DROP
    cols = universe.cols
    suffix = suffix or ""
    original = suffix == "o"
    expected = photo_secret(universe, photo_id, "o" if original else "s")
    photo_sizes = {s.suffix: s for s in sizes(universe, row)}
    size = photo_sizes.get(suffix)
    good = (
        size is not None
        and given_secret == expected
        and srv == server(photo_id, int(cols.upload[row]))
        and ext == (original_format(cols, row) if original else "jpg")
        and (original or suffix in SUFFIX_TO_SIZE)
    )
    zoo = ZOO_KINDS[cols.zoo[row]][0] if cols.zoo[row] != NORMAL else ""
    if not good or cols.deleted[row] or (zoo == "large_gone" and suffix == "b"):
        target = PLACEHOLDER_LARGE_PATH if suffix == "b" else PLACEHOLDER_PATH
        return Reply(302, b"", location=sim.base_url + target)
    if original and sim.original_throttled():
        sim.stats.fault("original_429")
        return Reply(429, HTML_429, retry_after=sim.faults.retry_after)
    if fault in ("static_429", "static_5xx", "html"):
        sim.stats.fault(fault)
        if fault == "static_429":
            return Reply(429, HTML_429, retry_after=sim.faults.retry_after)
        if fault == "static_5xx":
            return Reply(sim.fault_choice([500, 502, 503, 504]), HTML_5XX)
        return Reply(200, b"<!DOCTYPE html><html><head><title>Flickr</title></head><body>Oops</body></html>")
    key = RenderKey(
        content=int(cols.content[row]),
        variant=int(cols.variant[row]),
        width=size.width if not size.square else int(cols.width[row]),
        height=size.height if not size.square else int(cols.height[row]),
        frame=int(cols.frame[row]),
        frame_fraction=float(cols.frame_fraction[row]),
        orientation=int(cols.orientation[row]) if original else 1,
        square=size.square,
        zoo="" if zoo in ("one_side_frame", "tiny", "large_gone") or (zoo == "png_original" and not original) else zoo,
    )
    if key.square:  # square thumbnails: the photo scaled so its shorter side is the edge, then cropped
        scale = key.square / min(key.width, key.height)
        key = replace(
            key, width=max(key.square, round(key.width * scale)), height=max(key.square, round(key.height * scale))
        )
    rendered_before = sim.images.rendered
    data = sim.images.get(key)
    if sim.images.rendered != rendered_before:
        sim.stats.rendered()
    if fault == "truncate" and len(data) > 16:
        sim.stats.fault(fault)
        return Reply(200, data, "image/png" if ext == "png" else "image/jpeg", truncate_to=len(data) // 2)
    if fault == "corrupt" and len(data) > 1_000:
        sim.stats.fault(fault)
        data = _garble(data, sim.fault_choice(range(1_000_000)))
    return Reply(200, data, "image/png" if ext == "png" else "image/jpeg")


def _garble(data: bytes, seed: int) -> bytes:
    """Same length, but the JPEG's tables (right after the start marker) overwritten with junk."""
    rng = random.Random(seed)
    out = bytearray(data)
    for i in range(2, min(len(out) - 2, 602)):
        out[i] = rng.randrange(256)
    return bytes(out)
