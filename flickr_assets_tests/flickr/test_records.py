"""Photo JSON -> records row: Flickr's mixed types, "no location" zeros, odd taken dates, bad photos."""

import json
from datetime import UTC, datetime

import pyarrow as pa
import pytest

from flickr_assets.flickr.records import BadPhoto, photo_to_row, upload_second
from flickr_assets.storage.records import records_table
from flickr_assets.storage.schemas import RECORDS

SEEN = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)

PHOTO = {
    "id": "53637883806",
    "owner": "12345678@N07",
    "secret": "ff06bb5c65",
    "server": "65535",
    "farm": 66,
    "title": "Tour Eiffel & friends",
    "ispublic": 1,
    "license": "4",
    "description": {"_content": "<b>Paris</b> at night"},
    "dateupload": "1712509720",
    "datetaken": "2024-04-07 16:09:01",
    "datetakengranularity": "0",
    "datetakenunknown": "0",
    "ownername": "Jane",
    "tags": "paris eiffeltower  night",
    "machine_tags": "geo:lat=48.85",
    "originalsecret": "7917d6e9a2",
    "originalformat": "jpg",
    "latitude": "48.858",
    "longitude": 2.2945,
    "accuracy": "16",
    "context": 0,
    "views": "1234",
    "media": "photo",
    "url_l": "http://127.0.0.1/65535/53637883806_ff06bb5c65_b.jpg",
    "height_l": "768",
    "width_l": 1024,
    "url_o": "http://127.0.0.1/65535/53637883806_7917d6e9a2_o.jpg",
    "height_o": 3000,
    "width_o": "4000",
}


def test_full_photo_becomes_a_typed_row_that_fits_the_schema():
    row = photo_to_row(PHOTO, "eiffel tower", SEEN)
    assert row["photo_id"] == 53637883806
    assert row["farm"] == 66 and row["license"] == 4 and row["views"] == 1234
    assert row["tags"] == ["paris", "eiffeltower", "night"]
    assert row["machine_tags"] == ["geo:lat=48.85"]
    assert row["description"] == "<b>Paris</b> at night"
    assert row["date_upload"] == datetime(2024, 4, 7, 17, 8, 40, tzinfo=UTC)
    assert row["date_taken"] == datetime(2024, 4, 7, 16, 9, 1) and row["date_taken"].tzinfo is None
    assert row["date_taken_granularity"] == 0 and row["date_taken_unknown"] is False
    assert (row["latitude"], row["longitude"], row["accuracy"]) == (48.858, 2.2945, 16)
    assert (row["width_l"], row["height_l"], row["width_o"], row["height_o"]) == (1024, 768, 4000, 3000)
    assert row["original_secret"] == "7917d6e9a2" and row["original_format"] == "jpg"
    assert row["first_seen"] == row["last_seen"] == SEEN
    table = pa.Table.from_pylist([row], schema=RECORDS)  # every value has the schema's type
    assert table.column("photo_id").to_pylist() == [53637883806]


@pytest.mark.parametrize(
    ("latitude", "longitude", "accuracy"),
    [("0", "0", "0"), (0, 0, 0), ("48.8", "2.3", "0"), (0, 0, "16"), ("95", "2", "16"), (None, None, None)],
)
def test_no_location_is_null(latitude, longitude, accuracy):
    photo = {**PHOTO, "latitude": latitude, "longitude": longitude, "accuracy": accuracy}
    row = photo_to_row(photo, "k", SEEN)
    assert (row["latitude"], row["longitude"], row["accuracy"]) == (None, None, None)


@pytest.mark.parametrize(
    ("taken", "expected"),
    [
        ("0000-00-00 00:00:00", None),
        ("2010-05-00 00:00:00", datetime(2010, 5, 1)),
        ("2010-00-00 00:00:00", datetime(2010, 1, 1)),
        ("2019-02-30 10:00:00", None),
        ("garbage", None),
        (12345, None),
        ("2008-07-01", datetime(2008, 7, 1)),
    ],
)
def test_taken_dates(taken, expected):
    assert photo_to_row({**PHOTO, "datetaken": taken}, "k", SEEN)["date_taken"] == expected


def test_missing_optional_fields_and_wrong_types_become_null():
    photo = {k: PHOTO[k] for k in ("id", "owner", "secret", "server", "dateupload")}
    photo.update(farm="x", views=[1], license={"a": 1}, width_l="wide", title=123, tags=None)
    row = photo_to_row(photo, "k", SEEN)
    assert row["farm"] is None and row["views"] is None and row["license"] is None and row["width_l"] is None
    assert row["title"] == "123" and row["tags"] == [] and row["description"] is None and row["url_l"] is None
    pa.Table.from_pylist([row], schema=RECORDS)


def test_values_out_of_column_range_do_not_break_the_batch():
    row = photo_to_row({**PHOTO, "accuracy": "1000", "datetakengranularity": 99999, "license": "³"}, "k", SEEN)
    assert row["accuracy"] is None and row["date_taken_granularity"] is None and row["license"] is None
    assert upload_second({"dateupload": "²"}) is None and upload_second({"dateupload": "--1300000000"}) is None
    pa.Table.from_pylist([row], schema=RECORDS)


def test_half_an_emoji_in_the_json_is_replaced_not_fatal():
    # JSON may escape a lone UTF-16 surrogate ("\ud83d", a truncated emoji): valid JSON, invalid UTF-8.
    photo = json.loads('{"title": "Colosseum \\ud83d", "tags": "rome \\udc00x", "description": "\\ud83d"}')
    row = photo_to_row({**PHOTO, **photo}, "k", SEEN)
    assert (row["title"], row["tags"], row["description"]) == ("Colosseum \ufffd", ["rome", "\ufffdx"], "\ufffd")
    table = records_table([row])
    assert table["title"].to_pylist() == ["Colosseum \ufffd"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"id": None}, "id"),
        ({"id": "abc"}, "id"),
        ({"owner": ""}, "owner"),
        ({"secret": None}, "secret"),
        ({"dateupload": "yesterday"}, "dateupload"),
        ({"id": "²"}, "id"),  # a digit to str.isdigit, not to int()
        ({"dateupload": "①"}, "dateupload"),
        ({"dateupload": "--1300000000"}, "dateupload"),
        ({"secret": "f" * 300}, "secret"),  # it names the stored file: ENAMETOOLONG on every run
        ({"owner": "../../tmp/x"}, "owner"),
        ({"id": "-5"}, "id"),
    ],
)
def test_photos_without_required_fields_are_rejected_with_a_reason(change, reason):
    with pytest.raises(BadPhoto, match=reason):
        photo_to_row({**PHOTO, **change}, "k", SEEN)


def test_a_non_object_photo_is_rejected():
    with pytest.raises(BadPhoto, match="not an object"):
        photo_to_row(["not", "a", "photo"], "k", SEEN)
