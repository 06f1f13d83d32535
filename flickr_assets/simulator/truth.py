"""Ground truth for tests and benchmarks: which photos match a query, what each download should give."""

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .geometry import content_box, is_too_small, scaled_dims
from .photos import original_shown
from .search import criteria_from_python, match
from .spec import LARGE_EDGE
from .universe import Universe
from .zoo import NORMAL, ZOO_KINDS


@dataclass(frozen=True)
class DownloadTruth:
    """What the downloader should conclude for a photo.

    ``status``: "ok", "too_small", "unavailable" (deleted: placeholder; or neither a Large nor an Original
    one may see), "not_found" (no such photo), "invalid" (the served bytes are not a usable image).
    ``source``: "large" when the photo has a Large, else "original" (None when it has neither).
    ``content_box``: (left, top, right, bottom) of the non-frame part of the served source after EXIF
    orientation, None without a frame. ``source_size``: (w, h) of the served source after orientation.
    ``orientation``: EXIF tag of the served source (1 for Larges).
    Too small means a side under 500 px after frame removal and scaling to at most 1024.
    """

    status: str
    source: str | None
    content_box: tuple[int, int, int, int] | None
    source_size: tuple[int, int] | None
    orientation: int
    zoo: str | None = None  # the bad-input kind of a "test pattern" photo


class GroundTruth:
    """Answers about the simulator's current universe (uploads and deletions included)."""

    def __init__(self, universe: Callable[[], Universe]) -> None:
        self._universe = universe

    def search_ids(
        self,
        text: str | None = None,
        tags: Iterable[str] | None = None,
        tag_mode: str = "any",
        has_geo: bool | None = None,
        license: Iterable[int] | None = None,
        bbox: tuple[float, float, float, float] | None = None,
        min_upload_date: int | None = None,
        max_upload_date: int | None = None,
        min_taken_date: int | None = None,
        max_taken_date: int | None = None,
    ) -> set[int]:
        """Every photo ID matching, uncapped (same semantics as flickr.photos.search; dates inclusive)."""
        universe = self._universe()
        criteria = criteria_from_python(
            text=text,
            tags=tags,
            tag_mode=tag_mode,
            has_geo=has_geo,
            license=license,
            bbox=bbox,
            min_upload_date=min_upload_date,
            max_upload_date=max_upload_date,
            min_taken_date=min_taken_date,
            max_taken_date=max_taken_date,
        )
        return {int(i) for i in universe.cols.ids[match(universe, criteria)]}

    def fewest_window_calls(self, per_page: int = 500, **criteria: Any) -> int:
        """The fewest calls any complete walk over upload-time windows needs for a query (``search_ids``'s
        arguments): photos sharing an upload second come back in any order, so a page can only complete
        whole seconds, and the best a walk can do is pack consecutive seconds greedily into pages (a second
        holding more than a page costs at least ``ceil(count / per_page)``), plus the final page."""
        universe = self._universe()
        rows = match(universe, criteria_from_python(**criteria))
        _, counts = np.unique(universe.cols.upload[rows], return_counts=True)
        calls = fill = 0
        for count in counts.tolist():
            if count > per_page:
                calls += (fill > 0) + math.ceil(count / per_page)
                fill = 0
            elif fill + count > per_page:
                calls, fill = calls + 1, count
            else:
                fill += count
        return calls + 1

    def busiest_upload_seconds(self, count: int, **criteria: Any) -> list[tuple[int, int]]:
        """The ``count`` upload seconds holding the most photos matching ``criteria`` (``search_ids``'s
        arguments), busiest first, as (unix second, photos)."""
        universe = self._universe()
        seconds, photos = np.unique(
            universe.cols.upload[match(universe, criteria_from_python(**criteria))], return_counts=True
        )
        busiest = np.argsort(-photos, kind="stable")[:count]
        return [(int(seconds[i]), int(photos[i])) for i in busiest]

    def keywords(self) -> dict[str, int]:
        """Universe keyword -> number of photos matching it now."""
        universe = self._universe()
        return {name: len(universe.keyword_rows(name)) for name in universe.keyword_names}

    def download(self, photo_id: int) -> DownloadTruth:
        """The expected outcome of downloading a photo by the seed's rule (Large, else Original to 1024)."""
        universe = self._universe()
        row = universe.row_of(int(photo_id))
        if row is None:
            return DownloadTruth("not_found", None, None, None, 1)
        cols = universe.cols
        width, height = int(cols.width[row]), int(cols.height[row])
        zoo = ZOO_KINDS[cols.zoo[row]] if cols.zoo[row] != NORMAL else None
        if cols.large[row] and not (zoo and zoo[0] == "large_gone"):
            source, size, orientation = "large", scaled_dims(width, height, LARGE_EDGE), 1
        elif not original_shown(universe, row):  # no Large, and the owner hides the Original: no URL at all
            return DownloadTruth("unavailable", None, None, None, 1)
        else:
            source, size, orientation = "original", (width, height), int(cols.orientation[row])
        if is_too_small(*size, None):
            # The advertised size already rules the photo out: a downloader need not (and ours does not) fetch it,
            # so whether it was deleted is never seen.
            return DownloadTruth("too_small", source, None, size, orientation, zoo and zoo[0])
        if cols.deleted[row]:
            return DownloadTruth("unavailable", source, None, None, 1, zoo and zoo[0])
        box = content_box(int(cols.frame[row]), float(cols.frame_fraction[row]), int(cols.content[row]), *size)
        if zoo is not None and zoo[1] == "invalid":
            return DownloadTruth("invalid", source, None, None, 1, zoo[0])
        status = "too_small" if is_too_small(*size, box) else "ok"
        return DownloadTruth(status, source, box, size, orientation, zoo and zoo[0])

    def duplicate_groups(self) -> list[tuple[str, list[int]]]:
        """Planted duplicates: ("exact", ids) share byte-identical images; ("near", ids) show the same scene."""
        return [(d.kind, list(d.ids)) for d in self._universe().duplicates]

    def photo_ids(self, keyword: str) -> set[int]:
        """Every photo ID of a universe keyword."""
        universe = self._universe()
        rows = universe.keyword_rows(keyword)
        if rows is None:
            raise KeyError(f"{keyword!r} is not a keyword of the simulated universe")
        return {int(i) for i in universe.cols.ids[rows]}
