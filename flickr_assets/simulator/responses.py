"""Flickr's response bodies: XML (format=rest) and JSON/JSONP, success and in-band errors, types as Flickr sends.

A payload is a tiny element tree: ``Element(name, attrs, children, text)``. XML renders attributes as
strings; JSON follows Flickr's mapping rule (attributes -> members keeping their Python type, text ->
``_content``, repeated children -> arrays) and escapes ``/`` as ``\\/``.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from .photos import (
    PhotoText,
    datetaken,
    original_shown,
    owner_name,
    owner_nsid,
    path_alias,
    photo_secret,
    server,
    sizes,
)
from .search import SearchResult
from .universe import Universe
from .zoo import original_format

LICENSES: tuple[tuple[int, str, str], ...] = (
    (
        0,
        "All Rights Reserved",
        "https://www.flickrhelp.com/hc/en-us/articles/10710266545556-Using-Flickr-images-shared-by-other-members",
    ),
    (4, "CC BY 2.0", "https://creativecommons.org/licenses/by/2.0/"),
    (6, "CC BY-ND 2.0", "https://creativecommons.org/licenses/by-nd/2.0/"),
    (3, "CC BY-NC-ND 2.0", "https://creativecommons.org/licenses/by-nc-nd/2.0/"),
    (2, "CC BY-NC 2.0", "https://creativecommons.org/licenses/by-nc/2.0/"),
    (1, "CC BY-NC-SA 2.0", "https://creativecommons.org/licenses/by-nc-sa/2.0/"),
    (5, "CC BY-SA 2.0", "https://creativecommons.org/licenses/by-sa/2.0/"),
    (7, "No known copyright restrictions", "https://www.flickr.com/commons/usage/"),
    (8, "United States Government Work", "http://www.usa.gov/copyright.shtml"),
    (9, "Public Domain Dedication (CC0)", "https://creativecommons.org/publicdomain/zero/1.0/"),
    (10, "Public Domain Mark", "https://creativecommons.org/publicdomain/mark/1.0/"),
    (11, "CC BY 4.0", "https://creativecommons.org/licenses/by/4.0/"),
    (12, "CC BY-SA 4.0", "https://creativecommons.org/licenses/by-sa/4.0/"),
    (13, "CC BY-ND 4.0", "https://creativecommons.org/licenses/by-nd/4.0/"),
    (14, "CC BY-NC 4.0", "https://creativecommons.org/licenses/by-nc/4.0/"),
    (15, "CC BY-NC-SA 4.0", "https://creativecommons.org/licenses/by-nc-sa/4.0/"),
    (16, "CC BY-NC-ND 4.0", "https://creativecommons.org/licenses/by-nc-nd/4.0/"),
)

HTML_429 = (
    b"<html><body><h1>429 Too Many Requests</h1>\n"
    b"You have sent too many requests in a given amount of time.\n</body></html>\n"
)
HTML_5XX = (
    b"<html><body><h1>502 Bad Gateway</h1>\nThe server returned an invalid or incomplete response.\n</body></html>\n"
)


@dataclass
class Element:
    """One node of a payload: rendered as an XML element, or as a JSON object by Flickr's mapping rule."""

    name: str
    attrs: list[tuple[str, object]] = field(default_factory=list)
    children: list["Element"] = field(default_factory=list)
    text: str | None = None


@dataclass(frozen=True)
class Format:
    """How the caller asked to be answered."""

    kind: str  # "rest" or "json"
    callback: str | None = "jsonFlickrApi"  # None: plain JSON (nojsoncallback=1)

    @property
    def content_type(self) -> str:
        """The Content-Type Flickr sends for this format."""
        if self.kind == "rest":
            return "text/xml; charset=utf-8"
        return "application/json; charset=utf-8" if self.callback is None else "text/javascript; charset=utf-8"


def ok(fmt: Format, payload: list[Element]) -> bytes:
    """A ``stat="ok"`` body carrying ``payload``."""
    if fmt.kind == "rest":
        body = "".join(_xml(e, 1) for e in payload)
        return f'<?xml version="1.0" encoding="utf-8" ?>\n<rsp stat="ok">\n{body}</rsp>\n'.encode()
    obj: dict[str, object] = {}
    for element in payload:
        obj[element.name] = _json_value(element)
    obj["stat"] = "ok"
    return _json(fmt, obj)


def fail(fmt: Format, code: int, message: str) -> bytes:
    """A ``stat="fail"`` body: Flickr's in-band error (sent with HTTP 200)."""
    if fmt.kind == "rest":
        error = f'\t<err code="{code}" msg="{_attr(message)}" />\n'
        return f'<?xml version="1.0" encoding="utf-8" ?>\n<rsp stat="fail">\n{error}</rsp>\n'.encode()
    return _json(fmt, {"stat": "fail", "code": code, "message": message})


def licenses_payload() -> list[Element]:
    """flickr.photos.licenses.getInfo."""
    items = [Element("license", [("id", lid), ("name", name), ("url", url)]) for lid, name, url in LICENSES]
    return [Element("licenses", children=items)]


def echo_payload(args: Mapping[str, str]) -> list[Element]:
    """flickr.test.echo: the arguments back, the API key left out."""
    return [Element(name, text=value) for name, value in args.items() if name not in ("api_key",)]


