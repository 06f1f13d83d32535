"""The photo's record inside the stored JPEG: JSON in COM segments, standard EXIF, and an XMP packet."""

import hashlib
import html
import json
import math
import re
import unicodedata
from collections.abc import Mapping
from datetime import date, datetime
from urllib.parse import urlsplit

from PIL import ExifTags, Image

from flickr_assets.imaging.jpeg_segments import (
    APP1,
    COM,
    EXIF_ID,
    MAX_PAYLOAD,
    XMP_ID,
    comment_payload,
    segment,
    splice,
)
from flickr_assets.imaging.licenses import license_info

SOFTWARE = "flickr-assets"
#: Record attributes that change all the time on their own (a view count): embedded as they were when the file
#: was written, but a change in them alone is not worth rewriting a file (every file would be, every week).
VOLATILE_KEYS = frozenset({"views"})
#: Record attributes holding an image's URL (compared without their host).
IMAGE_URL_KEYS = frozenset({"url_l", "url_o"})
_DROPPED_KEYS = frozenset({"api_key", "api_secret", "flickr_api_key", "flickr_api_secret", "oauth_token"})
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_EXIF_TEXT_MAX = 2000
_PUNCTUATION = str.maketrans(
    {
        "\u2013": "-",
        "\u2014": "-",
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2026": "...",
        "\u00a0": " ",
        "\u00df": "ss",
        "\u00e6": "ae",
        "\u00c6": "AE",
        "\u0153": "oe",
        "\u00f8": "o",
        "\u00d8": "O",
        "\u0142": "l",
    }
)


_JSON_PLAIN = frozenset({str, int, bool})


def _jsonable(value: object) -> object:
    """A JSON-safe copy: NaN/inf become null, dates ISO strings, numpy scalars and arrays plain Python."""
    if value is None or type(value) in _JSON_PLAIN:  # most of a record: nothing to check further
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if hasattr(value, "tolist"):  # numpy scalars and arrays, without importing numpy here
        return _jsonable(value.tolist())
    return value


def comment_json(metadata: Mapping[str, object]) -> bytes:
    """The record as UTF-8 JSON (sorted keys, non-ASCII kept), as stored in the JPEG comment."""
    record = {k: v for k, v in metadata.items() if str(k).lower() not in _DROPPED_KEYS}
    return json.dumps(_jsonable(record), ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str).encode(
        "utf-8"
    )


def comment_segments(payload: bytes) -> list[bytes]:
    """COM segments holding ``payload``, split at UTF-8 character boundaries when over one segment's size."""
    parts, start = [], 0
    while start < len(payload):
        end = min(start + MAX_PAYLOAD, len(payload))
        while end < len(payload) and payload[end] & 0xC0 == 0x80:  # don't split a multi-byte character
            end -= 1
        parts.append(segment(COM, payload[start:end]))
        start = end
    return parts


def _text(value: object) -> str | None:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    text = str(value).strip()
    return text or None


def _ascii(text: str) -> str:
    """EXIF ASCII fields: accents folded (café -> cafe), other non-ASCII as '?', length capped."""
    plain = "".join(
        c for c in unicodedata.normalize("NFKD", text.translate(_PUNCTUATION)) if not unicodedata.combining(c)
    )
    folded = plain.encode("ascii", "replace")
    return folded.decode("ascii")[:_EXIF_TEXT_MAX]


def _tags(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return value.split()
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, list | tuple):
        return [str(t) for t in value if t is not None and str(t).strip()]
    return []


def _taken(metadata: Mapping[str, object]) -> datetime | None:
    if metadata.get("date_taken_unknown") in (True, 1, "1"):
        return None
    value = metadata.get("date_taken")
    if isinstance(value, datetime):
        return value
    text = _text(value)
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _coords(metadata: Mapping[str, object]) -> tuple[float, float] | None:
    try:
        lat, lon = float(metadata["latitude"]), float(metadata["longitude"])  # type: ignore[arg-type]
    except (KeyError, TypeError, ValueError):
        return None
    if not (math.isfinite(lat) and math.isfinite(lon)) or abs(lat) > 90 or abs(lon) > 180:
        return None
    if lat == 0 and lon == 0:  # Flickr reports 0, 0 for photos without a location
        return None
    return lat, lon


