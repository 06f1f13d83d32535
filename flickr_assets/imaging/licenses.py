"""Flickr licence ids (flickr.photos.licenses.getInfo, 2025 names) for the rights fields of stored images."""

_CC = "https://creativecommons.org/licenses/"

#: licence id -> (name, url or None)
LICENSES: dict[int, tuple[str, str | None]] = {
    0: ("All Rights Reserved", None),
    1: ("CC BY-NC-SA 2.0", _CC + "by-nc-sa/2.0/"),
    2: ("CC BY-NC 2.0", _CC + "by-nc/2.0/"),
    3: ("CC BY-NC-ND 2.0", _CC + "by-nc-nd/2.0/"),
    4: ("CC BY 2.0", _CC + "by/2.0/"),
    5: ("CC BY-SA 2.0", _CC + "by-sa/2.0/"),
    6: ("CC BY-ND 2.0", _CC + "by-nd/2.0/"),
    7: ("No known copyright restrictions", "https://www.flickr.com/commons/usage/"),
    8: ("United States Government Work", "http://www.usa.gov/copyright.shtml"),
    9: ("Public Domain Dedication (CC0)", "https://creativecommons.org/publicdomain/zero/1.0/"),
    10: ("Public Domain Mark", "https://creativecommons.org/publicdomain/mark/1.0/"),
    11: ("CC BY 4.0", _CC + "by/4.0/"),
    12: ("CC BY-SA 4.0", _CC + "by-sa/4.0/"),
    13: ("CC BY-ND 4.0", _CC + "by-nd/4.0/"),
    14: ("CC BY-NC 4.0", _CC + "by-nc/4.0/"),
    15: ("CC BY-NC-SA 4.0", _CC + "by-nc-sa/4.0/"),
    16: ("CC BY-NC-ND 4.0", _CC + "by-nc-nd/4.0/"),
}


def license_info(value: object) -> tuple[str, str | None] | None:
    """(name, url) for a licence id given as int or numeric string; None when absent or unknown."""
    try:
        key = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return LICENSES.get(key)
