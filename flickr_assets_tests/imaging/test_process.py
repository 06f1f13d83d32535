"""process_image end to end on generated JPEG/PNG/GIF bytes: sizes, orientation, the keep path, bad input."""

import io
import pickle
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw

from flickr_assets.imaging import ImagingOptions, InvalidImage, ProcessedImage, phash_of, process_image
from flickr_assets.imaging.decode import open_image
from flickr_assets_tests.imaging.synthetic import encoded, jpeg, photo

META = {"photo_id": 42, "title": "Tour Eiffel", "owner": "1234@N01"}


def _sos_onwards(data: bytes) -> bytes:
    return data[data.index(b"\xff\xda") :]


def _decoded(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


@pytest.mark.parametrize("params", [{}, {"progressive": True}, {"optimize": True, "subsampling": 0}])
def test_large_that_needs_nothing_is_kept_byte_for_byte(params: dict) -> None:
    source = jpeg(photo(1024, 768, seed=1), **params)
    result = process_image(source, META)
    assert result == ProcessedImage(
        "ok", result.jpeg, (1024, 768), (1024, 768), None, reencoded=False, phash=result.phash
    )
    assert _sos_onwards(result.jpeg) == _sos_onwards(source)  # scans copied untouched
    assert np.array_equal(_decoded(result.jpeg), _decoded(source))
    assert result.phash == phash_of(result.jpeg)


def test_keep_path_replaces_stale_metadata_and_orientation_1_stays_kept() -> None:
    exif = Image.Exif()
    exif[0x0112] = 1
    exif[0x010E] = "stale title"
    source = jpeg(photo(800, 600, seed=2), exif=exif.tobytes(), comment=b"old comment")
    result = process_image(source, META)
    assert not result.reencoded
    stored = Image.open(io.BytesIO(result.jpeg))
    assert stored.getexif()[0x010E] == "Tour Eiffel"
    assert 0x0112 not in stored.getexif()
    comments = [s for m, s in stored.applist if m == "COM"]
    assert len(comments) == 1 and b"old comment" not in result.jpeg
    assert result.jpeg.count(b"Exif\x00\x00") == 1


@pytest.mark.parametrize(
    ("size", "stored"),
    [
        ((3000, 2000), (1024, 683)),
        ((2048, 1536), (1024, 768)),
        ((1536, 2048), (768, 1024)),
        ((1100, 1000), (1024, 931)),
    ],
)
def test_originals_are_downsampled_to_1024(size: tuple[int, int], stored: tuple[int, int]) -> None:
    result = process_image(jpeg(photo(*size, seed=3)), META)
    assert result.status == "ok" and result.reencoded
    assert result.original_size == size and result.stored_size == stored
    image = Image.open(io.BytesIO(result.jpeg))
    assert image.size == stored and image.mode == "RGB"
    assert result.phash == phash_of(result.jpeg)


def test_downsampled_image_matches_a_full_resolution_resize() -> None:
    image = photo(2048, 1536, seed=4)
    result = process_image(jpeg(image, quality=95), {})
    reference = np.asarray(image.resize((1024, 768), Image.Resampling.LANCZOS), dtype=np.float32)
    error = np.abs(_decoded(result.jpeg).astype(np.float32) - reference).mean()
    assert error < 4.0  # draft decode at 1/2 scale + JPEG q90: close to the exact resize


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_is_applied_first(orientation: int) -> None:
    upright = photo(1200, 900, seed=5)
    undo = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}
    exif = Image.Exif()
    exif[0x0112] = orientation
    result = process_image(jpeg(upright.transpose(undo[orientation]), exif=exif.tobytes()), META)
    assert result.original_size == (1200, 900)
    assert result.stored_size == (1024, 768) and result.reencoded
    stored = Image.open(io.BytesIO(result.jpeg))
    assert stored.getexif().get(0x0112, 1) == 1
    reference = np.asarray(upright.resize((1024, 768), Image.Resampling.LANCZOS), dtype=np.float32)
    assert np.abs(np.asarray(stored, dtype=np.float32) - reference).mean() < 5.0


def test_rotated_large_within_1024_is_reencoded_at_full_size() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    result = process_image(jpeg(photo(1024, 683, seed=6), exif=exif.tobytes()), {})
    assert result.original_size == (683, 1024) and result.stored_size == (683, 1024) and result.reencoded