def _rights(metadata: Mapping[str, object]) -> tuple[str | None, str | None]:
    """(rights statement, licence url) from the licence id and the owner's name."""
    info = license_info(metadata.get("license"))
    who = _text(metadata.get("owner_name")) or _text(metadata.get("owner"))
    if info is None:
        return (f"(c) {who}" if who else None), None
    name, url = info
    text = f"{name}{' ' + url if url else ''}"
    return (f"(c) {who}, {text}" if who else text), url


def _dms(value: float) -> tuple[float, float, float]:
    value = abs(value)
    degrees = int(value)
    minutes_f = (value - degrees) * 60
    minutes = int(minutes_f)
    return float(degrees), float(minutes), round((minutes_f - minutes) * 60, 4)


def exif_bytes(metadata: Mapping[str, object]) -> bytes:
    """EXIF (TIFF) block: ImageDescription, Artist, Copyright, Software, DateTimeOriginal, ImageUniqueID, GPS.

    Orientation is absent on purpose: stored pixels are always upright.
    """
    exif = Image.Exif()
    exif[ExifTags.Base.Software] = SOFTWARE
    if title := _text(metadata.get("title")):
        exif[ExifTags.Base.ImageDescription] = _ascii(title)
    if artist := _text(metadata.get("owner_name")) or _text(metadata.get("owner")):
        exif[ExifTags.Base.Artist] = _ascii(artist)
    rights, _ = _rights(metadata)
    if rights:
        exif[ExifTags.Base.Copyright] = _ascii(rights)
    sub = exif.get_ifd(ExifTags.IFD.Exif)
    if taken := _taken(metadata):
        sub[ExifTags.Base.DateTimeOriginal] = taken.strftime("%Y:%m:%d %H:%M:%S")
    if photo_id := _text(metadata.get("photo_id")):
        sub[ExifTags.Base.ImageUniqueID] = _ascii(photo_id)
    if coords := _coords(metadata):
        lat, lon = coords
        gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
        gps[ExifTags.GPS.GPSVersionID] = b"\x02\x03\x00\x00"
        gps[ExifTags.GPS.GPSLatitudeRef] = "N" if lat >= 0 else "S"
        gps[ExifTags.GPS.GPSLatitude] = _dms(lat)
        gps[ExifTags.GPS.GPSLongitudeRef] = "E" if lon >= 0 else "W"
        gps[ExifTags.GPS.GPSLongitude] = _dms(lon)
    return exif.tobytes()


def _x(text: str) -> str:
    return html.escape(_XML_INVALID.sub("", text), quote=False).replace('"', "&quot;")


def _xmp_coord(value: float, pos: str, neg: str) -> str:
    """XMP GPS coordinate form 'DDD,MM.mmmmmmK'."""
    degrees = int(abs(value))
    minutes = (abs(value) - degrees) * 60
    return f"{degrees},{minutes:.6f}{pos if value >= 0 else neg}"


