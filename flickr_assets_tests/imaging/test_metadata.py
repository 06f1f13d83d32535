"""The record inside the stored file, read back with Pillow and by parsing: COM JSON, EXIF, XMP, GPS."""

import io
import json
import math
import xml.etree.ElementTree as ET

import pytest
from PIL import ExifTags, Image

from flickr_assets.imaging import process_image
from flickr_assets_tests.imaging.synthetic import jpeg, photo

RECORD = {
    "photo_id": 53012345678,
    "keyword": "tour eiffel",
    "title": "Tour Eiffel – café au lait ☕",
    "description": 'Seen from <b>Trocadéro</b> & the "river"',
    "tags": ["paris", "eiffel", "tour eiffel", "nuit"],
    "owner": "12345678@N07",
    "owner_name": "Zoë Müller",
    "license": 4,
    "date_taken": "2012-05-03T14:22:01",
    "latitude": 48.858222,
    "longitude": -2.2945,
    "url": "http://127.0.0.1:8080/65535/53012345678_abcdef1234_b.jpg",
    "views": 1234,
    "accuracy": None,
}
NS = {
    "x": "adobe:ns:meta/",
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dc": "http://purl.org/dc/elements/1.1/",
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "xmpRights": "http://ns.adobe.com/xap/1.0/rights/",
    "exif": "http://ns.adobe.com/exif/1.0/",
}


def _comment(image: Image.Image) -> dict:
    return json.loads(b"".join(s for marker, s in image.applist if marker == "COM").decode("utf-8"))


def _xmp(image: Image.Image) -> ET.Element:
    return ET.fromstring(image.info["xmp"]).find("rdf:RDF/rdf:Description", NS)


@pytest.fixture(scope="module", params=["kept", "reencoded"])
def stored(request: pytest.FixtureRequest) -> Image.Image:
    size = (1024, 768) if request.param == "kept" else (2048, 1536)
    result = process_image(jpeg(photo(*size, seed=1)), RECORD)
    assert result.reencoded is (request.param == "reencoded")
    return Image.open(io.BytesIO(result.jpeg))


def test_whole_record_is_json_in_the_comment(stored: Image.Image) -> None:
    assert _comment(stored) == RECORD
    assert stored.info["comment"].decode("utf-8").startswith('{"accuracy":null,"date_taken"')  # sorted keys


def test_standard_exif_fields(stored: Image.Image) -> None:
    exif = stored.getexif()
    assert exif[ExifTags.Base.ImageDescription] == "Tour Eiffel - cafe au lait ?"  # EXIF is ASCII
    assert exif[ExifTags.Base.Artist] == "Zoe Muller"
    assert exif[ExifTags.Base.Copyright] == "(c) Zoe Muller, CC BY 2.0 https://creativecommons.org/licenses/by/2.0/"
    assert exif[ExifTags.Base.Software] == "flickr-assets"
    assert ExifTags.Base.Orientation not in exif
    sub = exif.get_ifd(ExifTags.IFD.Exif)
    assert sub[ExifTags.Base.DateTimeOriginal] == "2012:05:03 14:22:01"
    assert sub[ExifTags.Base.ImageUniqueID] == "53012345678"


def test_gps_in_exif(stored: Image.Image) -> None:
    gps = stored.getexif().get_ifd(ExifTags.IFD.GPSInfo)
    lat = sum(float(v) / 60**i for i, v in enumerate(gps[ExifTags.GPS.GPSLatitude]))
    lon = sum(float(v) / 60**i for i, v in enumerate(gps[ExifTags.GPS.GPSLongitude]))
    assert gps[ExifTags.GPS.GPSLatitudeRef] == "N" and gps[ExifTags.GPS.GPSLongitudeRef] == "W"
    assert math.isclose(lat, 48.858222, abs_tol=1e-5) and math.isclose(-lon, -2.2945, abs_tol=1e-5)


def test_xmp_packet(stored: Image.Image) -> None:
    raw = stored.info["xmp"]
    assert raw.startswith(b"<?xpacket begin=") and raw.rstrip().endswith(b'<?xpacket end="w"?>')
    desc = _xmp(stored)
    assert desc.find("dc:title/rdf:Alt/rdf:li", NS).text == RECORD["title"]
    assert desc.find("dc:description/rdf:Alt/rdf:li", NS).text == RECORD["description"]
    assert desc.find("dc:creator/rdf:Seq/rdf:li", NS).text == "Zoë Müller"
    assert [li.text for li in desc.findall("dc:subject/rdf:Bag/rdf:li", NS)] == RECORD["tags"]
    assert "CC BY 2.0" in desc.find("dc:rights/rdf:Alt/rdf:li", NS).text
    assert desc.find("xmpRights:WebStatement", NS).text == "https://creativecommons.org/licenses/by/2.0/"
    assert desc.find("dc:source", NS).text == RECORD["url"]
    assert desc.find("xmp:CreateDate", NS).text == "2012-05-03T14:22:01"
    assert desc.find("exif:GPSLatitude", NS).text == "48,51.493320N"
    assert desc.find("exif:GPSLongitude", NS).text == "2,17.670000W"


def test_sparse_record_without_location_or_date() -> None:
    record = {"photo_id": 7, "owner": "99@N01", "latitude": 0, "longitude": 0, "date_taken": None, "tags": []}
    result = process_image(jpeg(photo(800, 600, seed=2)), record)
    image = Image.open(io.BytesIO(result.jpeg))
    assert _comment(image) == record
    exif = image.getexif()
    assert exif[ExifTags.Base.Artist] == "99@N01"
    assert not exif.get_ifd(ExifTags.IFD.GPSInfo)
    assert ExifTags.Base.DateTimeOriginal not in exif.get_ifd(ExifTags.IFD.Exif)
    assert _xmp(image).find("exif:GPSLatitude", NS) is None


def test_huge_record_spans_several_comment_segments() -> None:
    record = {"photo_id": 8, "description": "ü" * 70_000 + "€" * 20_000, "tags": [f"tag{i}" for i in range(9000)]}
    result = process_image(jpeg(photo(800, 600, seed=3)), record)
    image = Image.open(io.BytesIO(result.jpeg))
    segments = [s for marker, s in image.applist if marker == "COM"]
    assert len(segments) >= 3
    for part in segments:  # each segment is valid UTF-8 on its own
        part.decode("utf-8")
    assert _comment(image) == record
    assert len(image.info["xmp"]) < 65_000  # XMP shortened to fit its one segment; the comment has all


def test_unsafe_values_are_made_json_safe_and_keys_never_stored() -> None:
    record = {"photo_id": 9, "latitude": float("nan"), "api_key": "SECRET-KEY-123", "title": "a\x01b"}
    result = process_image(jpeg(photo(800, 600, seed=4)), record)
    assert b"SECRET-KEY-123" not in result.jpeg
    image = Image.open(io.BytesIO(result.jpeg))
    assert _comment(image) == {"photo_id": 9, "latitude": None, "title": "a\x01b"}
    assert _xmp(image).find("dc:title/rdf:Alt/rdf:li", NS).text == "ab"  # XML cannot hold control characters
