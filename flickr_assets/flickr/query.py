"""What to ask Flickr for one keyword: the search options of a keyword line."""

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

#: Creative Commons licence ids (Flickr's flickr.photos.licenses.getInfo, 2025).
CC_LICENSES = (1, 2, 3, 4, 5, 6, 9, 10, 11, 12, 13, 14, 15, 16)
#: Licences that allow reuse without extra permission: the CC ones (CC0 and the Public Domain Mark included),
#: plus 7 (no known copyright restrictions) and 8 (United States Government work).
OPEN_LICENSES = (*CC_LICENSES, 7, 8)
LICENSE_ALIASES: dict[str, tuple[int, ...]] = {"cc": CC_LICENSES, "open": OPEN_LICENSES}

DEFAULT_START = datetime(2004, 1, 1, tzinfo=UTC)
#: flickr.photos.search arguments that make a geo query (at most 250 results per page).
GEO_ARGUMENTS = ("bbox", "has_geo", "geo_context", "lat", "lon", "radius", "woe_id", "place_id")


@dataclass(frozen=True)
class SearchQuery:
    """One keyword's search, as written in the keywords file (defaults follow the seed).

    ``keyword`` is the partition key and what Flickr searches for (:meth:`api_arguments`): the ``text``
    argument in full-text mode, the ``tags`` argument in tags mode, each followed by the negative terms.
    """

    keyword: str
    mode: str = "text"  # "text" (title, description, tags) or "tags"
    tag_mode: str = "any"  # for mode="tags": "any" or "all"
    negative_terms: tuple[str, ...] = ()
    has_geo: bool | None = True  # True: geotagged only (the seed's default); False: not; None: all
    licenses: tuple[int, ...] = ()  # empty: every licence
    bbox: tuple[float, float, float, float] | None = None  # min_lon, min_lat, max_lon, max_lat
    min_upload: datetime = DEFAULT_START
    max_upload: datetime | None = None  # None: now
    min_taken: datetime | None = None
    max_taken: datetime | None = None
    media: str = "photos"
    extra: dict[str, str] = field(default_factory=dict)  # other flickr.photos.search arguments

    @property
    def is_geo(self) -> bool:
        """Geo queries get at most 250 results per page from Flickr: any geo argument makes one, ``has_geo=0``
        included."""
        return self.has_geo is not None or self.bbox is not None or any(name in self.extra for name in GEO_ARGUMENTS)

    @property
    def page_size(self) -> int:
        return 250 if self.is_geo else 500

    def api_arguments(self) -> dict[str, str]:
        """The flickr.photos.search arguments of this query, without dates, paging or extras."""
        args: dict[str, str] = {}
        if self.mode == "tags":
            args["tags"] = ",".join([self.keyword, *(f"-{t}" for t in self.negative_terms)])
            args["tag_mode"] = self.tag_mode
        else:
            args["text"] = " ".join([self.keyword, *(f"-{t}" for t in self.negative_terms)])
        if self.has_geo is not None:
            args["has_geo"] = "1" if self.has_geo else "0"
        if self.licenses:
            args["license"] = ",".join(str(i) for i in self.licenses)
        if self.bbox is not None:
            args["bbox"] = ",".join(f"{v:g}" for v in self.bbox)
        args.update(taken_arguments(self.min_taken, self.max_taken))
        if self.media:
            args["media"] = self.media
        args.update(self.extra)
        return args

    def with_options(self, **changes: object) -> "SearchQuery":
        """A copy with the fields named in ``changes`` replaced."""
        return replace(self, **changes)  # type: ignore[arg-type]


def taken_arguments(low: datetime | None, high: datetime | None) -> dict[str, str]:
    """The search arguments of a taken-date range, both ends inclusive (None: open on that side)."""
    arguments = {}
    if low is not None:
        arguments["min_taken_date"] = low.strftime("%Y-%m-%d %H:%M:%S")
    if high is not None:
        arguments["max_taken_date"] = high.strftime("%Y-%m-%d %H:%M:%S")
    return arguments