@pytest.mark.parametrize(
    ("size", "orientation"), [((499, 800), 1), ((800, 499), 1), ((300, 200), 1), ((800, 450), 6), ((4000, 1500), 1)]
)
def test_too_small_is_a_status_decided_from_the_header(size: tuple[int, int], orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = jpeg(Image.new("RGB", size, (90, 120, 150)), exif=exif.tobytes())
    result = process_image(data, META)
    assert result.status == "too_small" and result.jpeg is None and result.stored_size is None
    expected = (size[1], size[0]) if orientation == 6 else size
    assert result.original_size == expected  # 4000x1500 would be stored 1024x384: under 500 too


def test_too_small_after_removing_the_frame() -> None:
    from flickr_assets_tests.imaging.synthetic import framed

    image, _ = framed(photo(700, 470, seed=7), [((20, 20, 20, 20), (0, 0, 0))])  # 740x510 served
    result = process_image(jpeg(image), {})
    assert result.status == "too_small" and result.crop_box is not None and result.jpeg is None


def test_options_are_respected() -> None:
    opts = ImagingOptions(max_side=640, min_side=300, quality=70)
    small = process_image(jpeg(photo(1024, 768, seed=8)), {}, opts)
    assert small.stored_size == (640, 480)
    default = process_image(jpeg(photo(1024, 768, seed=8)), {}, ImagingOptions(max_side=640, min_side=300))
    assert len(small.jpeg) < len(default.jpeg)  # quality 70 < 90
    with pytest.raises(ValueError, match="quality"):
        ImagingOptions(quality=0)


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("cmyk_jpeg", lambda img: jpeg(img.convert("CMYK"))),
        ("grey_jpeg", lambda img: jpeg(img.convert("L"))),
        ("png_rgba", lambda img: encoded(img.convert("RGBA"), "PNG")),
        ("png_16bit", lambda img: encoded(Image.fromarray(np.asarray(img.convert("L"), np.uint16) * 257), "PNG")),
        ("gif", lambda img: encoded(img.convert("P", palette=Image.Palette.ADAPTIVE), "GIF")),
        ("webp", lambda img: encoded(img, "WEBP", quality=90)),
    ],
)
def test_other_modes_and_formats_convert(name: str, make) -> None:
    source = photo(800, 600, seed=9)
    result = process_image(make(source), META)
    assert result.status == "ok" and result.stored_size == (800, 600)
    stored = Image.open(io.BytesIO(result.jpeg))
    assert stored.format == "JPEG"
    if name == "grey_jpeg":  # a greyscale JPEG needs no change: kept as served
        assert stored.mode == "L" and not result.reencoded
    else:
        assert stored.mode == "RGB" and result.reencoded
    grey_source = np.asarray(source.convert("L"), dtype=np.float32)
    grey_stored = np.asarray(stored.convert("L"), dtype=np.float32)
    assert np.abs(grey_source - grey_stored).mean() < 12  # same picture (GIF palette and CMYK cost a little)


def test_transparent_png_is_flattened_on_white() -> None:
    rgba = photo(600, 600, seed=1).convert("RGBA")
    hole = Image.new("L", (600, 600), 255)
    ImageDraw.Draw(hole).ellipse((200, 200, 400, 400), fill=0)  # fully transparent disc in the middle
    rgba.putalpha(hole)
    result = process_image(encoded(rgba, "PNG"), {})
    assert result.status == "ok" and result.crop_box is None
    assert _decoded(result.jpeg)[300, 300].min() > 245


def _jpeg_with_size(width: int, height: int) -> bytes:
    data = bytearray(jpeg(Image.new("RGB", (64, 64), (10, 20, 30))))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _png_with_size(width: int, height: int) -> bytes:
    data = bytearray(encoded(Image.new("RGB", (64, 64)), "PNG"))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def _corrupt_scan(data: bytes) -> bytes:
    middle = data.index(b"\xff\xda") + (len(data) - data.index(b"\xff\xda")) // 2
    return data[:middle] + b"\xff\x12\x34\x56" * 8 + data[middle + 32 :]


GOOD = jpeg(photo(800, 600, seed=10))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty body"),
        (b"<!DOCTYPE html>\n<html><body>Service Unavailable</body></html>", "HTML"),
        (b"  <html><head><title>429</title></head></html>", "HTML"),
        (b"Too Many Requests\n", "text"),
        (b'{"stat":"fail"}', "not an image"),
        (GOOD[: len(GOOD) // 2], "truncated"),
        (GOOD[:-200], "truncated"),
        (GOOD[:-2], "truncated"),
        (GOOD[:300], "truncated"),
        (_corrupt_scan(GOOD), "corrupt"),
        (b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4, "corrupt"),
        (bytes(range(256)) * 8, "not an image"),
        (_jpeg_with_size(60000, 60000), "too large"),
        (_png_with_size(50000, 50000), "too large"),
        (encoded(photo(800, 600), "PNG")[:5000], "truncated"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_bodies_raise_invalid_image_with_a_one_line_reason(body: bytes, message: str) -> None:
    with pytest.raises(InvalidImage) as caught:
        process_image(body, META)
    reason = caught.value.reason
    assert message.lower() in reason.lower() and "\n" not in reason and reason == str(caught.value)
    assert pickle.loads(pickle.dumps(caught.value)).reason == reason  # crosses process boundaries


def test_own_pixel_cap_applies_both_below_and_above_pillows() -> None:
    with pytest.raises(InvalidImage, match="too large"):
        process_image(GOOD, {}, ImagingOptions(max_pixels=400_000))
    # Above Pillow's own process-wide cap (~179M px) but under ours: accepted by the header check.
    assert open_image(_jpeg_with_size(14000, 14000), max_pixels=200_000_000).size == (14000, 14000)
    with pytest.raises(InvalidImage, match="too large"):
        open_image(_jpeg_with_size(14000, 14000), max_pixels=150_000_000)


def test_formats_decoded_at_full_size_have_a_lower_cap() -> None:
    # 45 MP: a JPEG decodes at a reduced scale, a PNG would need ~450 MB in each worker.
    assert open_image(_jpeg_with_size(9000, 5000), 200_000_000, 40_000_000).size == (9000, 5000)
    with pytest.raises(InvalidImage) as caught:
        process_image(_png_with_size(9000, 5000), META)
    assert caught.value.reason == (
        "image too large: header says 9000x5000 = 45,000,000 pixels, over the limit for a PNG image (decoded at "
        "full size) of 40,000,000 (decompression bomb?)"
    )
    assert open_image(_png_with_size(6000, 5000), 200_000_000, 40_000_000).size == (6000, 5000)


def test_results_pickle_for_worker_processes() -> None:
    result = process_image(GOOD, META)
    assert pickle.loads(pickle.dumps(result)) == result
    assert pickle.loads(pickle.dumps(ImagingOptions())) == ImagingOptions()
