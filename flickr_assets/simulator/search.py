"""flickr.photos.search over the universe: matching (shared with the ground truth), sorting, the 4,000 cap."""

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import numpy as np

from .photos import owner_from_nsid
from .universe import Universe

RESULT_CAP = 4_000
MAX_PER_PAGE = 500
MAX_PER_PAGE_GEO = 250
DEFAULT_PER_PAGE = 100
TOTAL_JITTER = 0.03
SORTS = (
    "date-posted-asc",
    "date-posted-desc",
    "date-taken-asc",
    "date-taken-desc",
    "interestingness-desc",
    "interestingness-asc",
    "relevance",
)


class ApiError(Exception):
    """A Flickr in-band error (HTTP 200, stat=fail)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Criteria:
    """What a search asks for, already parsed (the REST search and the ground truth both use it)."""

    text: str | None = None
    tags: tuple[str, ...] = ()
    tag_mode: str = "any"
    user: int | None = None
    has_geo: bool | None = None
    license: tuple[int, ...] | None = None
    bbox: tuple[float, float, float, float] | None = None
    min_upload: int | None = None
    max_upload: int | None = None
    min_taken: int | None = None
    max_taken: int | None = None

    @property
    def limited(self) -> bool:
        """Whether there is a "limiting agent" (without one Flickr refuses or restricts the search)."""
        return bool((self.text and _positive_words(self.text)) or self.tags or self.user is not None) or any(
            v is not None for v in (self.min_upload, self.max_upload, self.min_taken, self.max_taken)
        )


@dataclass(frozen=True)
class SearchResult:
    """One page of a search: the envelope Flickr reports and the rows of the photos on the page."""

    page: int
    pages: int
    per_page: int
    total: int
    rows: np.ndarray


def match(universe: Universe, criteria: Criteria) -> np.ndarray:
    """Sorted rows of every photo matching ``criteria`` (no cap, no ordering games)."""
    cols = universe.cols
    rows: np.ndarray | None = None
    if criteria.text:
        rows = _text_rows(universe, criteria.text)
    if criteria.tags:
        rows = _and(rows, _tag_rows(universe, criteria.tags, criteria.tag_mode))
    if criteria.user is not None:
        rows = _and(rows, np.flatnonzero(cols.owner == criteria.user))
    lo = 0 if criteria.min_upload is None else int(np.searchsorted(cols.upload, criteria.min_upload, "left"))
    hi = len(cols) if criteria.max_upload is None else int(np.searchsorted(cols.upload, criteria.max_upload, "right"))
    rows = np.arange(lo, hi) if rows is None else rows[np.searchsorted(rows, lo) : np.searchsorted(rows, hi)]
    keep = np.ones(len(rows), dtype=bool)
    if criteria.has_geo is not None:
        keep &= (cols.accuracy[rows] > 0) == criteria.has_geo
    if criteria.license is not None:
        keep &= np.isin(cols.license[rows], np.array(criteria.license, dtype=np.int8))
    if criteria.bbox is not None:
        min_lon, min_lat, max_lon, max_lat = criteria.bbox
        lat, lon = cols.lat[rows], cols.lon[rows]
        keep &= (cols.accuracy[rows] > 0) & (lat >= min_lat) & (lat <= max_lat) & (lon >= min_lon) & (lon <= max_lon)
    if criteria.min_taken is not None:
        keep &= cols.taken[rows] >= criteria.min_taken
    if criteria.max_taken is not None:
        keep &= cols.taken[rows] <= criteria.max_taken
    return rows[keep]


def search(
    universe: Universe,
    args: Mapping[str, str],
    now: int,
    rng: np.random.Generator,
    hidden: Callable[[np.ndarray], np.ndarray] | None = None,
) -> SearchResult:
    """Run flickr.photos.search with Flickr's paging rules; raises ApiError for bad requests. ``hidden``
    marks the photo IDs filtered out of a page after paging (counted in ``total``, never shown)."""
    criteria = parse_criteria(args)
    if not criteria.limited:
        if criteria.has_geo is None and criteria.bbox is None:
            raise ApiError(3, "Parameterless searches have been disabled. Please use flickr.photos.getRecent instead.")
        criteria = replace(criteria, min_upload=now - 12 * 3_600)  # geo without a limiting agent: last 12 hours
    media = args.get("media", "all").strip().lower()
    content_type = args.get("content_type", "").strip()
    rows = match(universe, criteria)
    if media == "videos" or content_type in ("2", "3", "5"):
        rows = rows[:0]  # the universe holds photos only
    geo_query = criteria.has_geo is not None or criteria.bbox is not None
    per_page = _int(args.get("per_page"), DEFAULT_PER_PAGE)
    per_page = DEFAULT_PER_PAGE if per_page < 1 else min(per_page, MAX_PER_PAGE_GEO if geo_query else MAX_PER_PAGE)
    page = max(1, _int(args.get("page"), 1))
    n = len(rows)
    total = n if n <= RESULT_CAP else round(n * (1 + rng.uniform(-TOTAL_JITTER, TOTAL_JITTER)))
    pages = math.ceil(total / per_page)
    reachable = min(n, RESULT_CAP)
    start = (page - 1) * per_page
    if start >= RESULT_CAP and reachable:  # beyond the cap Flickr repeats: serve the last in-cap page again
        start = (math.ceil(reachable / per_page) - 1) * per_page
    end = min(start + per_page, reachable)
    sort = args.get("sort", "date-posted-desc").strip().lower() or "date-posted-desc"
    chosen = _ordered_page(universe, rows, sort, start, end, rng) if start < end else rows[:0]
    if hidden is not None:
        chosen = chosen[~hidden(universe.cols.ids[chosen])]
    return SearchResult(page=page, pages=pages, per_page=per_page, total=total, rows=chosen)


def parse_criteria(args: Mapping[str, str]) -> Criteria:
    """Criteria from REST arguments (unparseable optional values are ignored, as Flickr does)."""
    tags = tuple(t for t in (_norm_tag(x) for x in args.get("tags", "").split(",")) if t)
    has_geo_arg = args.get("has_geo")
    has_geo = None if has_geo_arg is None else has_geo_arg.strip() != "0"
    license_arg = args.get("license", "").strip()
    licenses = tuple(int(x) for x in license_arg.split(",") if x.strip().isdecimal()) if license_arg else None
    user_arg = args.get("user_id", "").strip()
    user = None
    if user_arg:
        user = owner_from_nsid(user_arg)
        if user is None:
            raise ApiError(2, "Unknown user")
    tag_mode = args.get("tag_mode", "any").strip().lower()
    if tag_mode == "all" and len(tags) > 20:
        raise ApiError(1, "Too many tags in ALL query")
    return Criteria(
        text=" ".join(args.get("text", "").split()).casefold() or None,
        tags=tags,
        tag_mode="all" if tag_mode == "all" else "any",
        user=user,
        has_geo=has_geo,
        license=licenses,
        bbox=_bbox(args.get("bbox")),
        min_upload=parse_date(args.get("min_upload_date")),
        max_upload=parse_date(args.get("max_upload_date")),
        min_taken=parse_date(args.get("min_taken_date")),
        max_taken=parse_date(args.get("max_taken_date")),
    )


def criteria_from_python(
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
) -> Criteria:
    """Criteria from Python values (the ground truth's signature)."""
    return Criteria(
        text=" ".join(text.split()).casefold() if text else None,
        tags=tuple(t for t in (_norm_tag(x) for x in (tags or ())) if t),
        tag_mode=tag_mode,
        has_geo=has_geo,
        license=None if license is None else tuple(int(x) for x in license),
        bbox=None if bbox is None else tuple(float(x) for x in bbox),  # type: ignore[arg-type]
        min_upload=min_upload_date,
        max_upload=max_upload_date,
        min_taken=min_taken_date,
        max_taken=max_taken_date,
    )


def parse_date(value: str | None) -> int | None:
    """A unix timestamp or a MySQL datetime ("2010-05-01 12:00:00" or "2010-05-01"), as unix seconds."""
    if value is None or not str(value).strip():
        return None
    value = str(value).strip()
    if re.fullmatch(r"-?\d+", value):
        return int(value)
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
        try:
            return int(datetime.strptime(value, fmt).replace(tzinfo=UTC).timestamp())
        except ValueError:
            continue
    return None


# -- helpers ------------------------------------------------------------------------------------------------
def _positive_words(text: str) -> list[str]:
    return [w for w in text.split() if not w.startswith("-")]


def _text_rows(universe: Universe, text: str) -> np.ndarray | None:
    words = text.split()
    positive = " ".join(_positive_words(text))
    rows = None
    if positive:
        rows = universe.keyword_rows(positive)
        if rows is None:
            rows = universe.pseudo_rows(positive)
    for word in (w[1:] for w in words if w.startswith("-") and len(w) > 1):
        for name in universe.keyword_names:
            if word == name.replace(" ", "") or word in name.split():
                excluded = universe.keyword_rows(name)
                rows = np.setdiff1d(np.arange(len(universe.cols)) if rows is None else rows, excluded)
    return rows


def _tag_rows(universe: Universe, tags: tuple[str, ...], mode: str) -> np.ndarray:
    include = [t for t in tags if not t.startswith("-")]
    exclude = [t[1:] for t in tags if t.startswith("-") and len(t) > 1]
    sets = [_one_tag(universe, t) for t in include]
    if not sets:
        rows = np.arange(len(universe.cols))
    elif mode == "all":
        rows = sets[0]
        for other in sets[1:]:
            rows = np.intersect1d(rows, other, assume_unique=True)
    else:
        rows = np.unique(np.concatenate(sets))
    for tag in exclude:
        rows = np.setdiff1d(rows, _one_tag(universe, tag), assume_unique=True)
    return rows


def _one_tag(universe: Universe, tag: str) -> np.ndarray:
    hits = [
        universe.keyword_rows(name)
        for name in universe.keyword_names
        if tag == name.replace(" ", "") or tag in name.split()
    ]
    if not hits:
        return universe.pseudo_rows(f"tag:{tag}")
    return hits[0] if len(hits) == 1 else np.unique(np.concatenate(hits))


def _and(rows: np.ndarray | None, other: np.ndarray) -> np.ndarray:
    return other if rows is None else np.intersect1d(rows, other, assume_unique=True)


def _norm_tag(tag: str) -> str:
    return "".join(tag.split()).casefold()


def _bbox(value: str | None) -> tuple[float, float, float, float] | None:
    if not value:
        return None
    try:
        parts = tuple(float(x) for x in value.split(","))
    except ValueError:
        raise ApiError(18, "Illogical arguments") from None
    if len(parts) != 4 or parts[0] > parts[2] or parts[1] > parts[3]:
        raise ApiError(18, "Illogical arguments")
    return parts  # type: ignore[return-value]


def _int(value: str | None, default: int) -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return default


def _ordered_page(
    universe: Universe, rows: np.ndarray, sort: str, start: int, end: int, rng: np.random.Generator
) -> np.ndarray:
    """Rows at positions [start, end) of the sorted result; photos with equal sort keys come in random order."""
    cols = universe.cols
    if sort in ("date-posted-asc", "date-posted-desc"):
        ordered = rows if sort == "date-posted-asc" else rows[::-1]
        ordered = ordered[: RESULT_CAP + 2_000]  # positions past the cap are never served
        keys = cols.upload[ordered] if sort == "date-posted-asc" else -cols.upload[ordered]
    else:
        column = cols.taken if sort.startswith("date-taken") else cols.interest
        values = column[rows].astype(np.float64)
        if sort in ("date-taken-desc", "interestingness-desc", "relevance") or sort not in SORTS:
            values = -values
        limit = min(len(rows), RESULT_CAP + 1_000)
        top = np.argpartition(values, limit - 1)[:limit] if limit < len(rows) else np.arange(len(rows))
        top = top[np.argsort(values[top], kind="stable")]
        ordered, keys = rows[top], values[top]
    lo = int(np.searchsorted(keys, keys[start], "left"))
    hi = int(np.searchsorted(keys, keys[end - 1], "right"))
    window = ordered[lo:hi]
    shuffled = window[np.lexsort((rng.random(len(window)), keys[lo:hi]))]
    return shuffled[start - lo : end - lo]
