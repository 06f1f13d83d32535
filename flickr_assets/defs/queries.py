"""Search options for every keyword: resource config first, then the keywords file's own settings."""

import os

import dagster as dg

from flickr_assets.defs.partitions import keywords_file_path
from flickr_assets.flickr.keywords import OptionError, load_keywords_file, parse_has_geo, parse_keywords
from flickr_assets.flickr.query import SearchQuery


class QueryDefaults(dg.ConfigurableResource):
    """Options applied to every keyword before the keywords file's ``@defaults`` and per-line options.

    Values are written as in the keywords file: ``has_geo`` 1, 0 or any (the seed harvests geotagged
    photos only); ``license`` cc, open, any or ids; ``mode`` text or tags; ``uploaded`` FROM..TO.
    """

    mode: str = "text"
    has_geo: str = "1"
    license: str = "any"
    uploaded: str = "2004-01-01.."

    def as_options(self) -> dict[str, object]:
        """The defaults as ``parse_keywords`` takes them; a bad value raises ValueError naming the setting."""
        if self.mode not in ("text", "tags"):
            raise ValueError(f"mode must be text or tags, not {self.mode!r}")
        # ``license`` and ``uploaded`` are parsed as keywords-file options; ``mode`` and ``has_geo`` are
        # SearchQuery fields and are given as field values.
        try:
            options = {
                "mode": self.mode,
                "has_geo": parse_has_geo(self.has_geo),
                "license": self.license,
                "uploaded": self.uploaded,
            }
            parse_keywords("", defaults=options)  # a bad licence or date fails here, blamed on the setting
        except OptionError as error:
            raise OptionError(f"query defaults (FLICKR_HAS_GEO, FLICKR_LICENSE, query_defaults): {error}") from None
        return options


def query_for(keyword: str, defaults: QueryDefaults) -> SearchQuery:
    """The search of ``keyword`` as the keywords file defines it now (re-read at every run)."""
    parsed = load_keywords_file(keywords_file_path(), defaults=defaults.as_options())
    query = parsed.query(keyword)
    if query is None:
        raise ValueError(f"keyword {keyword!r} is no longer in the keywords file {keywords_file_path()}")
    return query


def query_defaults_from_env() -> QueryDefaults:
    """``QueryDefaults`` from ``FLICKR_HAS_GEO`` / ``FLICKR_LICENSE`` when set, else the seed's defaults."""
    return QueryDefaults(
        has_geo=os.environ.get("FLICKR_HAS_GEO") or "1", license=os.environ.get("FLICKR_LICENSE") or "any"
    )
