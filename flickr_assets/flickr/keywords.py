"""The keywords file: one search per line, in the seed's ``place_rec_queries.txt`` format plus options.

::

    # comment (a whole line, or after " #")
    colosseum
    eiffel tower | tags | license=cc | has_geo=any | bbox=2.2,48.8,2.4,48.9
    mount fuji | uploaded=2010-01-01..2015-12-31 | taken=..2012-01-01
    @defaults has_geo=0 | license=cc        (options for every later line)
    -wedding                                (a negative term added to every full-text query)

Options: ``tags`` / ``text`` (search mode), ``tag_mode=any|all``, ``has_geo=1|0|any``,
``license=cc|open|any|<ids>``, ``bbox=min_lon,min_lat,max_lon,max_lat``, ``uploaded=FROM..TO``,
``taken=FROM..TO`` (dates ``YYYY[-MM[-DD[ HH:MM[:SS]]]]``, either side may be empty, TO is inclusive),
``media=photos|videos|all``, and a few plain ``flickr.photos.search`` arguments (``accuracy=11``...).
Settings apply in order: the caller's defaults, then ``@defaults`` lines, then the line's own options.
A line that cannot be used is skipped and reported in ``problems`` with the file name and line number.
"""

import calendar
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flickr_assets.flickr.query import DEFAULT_START, LICENSE_ALIASES, SearchQuery
from flickr_assets.storage.keys import KeywordError, normalize_keyword, validate_keyword

MAX_FILE_BYTES = 5_000_000
#: Search arguments that may be given as-is on a keyword line (they go to ``SearchQuery.extra``).
PASSTHROUGH = frozenset(
    {"accuracy", "safe_search", "content_type", "geo_context", "user_id", "group_id", "woe_id", "place_id",
     "lat", "lon", "radius", "radius_units", "is_commons", "in_gallery", "is_getty", "machine_tags",
     "machine_tag_mode"}
)  # fmt: skip
OPTIONS = ("tags", "text", "tag_mode", "has_geo", "license", "bbox", "uploaded", "taken", "media")

_DATE = re.compile(r"^(\d{4})(?:-(\d{1,2})(?:-(\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?)?)?$")


class KeywordsFileError(ValueError):
    """The keywords file as a whole cannot be read (missing, binary, not UTF-8, too large)."""


class OptionError(ValueError):
    """One option on one line is wrong; the message says which and why."""


@dataclass(frozen=True)
class KeywordsFile:
    """The usable searches of a keywords file, in file order, and one line per problem found."""

    entries: list[SearchQuery]
    problems: list[str] = field(default_factory=list)
    source: str = "<text>"

    @property
    def keywords(self) -> list[str]:
        return [entry.keyword for entry in self.entries]

    def query(self, keyword: str) -> SearchQuery | None:
        """The search of ``keyword`` (matched after normalisation, case-insensitively), or None."""
        wanted = normalize_keyword(keyword).casefold()
        return next((entry for entry in self.entries if entry.keyword.casefold() == wanted), None)