def photos_payload(universe: Universe, result: SearchResult, extras: set[str], base_url: str) -> list[Element]:
    """flickr.photos.search: the ``photos`` envelope and one ``photo`` per row of the page."""
    photos = [photo_element(universe, int(row), extras, base_url) for row in result.rows]
    envelope = [("page", result.page), ("pages", result.pages), ("perpage", result.per_page), ("total", result.total)]
    return [Element("photos", envelope, photos)]


def photo_element(universe: Universe, row: int, extras: set[str], base_url: str) -> Element:
    """A <photo> of the standard photo list, with attributes in the order and types Flickr uses."""
    cols = universe.cols
    photo_id = int(cols.ids[row])
    upload = int(cols.upload[row])
    owner = int(cols.owner[row])
    srv = server(photo_id, upload)
    text = PhotoText(universe, row)
    sec = photo_secret(universe, photo_id)
    a: list[tuple[str, object]] = [
        ("id", str(photo_id)),
        ("owner", owner_nsid(owner)),
        ("secret", sec),
        ("server", srv),
        ("farm", 66 if srv == "65535" else 1 + photo_id % 9),
        ("title", text.title),
        ("ispublic", 1),
        ("isfriend", 0),
        ("isfamily", 0),
    ]
    if "license" in extras:
        a.append(("license", str(int(cols.license[row]))))
    if "date_upload" in extras:
        a.append(("dateupload", str(upload)))
    if "date_taken" in extras:
        a += [
            ("datetaken", datetaken(int(cols.taken[row]))),
            ("datetakengranularity", int(cols.granularity[row])),
            ("datetakenunknown", "1" if cols.taken_unknown[row] else "0"),
        ]
    if "owner_name" in extras:
        a.append(("ownername", owner_name(owner)))
    if "tags" in extras:
        a.append(("tags", text.tags))
    if "machine_tags" in extras:
        a.append(("machine_tags", text.machine_tags))
    if "original_format" in extras and original_shown(universe, row):
        a += [("originalsecret", photo_secret(universe, photo_id, "o")), ("originalformat", original_format(cols, row))]
    if "geo" in extras:
        accuracy = int(cols.accuracy[row])
        if accuracy:
            woeid = str(20_000_000 + photo_id % 9_000_000)
            a += [
                ("latitude", f"{float(cols.lat[row]):.6f}".rstrip("0").rstrip(".")),
                ("longitude", f"{float(cols.lon[row]):.6f}".rstrip("0").rstrip(".")),
                ("accuracy", str(accuracy)),
                ("context", 0),
                ("place_id", f"p{woeid}"),
                ("woeid", woeid),
                ("geo_is_public", 1),
                ("geo_is_contact", 0),
                ("geo_is_friend", 0),
                ("geo_is_family", 0),
            ]
        else:
            a += [("latitude", 0), ("longitude", 0), ("accuracy", 0), ("context", 0)]
    if "o_dims" in extras:
        a += [("o_width", str(int(cols.width[row]))), ("o_height", str(int(cols.height[row])))]
    if "views" in extras:
        a.append(("views", str(int(cols.views[row]))))
    if "media" in extras:
        a += [("media", "photo"), ("media_status", "ready")]
    wanted = {e[4:] for e in extras if e.startswith("url_")}
    if wanted:
        osec = photo_secret(universe, photo_id, "o")
        for size in sizes(universe, row, wanted):
            if size.name == "o":
                url = f"{base_url}/{srv}/{photo_id}_{osec}_o.{original_format(cols, row)}"
            else:
                url = f"{base_url}/{srv}/{photo_id}_{sec}{'_' + size.suffix if size.suffix else ''}.jpg"
            a += [(f"url_{size.name}", url), (f"height_{size.name}", size.height), (f"width_{size.name}", size.width)]
    if "path_alias" in extras:
        a.append(("pathalias", path_alias(owner)))
    element = Element("photo", a)
    if "description" in extras:
        element.children.append(Element("description", text=text.description))
    return element


# -- encoders -----------------------------------------------------------------------------------------------
def _xml(element: Element, depth: int) -> str:
    pad = "\t" * depth
    attrs = "".join(f' {k}="{_attr(v)}"' for k, v in element.attrs)
    if element.children:
        inner = "".join(_xml(c, depth + 1) for c in element.children)
        return f"{pad}<{element.name}{attrs}>\n{inner}{pad}</{element.name}>\n"
    if element.text is not None:
        return f"{pad}<{element.name}{attrs}>{escape(element.text)}</{element.name}>\n"
    return f"{pad}<{element.name}{attrs} />\n"


def _attr(value: object) -> str:
    return escape("" if value is None else str(value), {'"': "&quot;", "\n": "&#10;"})


def _json_value(element: Element) -> object:
    obj: dict[str, object] = dict(element.attrs)
    if element.text is not None:
        obj["_content"] = element.text
    groups: dict[str, list[object]] = {}
    for child in element.children:
        groups.setdefault(child.name, []).append(_json_value(child))
    for name, values in groups.items():
        # A lone text child (like <description>) is an object; a list element (photo, license) is an array.
        obj[name] = values[0] if name == "description" else values
    if element.name == "photos" and "photo" not in obj:
        obj["photo"] = []
    if element.name == "licenses" and "license" not in obj:
        obj["license"] = []
    return obj


def _json(fmt: Format, obj: dict[str, object]) -> bytes:
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).replace("/", "\\/")
    if fmt.callback is not None:
        text = f"{fmt.callback}({text})"
    return text.encode()
