"""JPEG marker segments: check a file's structure, and splice metadata segments in without re-encoding."""

import struct

import numpy as np

from flickr_assets.imaging.model import InvalidImage

SOI = b"\xff\xd8"
APP1, COM = 0xE1, 0xFE
_EOI, _SOS, _APP0 = 0xD9, 0xDA, 0xE0
#: Identifiers that open the APP1 payload of an Exif block and of an XMP packet.
EXIF_ID = b"Exif\x00\x00"
XMP_ID = b"http://ns.adobe.com/xap/1.0/\x00"
_XMP_EXT_ID = b"http://ns.adobe.com/xmp/extension/\x00"
#: Markers that may follow an entropy-coded scan: tables, restart interval, next scan, APPn, COM, DNL, EOI.
_AFTER_SCAN = frozenset({0xC4, 0xCC, 0xDB, 0xDC, 0xDD, _SOS, COM, _EOI, *range(0xE0, 0xF0)})
MAX_PAYLOAD = 65533  # a segment's 16-bit length counts itself


def segment(marker: int, payload: bytes) -> bytes:
    """One complete marker segment (0xFF, marker, big-endian length, payload)."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"JPEG segment 0x{marker:02X} payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def _header_segments(data: bytes) -> tuple[list[tuple[int, int, int]], int]:
    """The (marker, start, end) of each segment before the first SOS, and the offset of that SOS."""
    if not data.startswith(SOI):
        raise InvalidImage("corrupt JPEG: missing start-of-image marker")
    segments = []
    pos, n = 2, len(data)
    while True:
        while pos < n and data[pos] == 0xFF and pos + 1 < n and data[pos + 1] == 0xFF:
            pos += 1  # fill bytes
        if pos + 4 > n:
            raise InvalidImage(f"truncated JPEG: header ends at byte {n} before the image data")
        if data[pos] != 0xFF:
            raise InvalidImage(f"corrupt JPEG: expected a marker at byte {pos}, found 0x{data[pos]:02X}")
        marker = data[pos + 1]
        if marker == _SOS:
            return segments, pos
        end = _segment_end(data, pos)
        segments.append((marker, pos, end))
        pos = end


def _segment_end(data: bytes, pos: int) -> int:
    """Where the marker segment at ``pos`` ends, by its length field; InvalidImage if that runs past the data."""
    length = (data[pos + 2] << 8) | data[pos + 3]
    end = pos + 2 + length
    if length < 2 or end > len(data):
        raise InvalidImage(f"corrupt JPEG: segment 0xFF{data[pos + 1]:02X} at byte {pos} has a bad length {length}")
    return end


def check_structure(data: bytes) -> None:
    """Walk every segment and scan up to the end-of-image marker; raise InvalidImage on a broken structure.

    Catches what a decoder may silently paper over: stray markers inside scan data (garbled bytes), segment
    lengths that run past the end, and bodies cut short before the end-of-image marker.
    """
    _, pos = _header_segments(data)
    arr = np.frombuffer(data, dtype=np.uint8)
    n = len(arr)
    ff = np.flatnonzero(arr[:-1] == 0xFF)
    following = arr[ff + 1]
    # In scan data 0xFF is followed by a stuffed 0x00, a restart marker (D0-D7) or fill (FF); anything else ends it.
    ends = ff[~((following == 0) | ((following >= 0xD0) & (following <= 0xD7)) | (following == 0xFF))]
    while True:
        if pos + 2 > n:
            raise InvalidImage(f"truncated JPEG: body ends at byte {n} without an end-of-image marker")
        marker = data[pos + 1]
        if marker == _EOI:
            return
        if pos + 4 > n:
            raise InvalidImage(f"truncated JPEG: body ends at byte {n} inside a marker segment")
        if marker not in _AFTER_SCAN:
            raise InvalidImage(f"corrupt JPEG: unexpected marker 0xFF{marker:02X} at byte {pos}")
        pos = _segment_end(data, pos)
        if marker == _SOS:
            i = int(np.searchsorted(ends, pos))
            if i == len(ends):
                raise InvalidImage(f"truncated JPEG: scan data from byte {pos} has no end-of-image marker")
            pos = int(ends[i])


def _is_replaced(data: bytes, marker: int, start: int) -> bool:
    """Whether a source segment carries metadata that the inserted segments replace (Exif, XMP, comments)."""
    if marker == COM:
        return True
    if marker != APP1:
        return False
    payload = data[start + 4 : start + 4 + len(_XMP_EXT_ID)]
    return payload.startswith((EXIF_ID, XMP_ID, _XMP_EXT_ID))


def comment_payload(data: bytes) -> bytes:
    """The payloads of the COM segments before the image data, joined (b"" when there are none). Reads only
    the header: ``data`` may be just the first part of a file, as long as it reaches the comments."""
    segments, _ = _header_segments(data)
    return b"".join(data[s + 4 : e] for m, s, e in segments if m == COM)


def splice(data: bytes, inserted: list[bytes]) -> bytes:
    """The same JPEG with ``inserted`` segments after SOI/APP0, and its old Exif, XMP and COM segments dropped.

    The image data (tables, frame, scans) is copied byte for byte, so the decoded pixels are unchanged.
    """
    segments, sos = _header_segments(data)
    parts = [SOI]
    rest_start = 0
    if segments and segments[0][0] == _APP0:  # JFIF/JFXX APP0 must stay first
        parts.append(data[segments[0][1] : segments[0][2]])
        rest_start = 1
    parts.extend(inserted)
    parts.extend(data[s:e] for m, s, e in segments[rest_start:] if not _is_replaced(data, m, s))
    parts.append(memoryview(data)[sos:])
    return b"".join(parts)