def xmp_packet(metadata: Mapping[str, object], *, description: bool = True, max_tags: int | None = None) -> bytes:
    """An XMP packet with dc:title/description/creator/subject/rights/source/identifier, dates and GPS."""
    fields = []
    if title := _text(metadata.get("title")):
        fields.append(f'<dc:title><rdf:Alt><rdf:li xml:lang="x-default">{_x(title)}</rdf:li></rdf:Alt></dc:title>')
    if description and (desc := _text(metadata.get("description"))):
        fields.append(
            f'<dc:description><rdf:Alt><rdf:li xml:lang="x-default">{_x(desc)}</rdf:li></rdf:Alt></dc:description>'
        )
    if creator := _text(metadata.get("owner_name")) or _text(metadata.get("owner")):
        fields.append(f"<dc:creator><rdf:Seq><rdf:li>{_x(creator)}</rdf:li></rdf:Seq></dc:creator>")
    tags = _tags(metadata.get("tags"))[:max_tags]
    if tags:
        items = "".join(f"<rdf:li>{_x(t)}</rdf:li>" for t in tags)
        fields.append(f"<dc:subject><rdf:Bag>{items}</rdf:Bag></dc:subject>")
    rights, license_url = _rights(metadata)
    if rights:
        fields.append(f'<dc:rights><rdf:Alt><rdf:li xml:lang="x-default">{_x(rights)}</rdf:li></rdf:Alt></dc:rights>')
    if license_url:
        fields.append(f"<xmpRights:WebStatement>{_x(license_url)}</xmpRights:WebStatement>")
    if source := _text(metadata.get("url")):
        fields.append(f"<dc:source>{_x(source)}</dc:source>")
    if photo_id := _text(metadata.get("photo_id")):
        fields.append(f"<dc:identifier>{_x(photo_id)}</dc:identifier>")
    if taken := _taken(metadata):
        stamp = taken.replace(tzinfo=None).isoformat(timespec="seconds")
        fields.append(f"<xmp:CreateDate>{stamp}</xmp:CreateDate>")
        fields.append(f"<exif:DateTimeOriginal>{stamp}</exif:DateTimeOriginal>")
    if coords := _coords(metadata):
        fields.append(f"<exif:GPSLatitude>{_xmp_coord(coords[0], 'N', 'S')}</exif:GPSLatitude>")
        fields.append(f"<exif:GPSLongitude>{_xmp_coord(coords[1], 'E', 'W')}</exif:GPSLongitude>")
    fields.append(f"<xmp:CreatorTool>{SOFTWARE}</xmp:CreatorTool>")
    body = "\n   ".join(fields)
    packet = (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '  <rdf:Description rdf:about=""\n'
        '    xmlns:dc="http://purl.org/dc/elements/1.1/"\n'
        '    xmlns:xmp="http://ns.adobe.com/xap/1.0/"\n'
        '    xmlns:xmpRights="http://ns.adobe.com/xap/1.0/rights/"\n'
        '    xmlns:exif="http://ns.adobe.com/exif/1.0/">\n'
        f"   {body}\n"
        "  </rdf:Description>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    )
    return packet.encode("utf-8")


def _fitting_xmp(metadata: Mapping[str, object]) -> bytes:
    """The XMP packet, shortened (description dropped, then tags trimmed) to fit one APP1 segment."""
    room = MAX_PAYLOAD - len(XMP_ID)
    packet = xmp_packet(metadata)
    if len(packet) <= room:
        return packet
    max_tags = len(_tags(metadata.get("tags")))
    packet = xmp_packet(metadata, description=False)
    while len(packet) > room and max_tags > 0:
        max_tags //= 2
        packet = xmp_packet(metadata, description=False, max_tags=max_tags)
    if len(packet) > room:  # a title alone over 64 kB: the full record is still in the comment
        packet = xmp_packet({"photo_id": metadata.get("photo_id"), "url": metadata.get("url")})
    return packet


def metadata_segments(metadata: Mapping[str, object]) -> list[bytes]:
    """Every segment to insert after SOI/APP0: APP1 Exif, APP1 XMP, then the COM segment(s) with the JSON."""
    exif = exif_bytes(metadata)
    if not exif.startswith(EXIF_ID):
        exif = EXIF_ID + exif
    return [
        segment(APP1, exif),
        segment(APP1, XMP_ID + _fitting_xmp(metadata)),
        *comment_segments(comment_json(metadata)),
    ]


def metadata_digest(metadata: Mapping[str, object]) -> str:
    """sha256 of the embedded record (its comment JSON) without the volatile attributes and the image URLs'
    hosts: equal digests mean the file's Exif, XMP and comment would come out the same but for those."""
    steady = {k: v for k, v in metadata.items() if k not in VOLATILE_KEYS}
    for key in IMAGE_URL_KEYS & steady.keys():
        steady[key] = without_host(steady[key])
    return hashlib.sha256(comment_json(steady)).hexdigest()


def without_host(url: object) -> object:
    """An image URL without its scheme and host: a new static host (or a simulator on another port) alone shows
    no other picture, and rewriting every file for it would also unshare those hard-linked between keywords."""
    return urlsplit(url).path if isinstance(url, str) else url


def embedded_record(data: bytes) -> dict | None:
    """The record embedded in a stored JPEG's comment (None when it holds no JSON object). ``data`` may be
    only the start of the file, as long as it reaches the image data."""
    try:
        record = json.loads(comment_payload(data).decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) else None


def restamp(data: bytes, metadata: Mapping[str, object]) -> bytes:
    """A stored JPEG with its metadata segments rebuilt from ``metadata``: Exif, XMP and comments replaced,
    everything else (tables, colour profile, scans) copied byte for byte, so the pixels do not change."""
    return splice(data, metadata_segments(metadata))
