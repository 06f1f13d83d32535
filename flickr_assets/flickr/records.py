"""Turn one photo of a ``flickr.photos.search`` answer (JSON, with extras) into a records row.

Flickr's JSON mixes numbers and numeric strings, sends ``0`` for "no location", ``0000-00-00`` taken dates
and HTML in descriptions. :func:`photo_to_row` accepts all of that; a photo without the fields a record
cannot do without (id, owner, secret, server, upload date) raises :class:`BadPhoto` with the reason, so the
harvest can skip and count it instead of failing.
"""

import math
import re
from datetime import UTC, datetime
from typing import Any

#: Every extra the records need, asked for in the search call itself (never one call per photo).
EXTRAS = (
    "description,license,date_upload,date_taken,owner_name,original_format,geo,tags,machine_tags,o_dims,views,media,"
    "url_l,url_o"
)

_NAME_PART = re.compile(r"[A-Za-z0-9@_-]{1,64}")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_TAKEN = re.compile(r"^\s*(\d{1,4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{1,2})(?::(\d{1,2}))?)?")


class BadPhoto(ValueError):
    """A photo dict that cannot become a record; the message is the reason (short, for counters)."""


def photo_to_row(photo: Any, keyword: str, seen: datetime) -> dict[str, Any]:
    """The records row (``storage.schemas.RECORDS``) of ``photo``; ``seen`` fills first_seen/last_seen."""
    if not isinstance(photo, dict):
        raise BadPhoto(f"photo is a {type(photo).__name__}, not an object")
    photo_id = _int(photo.get("id"), 1, 2**63 - 1)
    if photo_id is None:
        raise BadPhoto("missing or non-numeric id")
    owner, secret, server = _text(photo.get("owner")), _text(photo.get("secret")), _text(photo.get("server"))
    if not owner or not secret or not server:
        raise BadPhoto("missing owner, secret or server")
    if not all(_NAME_PART.fullmatch(part) for part in (owner, secret, server)):
        # they name the stored file: "12345678@N07", "ff06bb5c65", "65535" on Flickr
        raise BadPhoto("owner, secret or server is not a short run of letters, digits, @, _ or -")
    uploaded = _int(photo.get("dateupload"), 0, 2**40)
    if uploaded is None:
        raise BadPhoto("missing or non-numeric dateupload")

    latitude, longitude, accuracy = _location(photo)
    return {
        "photo_id": photo_id,
        "keyword": keyword,
        "owner": owner,
        "owner_name": _text(photo.get("ownername")),
        "secret": secret,
        "server": server,
        "farm": _int(photo.get("farm"), 0, 2**31 - 1),
        "title": _text(photo.get("title")),
        "description": _description(photo.get("description")),
        "tags": _words(photo.get("tags")),
        "machine_tags": _words(photo.get("machine_tags")),
        "date_upload": datetime.fromtimestamp(uploaded, UTC),
        "date_taken": _taken(photo.get("datetaken")),
        "date_taken_granularity": _int(photo.get("datetakengranularity"), 0, 127),
        "date_taken_unknown": _flag(photo.get("datetakenunknown")),
        "latitude": latitude,
        "longitude": longitude,
        "accuracy": accuracy,
        "license": _int(photo.get("license"), 0, 32767),
        "views": _int(photo.get("views"), 0, 2**63 - 1),
        "media": _text(photo.get("media")),
        "url_l": _text(photo.get("url_l")),
        "width_l": _int(photo.get("width_l"), 0, 2**31 - 1),
        "height_l": _int(photo.get("height_l"), 0, 2**31 - 1),
        "url_o": _text(photo.get("url_o")),
        "width_o": _int(photo.get("width_o", photo.get("o_width")), 0, 2**31 - 1),
        "height_o": _int(photo.get("height_o", photo.get("o_height")), 0, 2**31 - 1),
        "original_secret": _text(photo.get("originalsecret")),
        "original_format": _text(photo.get("originalformat")),
        "first_seen": seen,
        "last_seen": seen,
    }


def upload_second(photo: Any) -> int | None:
    """The photo's upload time as a unix second, or None when it has none usable."""
    return _int(photo.get("dateupload"), 0, 2**40) if isinstance(photo, dict) else None


def _int(value: Any, low: int, high: int) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    elif isinstance(value, str) and value.strip().lstrip("-").isdecimal():
        try:
            number = int(value)
        except ValueError:  # "--1300000000"
            return None
    else:
        return None
    return number if low <= number <= high else None


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    return _utf8(value) if isinstance(value, str) else str(value)


def _utf8(text: str) -> str:
    """``text`` with any lone UTF-16 surrogate (JSON may carry half an emoji: ``"\\ud83d"``) replaced by U+FFFD:
    Parquet, JPEG comments and XMP need valid UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _LONE_SURROGATE.sub("\ufffd", text)
    return text


def _flag(value: Any) -> bool | None:
    number = _int(value, 0, 1)
    return None if number is None else bool(number)


def _description(value: Any) -> str | None:
    if isinstance(value, dict):
        return _text(value.get("_content"))
    return _text(value)


def _words(value: Any) -> list[str]:
    if isinstance(value, str):
        return _utf8(value).split()
    if isinstance(value, list):
        return [_utf8(item) if isinstance(item, str) else str(item) for item in value if isinstance(item, str | int)]
    return []


def _taken(value: Any) -> datetime | None:
    """Flickr's taken date (owner's local time, no zone); ``0000-…`` and unparseable values give None."""
    if not isinstance(value, str):
        return None
    match = _TAKEN.match(value)
    if not match:
        return None
    year, month, day, hour, minute, second = (int(part) if part else 0 for part in match.groups())
    if year == 0:
        return None
    try:
        # Month/day granularity dates are sometimes sent as "2010-05-00": take the first of the period.
        return datetime(year, max(month, 1), max(day, 1), hour, minute, second)
    except ValueError:
        return None


def _location(photo: dict[str, Any]) -> tuple[float | None, float | None, int | None]:
    """Latitude, longitude, accuracy — all None when Flickr signals "no location" (accuracy 0 or 0,0)."""
    latitude, longitude = _float(photo.get("latitude")), _float(photo.get("longitude"))
    accuracy = _int(photo.get("accuracy"), 0, 127)
    if latitude is None or longitude is None or not accuracy:
        return None, None, None
    if (latitude == 0 and longitude == 0) or abs(latitude) > 90 or abs(longitude) > 180:
        return None, None, None
    return latitude, longitude, accuracy
