"""Keywords as safe path components.

A keyword is user text (spaces, unicode, punctuation). It becomes one folder name by percent-encoding
every byte outside ``[A-Za-z0-9_~-]``, dots included, so it can never contain ``/``, be ``.`` or ``..``,
or start a hidden name. Keywords that cannot be held safely are rejected with a
:class:`KeywordError` that says why.
"""

import unicodedata
import urllib.parse

# Longest encoded folder name we allow: file systems cap a name at 255 bytes, and ``keyword=`` plus
# temp-file prefixes must still fit.
MAX_ENCODED_LENGTH = 200
MAX_KEYWORD_LENGTH = 200


class KeywordError(ValueError):
    """A keyword that cannot be used as a partition key or a folder name."""


def normalize_keyword(raw: str) -> str:
    """Return the canonical form of a keyword: NFC, surrounding whitespace removed, inner runs of
    whitespace collapsed to one space."""
    return " ".join(unicodedata.normalize("NFC", raw).split())


def validate_keyword(keyword: str) -> str:
    """Return ``keyword`` if it is usable, else raise :class:`KeywordError` saying what is wrong."""
    if not keyword or not keyword.strip():
        raise KeywordError("keyword is empty")
    bad = [c for c in keyword if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn")]
    if bad:
        raise KeywordError(f"keyword contains control or invalid characters ({', '.join(map(repr, bad[:3]))})")
    if keyword != normalize_keyword(keyword):
        raise KeywordError("keyword has leading, trailing or repeated whitespace")
    if len(keyword) > MAX_KEYWORD_LENGTH:
        raise KeywordError(f"keyword is {len(keyword)} characters long; the limit is {MAX_KEYWORD_LENGTH}")
    if set(keyword) <= {"."}:
        raise KeywordError("keyword consists only of dots")
    if "..." in keyword:
        # Dagster reads "a...b" as a range of partitions and refuses the key (the whole code location fails).
        raise KeywordError("keyword contains '...' (Dagster reserves it for partition ranges)")
    if "," in keyword:
        # `dagster job backfill --partitions` splits on commas, so such a key could never be selected.
        raise KeywordError("keyword contains a comma (Dagster's CLI cannot select such a partition)")
    if len(encode_keyword(keyword)) > MAX_ENCODED_LENGTH:
        raise KeywordError(f"keyword is too long once encoded for a folder name (limit {MAX_ENCODED_LENGTH} bytes)")
    return keyword


def encode_keyword(keyword: str) -> str:
    """Percent-encode ``keyword`` into one safe folder name (no ``/``, never ``.``/``..``/hidden)."""
    encoded = urllib.parse.quote(keyword, safe="-_")
    return encoded.replace(".", "%2E")


def decode_keyword(name: str) -> str:
    """Invert :func:`encode_keyword`."""
    return urllib.parse.unquote(name)
