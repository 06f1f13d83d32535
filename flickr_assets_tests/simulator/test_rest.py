"""The REST API over real HTTP, through flickrapi itself and raw requests: shapes, types, errors, paging rules."""

import json
import math
import re
import xml.etree.ElementTree as ET

import flickrapi
import pytest
import requests

from flickr_assets.simulator import DEMO_API_KEY, Simulator

from .helpers import PIPELINE_EXTRAS, flickr, rest, search_json


def test_flickrapi_parsed_json_search_has_flickr_shapes_and_types(sim: Simulator) -> None:
    result = flickr(sim).photos.search(text="stonehenge", per_page=50, extras=PIPELINE_EXTRAS + ",path_alias")
    photos = result["photos"]
    assert result["stat"] == "ok"
    assert (photos["page"], photos["perpage"], photos["total"]) == (1, 50, 150)
    assert photos["pages"] == 3
    assert len(photos["photo"]) == 50
    for photo in photos["photo"]:
        assert re.fullmatch(r"\d+", photo["id"]) and re.fullmatch(r"[0-9a-f]{10}", photo["secret"])
        assert re.fullmatch(r"\d+@N0\d", photo["owner"])
        assert isinstance(photo["farm"], int) and isinstance(photo["server"], str)
        assert isinstance(photo["license"], str) and 0 <= int(photo["license"]) <= 16
        assert isinstance(photo["dateupload"], str) and isinstance(photo["views"], str)
        assert isinstance(photo["datetakengranularity"], int) and photo["datetakenunknown"] in ("0", "1")
        assert set(photo["description"]) == {"_content"}
        assert "stonehenge" in photo["tags"].split()
        assert (photo["media"], photo["media_status"]) == ("photo", "ready")
        assert "pathalias" in photo
        if photo["accuracy"] == 0:  # not geotagged: zeros as numbers
            assert (photo["latitude"], photo["longitude"], photo["context"]) == (0, 0, 0)
        else:
            assert isinstance(photo["latitude"], str) and -90 <= float(photo["latitude"]) <= 90
            assert isinstance(photo["accuracy"], str)
        if "url_o" in photo:  # the owner lets others see the Original
            assert photo["originalformat"] == "jpg" and re.fullmatch(r"[0-9a-f]{10}", photo["originalsecret"])
            assert photo["url_o"].startswith(sim.base_url)
            assert photo["url_o"].endswith(f"_{photo['originalsecret']}_o.jpg")
            assert (photo["width_o"], photo["height_o"]) == (int(photo["o_width"]), int(photo["o_height"]))
        else:  # neither the Original's URL nor its secret
            assert "originalsecret" not in photo and "originalformat" not in photo and "width_o" not in photo
        if "url_l" in photo:
            assert photo["url_l"].endswith(f"/{photo['id']}_{photo['secret']}_b.jpg")
            assert max(photo["width_l"], photo["height_l"]) == 1024
            assert max(int(photo["o_width"]), int(photo["o_height"])) > 1024
    assert any("url_l" not in p for p in photos["photo"])  # some photos have no Large
    hidden = sum("url_o" not in p for p in photos["photo"])
    assert 3 <= hidden <= 20  # ~20% of owners hide their Originals
    near = [p for p in photos["photo"] if p["accuracy"] != 0 and abs(float(p["latitude"]) - 51.18) < 1]
    geotagged = [p for p in photos["photo"] if p["accuracy"] != 0]
    assert len(near) >= 0.7 * len(geotagged)  # most geotagged Stonehenge photos are at Stonehenge


def test_flickrapi_etree_search_matches_the_documented_xml(sim: Simulator) -> None:
    rsp = flickr(sim, fmt="etree").photos.search(text="colosseum", per_page=10, extras="description,geo,url_l")
    assert rsp.tag == "rsp" and rsp.get("stat") == "ok"
    photos = rsp.find("photos")
    assert {k: photos.get(k) for k in ("page", "pages", "perpage", "total")} == {
        "page": "1",
        "pages": "6",
        "perpage": "10",
        "total": "60",
    }
    first = photos.findall("photo")[0]
    assert list(first.keys())[:9] == [
        "id",
        "owner",
        "secret",
        "server",
        "farm",
        "title",
        "ispublic",
        "isfriend",
        "isfamily",
    ]
    assert first.find("description") is not None


def test_raw_xml_and_jsonp_wrappers(sim: Simulator) -> None:
    xml = rest(sim, method="flickr.test.echo", format="rest", nojsoncallback=None).text
    assert xml.startswith('<?xml version="1.0" encoding="utf-8" ?>\n<rsp stat="ok">')
    assert ET.fromstring(xml).find("method").text == "flickr.test.echo"
    wrapped = rest(sim, method="flickr.test.echo", nojsoncallback=None, foo="a/b").text
    assert wrapped.startswith("jsonFlickrApi(") and wrapped.endswith(")")
    assert '"a\\/b"' in wrapped  # Flickr escapes slashes
    assert json.loads(wrapped[len("jsonFlickrApi(") : -1])["foo"] == {"_content": "a/b"}
    custom = rest(sim, method="flickr.test.echo", nojsoncallback=None, jsoncallback="cb").text
    assert custom.startswith("cb(")
    post = requests.post(
        sim.rest_url,
        data={"method": "flickr.test.echo", "api_key": DEMO_API_KEY, "format": "json", "nojsoncallback": 1},
    )
    assert post.json()["stat"] == "ok"


