"""The static photo host over real HTTP: sizes, secrets, placeholders, orientation, duplicates, the zoo."""

import hashlib
import io

import pytest
import requests
from PIL import Image, ImageOps

from flickr_assets.simulator import TEST_PATTERN, Simulator

from .helpers import search_json


def _photos(sim: Simulator, text: str, **args: object) -> list[dict]:
    return search_json(sim, text=text, per_page=500, extras="url_l,url_o,url_sq,url_m,o_dims,original_format", **args)[
        "photo"
    ]


def test_every_advertised_size_is_served_as_a_jpeg_of_that_size(sim: Simulator) -> None:
    photo = next(
        p
        for p in _photos(sim, "golden gate bridge")
        if "url_l" in p and sim.truth.download(int(p["id"])).status == "ok"
    )
    with requests.Session() as session:
        for name in ("sq", "m", "l"):
            response = session.get(photo[f"url_{name}"])
            assert response.status_code == 200 and response.headers["Content-Type"] == "image/jpeg"
            assert int(response.headers["Content-Length"]) == len(response.content)
            image = Image.open(io.BytesIO(response.content))
            assert (image.format, image.size) == ("JPEG", (photo[f"width_{name}"], photo[f"height_{name}"]))
        bits_per_pixel = len(response.content) * 8 / (photo["width_l"] * photo["height_l"])
        assert 1.0 <= bits_per_pixel <= 3.5  # compresses like a photo
        head = session.head(photo["url_l"])
        assert head.status_code == 200 and int(head.headers["Content-Length"]) == len(response.content)
        assert head.content == b""
        original = session.get(photo["url_o"])
        image = ImageOps.exif_transpose(Image.open(io.BytesIO(original.content)))
        assert image.size == (int(photo["o_width"]), int(photo["o_height"]))


def test_rotated_originals_carry_exif_orientation(sim: Simulator) -> None:
    universe = sim.universe
    rotated = [
        p
        for p in _photos(sim, "eiffel tower")
        if universe.cols.orientation[universe.row_of(int(p["id"]))] in (6, 8)
        and max(int(p["o_width"]), int(p["o_height"])) < 2500
        and "url_o" in p
    ]
    assert rotated
    raw = requests.get(rotated[0]["url_o"]).content
    image = Image.open(io.BytesIO(raw))
    orientation = image.getexif().get(0x0112)
    assert orientation in (6, 8)
    upright = ImageOps.exif_transpose(image)
    assert upright.size == (int(rotated[0]["o_width"]), int(rotated[0]["o_height"])) == image.size[::-1]
    assert sim.truth.download(int(rotated[0]["id"])).orientation == orientation


def test_deleted_photos_and_wrong_secrets_redirect_to_the_placeholder(private_sim: Simulator) -> None:
    sim = private_sim  # deletes a photo: not on the shared simulator
    photo = next(
        p for p in _photos(sim, "stonehenge") if "url_l" in p and sim.truth.download(int(p["id"])).status == "ok"
    )
    wrong = photo["url_l"].replace(photo["url_l"].split("/")[-1].split("_")[1], "0123456789")
    redirect = requests.get(wrong, allow_redirects=False)
    assert redirect.status_code == 302 and redirect.headers["Location"].endswith("/photo_unavailable_l.png")
    sim.delete(int(photo["id"]))
    assert sim.truth.download(int(photo["id"])).status == "unavailable"
    for url, placeholder in ((photo["url_l"], "photo_unavailable_l.png"), (photo["url_m"], "photo_unavailable.png")):
        redirect = requests.get(url, allow_redirects=False)
        assert redirect.status_code == 302 and redirect.headers["Location"].endswith(placeholder)
        followed = requests.get(url)
        assert followed.status_code == 200 and followed.headers["Content-Type"] == "image/png"
        assert Image.open(io.BytesIO(followed.content)).format == "PNG"


def test_unknown_paths_answer_404(sim: Simulator) -> None:
    for path in ("/nothing", "/65535/1_0123456789_b.jpg", "/services/other", "/65535/abc_def.jpg"):
        assert requests.get(sim.base_url + path, allow_redirects=False).status_code == 404


def test_exact_duplicates_are_byte_identical_and_near_duplicates_are_not(sim: Simulator) -> None:
    groups = sim.truth.duplicate_groups()
    assert {kind for kind, _ in groups} == {"exact", "near"}
    universe = sim.universe
    stonehenge = sim.truth.photo_ids("stonehenge")
    checked = set()
    with requests.Session() as session:
        for kind, ids in groups:
            if kind in checked or not set(ids) <= stonehenge:
                continue
            digests = set()
            for photo_id in ids:
                row = universe.row_of(photo_id)
                photo = next(
                    p
                    for p in _photos(
                        sim,
                        "stonehenge",
                        min_upload_date=int(universe.cols.upload[row]),
                        max_upload_date=int(universe.cols.upload[row]),
                    )
                    if int(p["id"]) == photo_id
                )
                digests.add(hashlib.sha256(session.get(photo["url_sq"]).content).hexdigest())
            assert len(digests) == (1 if kind == "exact" else 2)
            checked.add(kind)
    assert checked == {"exact", "near"}