def load_keywords_file(path: str | Path, defaults: Mapping[str, Any] | None = None) -> KeywordsFile:
    """Read and parse the keywords file at ``path``; see :func:`parse_keywords`."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise KeywordsFileError(f"keywords file {path} does not exist (set FLICKR_KEYWORDS_FILE)") from None
    except OSError as error:
        raise KeywordsFileError(f"cannot read keywords file {path}: {error.strerror or error}") from None
    if len(data) > MAX_FILE_BYTES:
        raise KeywordsFileError(f"keywords file {path} is {len(data):,} bytes; the limit is {MAX_FILE_BYTES:,}")
    if b"\x00" in data:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        raise KeywordsFileError(f"keywords file {path} line {line}: binary data (a NUL byte); expected UTF-8 text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise KeywordsFileError(f"keywords file {path} line {line}: not UTF-8 text (byte {error.start})") from None
    return parse_keywords(text, source=str(path), defaults=defaults)


def parse_keywords(text: str, source: str = "<text>", defaults: Mapping[str, Any] | None = None) -> KeywordsFile:
    """Parse keywords-file text; ``defaults`` are ``SearchQuery`` fields (or option strings) from the caller."""
    base = _apply_defaults(SearchQuery(keyword="-"), defaults or {})
    problems: list[str] = []
    negatives: list[str] = []
    pending: list[tuple[int, SearchQuery]] = []
    first_line: dict[str, tuple[int, str]] = {}

    for number, raw in enumerate(text.splitlines(), start=1):
        line = _strip_comment(raw)
        if not line:
            continue
        where = f"{source} line {number}"
        if line.startswith("@"):
            directive, _, rest = line.partition(" ")
            if directive != "@defaults":
                problems.append(f"{where}: unknown directive {directive!r} (only @defaults exists)")
                continue
            try:
                base = _apply_options(base, _split_options(rest))
            except OptionError as error:
                problems.append(f"{where}: {error}")
            continue
        if line.startswith("-"):
            terms = [term.lstrip("-") for term in line.split()]
            negatives += [term for term in terms if term and term not in negatives]
            continue
        keyword_text, _, options = line.partition("|")
        keyword = normalize_keyword(keyword_text)
        try:
            validate_keyword(keyword)
            query = _apply_options(base.with_options(keyword=keyword), _split_options(options))
        except (KeywordError, OptionError) as error:
            shown = keyword if len(keyword) <= 60 else keyword[:57] + "..."
            problems.append(f"{where}: {error}" + (f" ({shown!r})" if isinstance(error, KeywordError) else ""))
            continue
        folded = keyword.casefold()
        if folded in first_line:
            earlier, spelled = first_line[folded]
            problems.append(f"{where}: {keyword!r} repeats line {earlier} ({spelled!r}); keeping the first")
            continue
        first_line[folded] = (number, keyword)
        pending.append((number, query))

    entries = [
        query.with_options(negative_terms=(*query.negative_terms, *negatives))
        if query.mode == "text" and negatives
        else query
        for _, query in pending
    ]
    return KeywordsFile(entries=entries, problems=problems, source=source)


# --- options -----------------------------------------------------------------------------------
def _strip_comment(line: str) -> str:
    stripped = line.strip()
    if stripped.startswith("#"):
        return ""
    for marker in (" #", "\t#"):
        if marker in stripped:
            stripped = stripped[: stripped.index(marker)]
    return stripped.strip()


def _split_options(text: str) -> list[str]:
    return [part.strip() for part in text.split("|") if part.strip()]


def _apply_defaults(query: SearchQuery, defaults: Mapping[str, Any]) -> SearchQuery:
    """Caller defaults: ``SearchQuery`` field values, or option strings as written in the file."""
    fields = {name: value for name, value in defaults.items() if name in SearchQuery.__dataclass_fields__}
    options = [f"{name}={value}" for name, value in defaults.items() if name not in fields]
    return _apply_options(query.with_options(**fields), options)


def _apply_options(query: SearchQuery, options: list[str]) -> SearchQuery:
    changes: dict[str, Any] = {}
    extra = dict(query.extra)
    for option in options:
        name, has_value, value = (part.strip() for part in option.partition("="))
        name = name.lower()
        if name in ("tags", "text") and not has_value:
            changes["mode"] = name
        elif not has_value:
            raise OptionError(f"option {option!r} needs a value ({name}=...)")
        elif name == "tag_mode":
            changes["tag_mode"] = _choice(name, value, ("any", "all"))
        elif name == "has_geo":
            changes["has_geo"] = parse_has_geo(value)
        elif name == "license":
            changes["licenses"] = _licenses(value)
        elif name == "bbox":
            changes["bbox"] = _bbox(value)
        elif name == "uploaded":
            low, high = _range(name, value)
            changes["min_upload"] = low.replace(tzinfo=UTC) if low else DEFAULT_START
            changes["max_upload"] = high.replace(tzinfo=UTC) if high else None
        elif name == "taken":
            changes["min_taken"], changes["max_taken"] = _range(name, value)
        elif name == "media":
            changes["media"] = _choice(name, value, ("photos", "videos", "all"))
        elif name in PASSTHROUGH:
            extra[name] = value
        else:
            known = ", ".join((*OPTIONS, *sorted(PASSTHROUGH)))
            raise OptionError(f"unknown option {name!r} (known: {known})")
    return query.with_options(**changes, extra=extra)


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value.lower() not in allowed:
        raise OptionError(f"{name}={value!r} is not one of {', '.join(allowed)}")
    return value.lower()


def parse_has_geo(value: str) -> bool | None:
    """A ``has_geo`` value: True (1, yes, true, on), False (0, no, false, off) or None (any, all, both)."""
    lowered = value.strip().lower()
    if lowered in ("1", "yes", "true", "on"):
        return True
    if lowered in ("0", "no", "false", "off"):
        return False
    if lowered in ("any", "all", "both"):
        return None
    raise OptionError(f"has_geo={value!r} is not 1, 0 or any")


def _licenses(value: str) -> tuple[int, ...]:
    lowered = value.lower()
    if lowered in ("any", "all"):
        return ()
    if lowered in LICENSE_ALIASES:
        return LICENSE_ALIASES[lowered]
    ids: list[int] = []
    for part in lowered.split(","):
        part = part.strip()
        if not part.isdecimal() or not 0 <= int(part) <= 99:
            aliases = ", ".join(LICENSE_ALIASES)
            reason = f"is not a licence id (0-99; Flickr's are 0-16) or one of {aliases}, any"
            raise OptionError(f"license={value!r}: {part!r} {reason}")
        ids.append(int(part))
    return tuple(sorted(set(ids)))


def _bbox(value: str) -> tuple[float, float, float, float]:
    try:
        numbers = [float(part) for part in value.split(",")]
    except ValueError:
        numbers = []
    if len(numbers) != 4:
        raise OptionError(f"bbox={value!r} must be four numbers: min_lon,min_lat,max_lon,max_lat")
    min_lon, min_lat, max_lon, max_lat = numbers
    if not (-180 <= min_lon < max_lon <= 180 and -90 <= min_lat < max_lat <= 90):
        raise OptionError(f"bbox={value!r} is not a box (need -180 <= min_lon < max_lon <= 180, same for lat in ±90)")
    return min_lon, min_lat, max_lon, max_lat


def _range(name: str, value: str) -> tuple[datetime | None, datetime | None]:
    if ".." not in value:
        raise OptionError(f"{name}={value!r} must be FROM..TO (either side may be empty)")
    low_text, high_text = (part.strip() for part in value.split("..", 1))
    low = _date(name, low_text, end=False) if low_text else None
    high = _date(name, high_text, end=True) if high_text else None
    if low and high and low > high:
        raise OptionError(f"{name}={value!r}: the start is after the end")
    return low, high


def _date(name: str, text: str, end: bool) -> datetime:
    """``YYYY[-MM[-DD[ HH:MM[:SS]]]]``; an end date without a time means the end of that period."""
    match = _DATE.match(text)
    if not match:
        raise OptionError(f"{name}: {text!r} is not a date (YYYY-MM-DD or YYYY-MM-DD HH:MM:SS)")
    year, month, day, hour, minute, second = match.groups()
    try:
        y = int(year)
        m = int(month) if month else (12 if end else 1)
        d = int(day) if day else (calendar.monthrange(y, m)[1] if end else 1)
        if hour is not None:
            return datetime(y, m, d, int(hour), int(minute), int(second or 0))
        return datetime(y, m, d, 23, 59, 59) if end else datetime(y, m, d)
    except ValueError as error:  # month 13, day 31 of April, ...
        raise OptionError(f"{name}: {text!r} is not a valid date ({error})") from None