def test_licenses_and_echo(sim: Simulator) -> None:
    api = flickr(sim)
    licenses = api.photos.licenses.getInfo()["licenses"]["license"]
    assert sorted(int(x["id"]) for x in licenses) == list(range(17))
    assert {x["id"]: x["name"] for x in licenses}[4] == "CC BY 2.0"
    assert api.test.echo(foo="bar")["foo"] == {"_content": "bar"}


@pytest.mark.parametrize(
    ("key", "message"),
    [("not-a-key", "Key has invalid format"), ("0" * 32, "Key not found")],
)
def test_bad_keys_are_code_100(sim: Simulator, key: str, message: str) -> None:
    with pytest.raises(flickrapi.FlickrError) as raised:
        flickr(sim, key=key).photos.search(text="sunset")
    assert raised.value.code == 100 and message in str(raised.value)
    missing = rest(sim, method="flickr.test.echo", api_key="").json()
    assert (missing["stat"], missing["code"]) == ("fail", 100)


def test_in_band_errors_have_http_200_and_flickr_codes(sim: Simulator) -> None:
    with pytest.raises(flickrapi.FlickrError) as raised:
        flickr(sim).photos.doesNotExist()
    assert raised.value.code == 112
    unknown_format = rest(sim, method="flickr.test.echo", format="yaml")
    assert unknown_format.status_code == 200
    assert '<err code="111" msg="Format &quot;yaml&quot; not found" />' in unknown_format.text
    no_criteria = rest(sim, method="flickr.photos.search")
    assert no_criteria.status_code == 200 and no_criteria.json()["code"] == 3
    xml_error = rest(sim, method="flickr.nope", format="rest")
    assert '<rsp stat="fail">' in xml_error.text and 'code="112"' in xml_error.text


def test_only_4000_results_are_distinct_and_later_pages_repeat(sim: Simulator) -> None:
    with requests.Session() as session:
        args = {"text": "new york", "per_page": 500, "sort": "interestingness-desc"}
        pages = [search_json(sim, session, page=p, **args) for p in range(1, 11)]
    ids = [[p["id"] for p in page["photo"]] for page in pages]
    assert len(set().union(*ids[:8])) == 4_000
    assert set(ids[8]) == set(ids[7]) == set(ids[9])  # pages 9, 10 repeat the last in-cap page
    totals = {page["total"] for page in pages}
    assert all(abs(t - 120_000) <= 120_000 * 0.03 + 1 for t in totals) and len(totals) > 1  # jittered
    assert all(page["pages"] == math.ceil(page["total"] / 500) for page in pages)


def test_geo_queries_get_at_most_250_per_page_and_per_page_caps_at_500(sim: Simulator) -> None:
    geo = search_json(sim, text="mount fuji", has_geo=1, per_page=500)
    assert geo["perpage"] == 250 and len(geo["photo"]) == 250
    boxed = search_json(sim, text="mount fuji", bbox="138,35,139.5,36", per_page=400)
    assert boxed["perpage"] == 250
    plain = search_json(sim, text="mount fuji", per_page=900)
    assert plain["perpage"] == 500 and len(plain["photo"]) == 500
    default = search_json(sim, text="mount fuji")
    assert default["perpage"] == 100


def test_search_filters_agree_with_the_photos_returned(sim: Simulator) -> None:
    photos = search_json(
        sim,
        text="eiffel tower",
        has_geo=1,
        license="4,5,9",
        min_upload_date="2015-01-01 00:00:00",
        max_upload_date=1_700_000_000,
        sort="date-posted-asc",
        extras="geo,license,date_upload",
        per_page=250,
    )
    assert photos["photo"]
    uploads = [int(p["dateupload"]) for p in photos["photo"]]
    assert uploads == sorted(uploads) and uploads[0] >= 1_420_070_400 and uploads[-1] <= 1_700_000_000
    assert all(p["license"] in ("4", "5", "9") and p["accuracy"] != 0 for p in photos["photo"])
    not_geo = search_json(sim, text="eiffel tower", has_geo=0, extras="geo", per_page=100)
    assert all(p["accuracy"] == 0 for p in not_geo["photo"])
    desc = search_json(sim, text="eiffel tower", extras="date_upload", per_page=100)
    uploads = [int(p["dateupload"]) for p in desc["photo"]]
    assert uploads == sorted(uploads, reverse=True)
    none = search_json(sim, text="eiffel tower", media="videos")
    assert (none["total"], none["pages"], none["photo"]) == (0, 0, [])


def test_arbitrary_text_matches_a_small_deterministic_set(sim: Simulator) -> None:
    first = search_json(sim, text="café", per_page=500)
    again = search_json(sim, text="Café ", per_page=500)
    other = search_json(sim, text="black/white", per_page=500)
    assert 30 <= first["total"] <= 300
    assert {p["id"] for p in first["photo"]} == {p["id"] for p in again["photo"]}
    assert {p["id"] for p in first["photo"]} != {p["id"] for p in other["photo"]}


def test_equal_upload_seconds_come_in_a_different_order_between_calls(sim: Simulator) -> None:
    # Sunset has batches of photos uploaded in the same second; their order shifts between identical calls.
    orders = set()
    for _ in range(5):
        page = search_json(sim, text="sunset", per_page=500, extras="date_upload")
        orders.add(tuple(p["id"] for p in page["photo"]))
    assert len(orders) > 1
    uploads = [int(p["dateupload"]) for p in page["photo"]]
    assert len(set(uploads)) < len(uploads)