def test_the_test_pattern_zoo_serves_what_the_truth_expects(sim: Simulator) -> None:
    photos = _photos(sim, TEST_PATTERN)
    assert 30 <= len(photos) <= 50
    seen, normal = {}, set()
    with requests.Session() as session:
        for photo in photos:
            truth = sim.truth.download(int(photo["id"]))
            url = photo.get("url_l") or photo.get("url_o")
            if url is None:  # no Large, and an owner hiding Originals: nothing to fetch
                assert (truth.zoo, truth.status, truth.source) == (None, "unavailable", None)
                normal.add(truth.status)
                continue
            data = session.get(url).content
            if truth.zoo is None:
                normal.add(truth.status)
            else:
                seen[truth.zoo] = truth.status
            if truth.zoo == "zero_bytes":
                assert data == b""
            elif truth.zoo == "bomb":
                assert data[:2] == b"\xff\xd8" and len(data) < 5_000
                with pytest.raises(Image.DecompressionBombError):
                    Image.open(io.BytesIO(data))
            elif truth.zoo == "png_as_jpg":
                assert url.endswith(".jpg") and data[:8] == b"\x89PNG\r\n\x1a\n"
            elif truth.zoo == "gif_as_jpg":
                assert url.endswith(".jpg") and data[:4] == b"GIF8"
            elif truth.zoo in ("cmyk", "greyscale"):
                assert Image.open(io.BytesIO(data)).mode == ("CMYK" if truth.zoo == "cmyk" else "L")
            elif truth.zoo == "one_side_frame":
                left, top, right, bottom = truth.content_box
                assert left > 0 and (top, right, bottom) == (0, *truth.source_size)
            elif truth.zoo == "large_gone":  # the Large answers the placeholder; the Original is there
                gone = session.get(photo["url_l"], allow_redirects=False)
                assert gone.status_code == 302 and "photo_unavailable" in gone.headers["Location"]
                original = Image.open(io.BytesIO(session.get(photo["url_o"]).content))
                assert (truth.source, original.size) == ("original", truth.source_size)
            elif truth.zoo == "png_original":  # no Large; the Original is a PNG, named and typed as one
                assert "url_l" not in photo and photo["originalformat"] == "png" and url.endswith("_o.png")
                served = session.get(url)
                assert served.headers["Content-Type"] == "image/png" and data[:8] == b"\x89PNG\r\n\x1a\n"
                assert Image.open(io.BytesIO(data)).size == truth.source_size
                as_jpg = session.get(url[: -len("png")] + "jpg", allow_redirects=False)
                assert as_jpg.status_code == 302 and "photo_unavailable" in as_jpg.headers["Location"]
    assert "ok" in normal and normal <= {"ok", "too_small", "unavailable"}  # the pattern's plain photos
    assert seen == {
        "zero_bytes": "invalid",
        "bomb": "invalid",
        "cmyk": "ok",
        "greyscale": "ok",
        "png_as_jpg": "ok",
        "gif_as_jpg": "ok",
        "one_side_frame": "ok",
        "tiny": "too_small",
        "large_gone": "ok",
        "png_original": "ok",
    }


def test_a_rotated_secret_retires_the_old_urls(private_sim: Simulator) -> None:
    sim = private_sim  # changes a photo's secrets: not on the shared simulator
    photo = next(p for p in _photos(sim, "stonehenge") if "url_l" in p and "url_o" in p)
    sim.rotate_secret(int(photo["id"]))
    again = next(p for p in _photos(sim, "stonehenge") if p["id"] == photo["id"])
    assert again["secret"] != photo["secret"] and again["originalsecret"] != photo["originalsecret"]
    assert again["server"] == photo["server"] and again["owner"] == photo["owner"]
    for name, placeholder in (("l", "photo_unavailable_l.png"), ("o", "photo_unavailable.png")):
        old = requests.get(photo[f"url_{name}"], allow_redirects=False)
        assert old.status_code == 302 and old.headers["Location"].endswith(placeholder)
        new = requests.get(again[f"url_{name}"], allow_redirects=False)
        assert new.status_code == 200 and new.headers["Content-Type"] == "image/jpeg"
