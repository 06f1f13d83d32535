"""Frame removal: known frames come off within a few pixels; photos with uniform-ish edges stay whole."""

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from flickr_assets.imaging import ImagingOptions, find_frame, process_image
from flickr_assets_tests.imaging.synthetic import add_noise, framed, jpeg, photo

BLACK, WHITE, RED, GREY = (0, 0, 0), (255, 255, 255), (190, 40, 30), (128, 128, 128)
SLACK = 6  # pixels the crop may go inside the true content edge (margin + JPEG blur)

FRAMES = {
    "black": [((24, 24, 24, 24), BLACK)],
    "white": [((18, 18, 18, 18), WHITE)],
    "colour": [((30, 30, 30, 30), RED)],
    "thick_bottom": [((15, 15, 15, 70), WHITE)],
    "bottom_only": [((0, 0, 0, 45), GREY)],
    "left_only": [((35, 0, 0, 0), BLACK)],
    "nested_2": [((14, 14, 14, 14), BLACK), ((8, 8, 8, 8), WHITE)],
    "nested_3": [((12, 12, 12, 12), BLACK), ((6, 6, 6, 6), WHITE), ((4, 4, 4, 4), GREY)],
    "nested_uneven": [((10, 20, 10, 40), WHITE), ((5, 5, 5, 5), BLACK)],
    # Saturated inner layers: JPEG chroma subsampling blends 2-3 lines between layers.
    "nested_chroma": [((20, 20, 20, 20), WHITE), ((20, 20, 20, 20), BLACK), ((20, 20, 20, 20), (190, 122, 167))],
    "nested_violet": [((14, 14, 14, 14), BLACK), ((13, 13, 13, 13), (75, 38, 165))],
}


def _assert_close(got: tuple[int, ...] | None, truth: tuple[int, int, int, int], size: tuple[int, int], slack: int):
    assert got is not None, f"frame not found, truth {truth}"
    width, height = size
    left, top, right, bottom = got
    for value, true in ((left, truth[0]), (top, truth[1])):
        if true == 0:
            assert value == 0, f"uncut side was cut: {got} vs {truth}"
        else:
            assert true <= value <= true + slack, f"{got} vs {truth}"
    for value, true, limit in ((right, truth[2], width), (bottom, truth[3], height)):
        if true == limit:
            assert value == limit, f"uncut side was cut: {got} vs {truth}"
        else:
            assert true - slack <= value <= true, f"{got} vs {truth}"


@pytest.mark.parametrize("noise", [0.0, 5.0], ids=["clean", "noisy"])
@pytest.mark.parametrize("name", sorted(FRAMES))
def test_known_frames_are_removed_per_side(name: str, noise: float) -> None:
    content = photo(900, 640, seed=len(name))
    image, truth = framed(content, FRAMES[name], noise=noise)
    result = process_image(jpeg(image, quality=88), {"photo_id": 1})
    assert result.status == "ok" and result.reencoded
    _assert_close(result.crop_box, truth, image.size, SLACK)
    stored = Image.open(io.BytesIO(result.jpeg))
    assert stored.size == result.stored_size
    crop_w, crop_h = result.crop_box[2] - result.crop_box[0], result.crop_box[3] - result.crop_box[1]
    assert result.stored_size == (crop_w, crop_h)  # under 1024: cropped, not resized


def test_frame_on_an_original_is_found_at_draft_scale_and_mapped_to_source_pixels() -> None:
    content = photo(2300, 1700, seed=5)
    image, truth = framed(content, [((60, 60, 60, 150), WHITE), ((20, 20, 20, 20), BLACK)], noise=3.0)
    result = process_image(jpeg(image), {})
    _assert_close(result.crop_box, truth, image.size, slack=14)  # found at half scale: 2 px there = 4 here
    assert max(result.stored_size) == 1024 and min(result.stored_size) >= 500
    assert result.original_size == image.size


def test_jpeg_blurred_low_quality_frame() -> None:
    image, truth = framed(photo(800, 600, seed=9), [((21, 13, 21, 29), BLACK)], noise=2.0)
    blurred = Image.open(io.BytesIO(jpeg(image, quality=60)))
    result = process_image(jpeg(blurred, quality=70), {})
    _assert_close(result.crop_box, truth, image.size, SLACK)


def test_frame_on_a_rotated_original_is_reported_in_upright_coordinates() -> None:
    upright, truth = framed(photo(1400, 1000, seed=11), [((0, 0, 0, 80), WHITE)])  # bottom band when upright
    stored_rotated = upright.transpose(Image.Transpose.ROTATE_90)  # EXIF 6 turns it back
    exif = Image.Exif()
    exif[0x0112] = 6
    result = process_image(jpeg(stored_rotated, exif=exif.tobytes()), {})
    assert result.original_size == upright.size
    _assert_close(result.crop_box, truth, upright.size, slack=8)


def _dark_sky(width: int, height: int, seed: int) -> Image.Image:
    """Night scene: near-black sky brightening slowly towards a ragged skyline, lit buildings below."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    sky = 4 + 30 * y / height
    pixels = np.repeat(sky[..., None], 3, axis=2)
    skyline = (height * 0.3 + 40 * np.sin(x[0] / 37) + 25 * np.sign(np.sin(x[0] / 13))).astype(int)
    below = y > skyline[None, :]
    pixels[below] = rng.uniform(40, 200, (int(below.sum()), 3))
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    return add_noise(image, 2.0, seed)


def _white_wall(width: int, height: int, seed: int) -> Image.Image:
    """A bright wall filling the left fifth, softly lit (gentle gradient), meeting the scene at a straight edge."""
    scene = photo(width, height, seed=seed)
    y, x = np.mgrid[0:height, 0 : width // 5].astype(np.float32)
    wall = 250 - 0.12 * x - 6 * (y / height)
    pixels = np.asarray(scene).copy()
    pixels[:, : width // 5] = np.clip(wall, 0, 255)[..., None].astype(np.uint8)
    return add_noise(Image.fromarray(pixels), 2.5, seed)


def _blown_out_sky(width: int, height: int, seed: int) -> Image.Image:
    """Overexposed sky (clipped pure white) above a ragged treeline: perfectly uniform at the top."""
    scene = photo(width, height, seed=seed, noise=4)
    draw = ImageDraw.Draw(scene)
    points = [(x, int(height * 0.12 + 30 * np.sin(x / 23) + 15 * np.sin(x / 7))) for x in range(0, width + 1, 4)]
    draw.polygon([(0, 0), *points, (width, 0)], fill=WHITE)
    return scene


def _studio_shot(width: int, height: int, seed: int) -> Image.Image:
    """An object on a black background that reaches far beyond a quarter of every side."""
    canvas = Image.new("RGB", (width, height))
    thing = photo(width // 3, height // 3, seed=seed)
    canvas.paste(thing, (width // 3, height // 3))
    return canvas


def _sea_haze(width: int, height: int, seed: int) -> Image.Image:
    """Grey haze at the top fading smoothly into the scene (no edge at all)."""
    scene = np.asarray(photo(width, height, seed=seed), dtype=np.float32)
    y = np.arange(height, dtype=np.float32)[:, None, None]
    alpha = np.clip(1 - y / (height * 0.4), 0, 1)
    pixels = alpha * 200 + (1 - alpha) * scene
    return add_noise(Image.fromarray(pixels.astype(np.uint8)), 1.5, seed)


def _roofline(width: int, height: int, seed: int) -> Image.Image:
    """Clear sky with a gentle gradient above a building whose straight roof spans the whole width at 15%."""
    scene = np.asarray(photo(width, height, seed=seed), dtype=np.float32).copy()
    roof = int(height * 0.15)
    y = np.arange(roof, dtype=np.float32)[:, None, None]
    scene[:roof] = np.array([120, 160, 225], np.float32) + y / roof * np.array([14, 10, 4], np.float32)
    return add_noise(Image.fromarray(scene.astype(np.uint8)), 2.0, seed)


@pytest.mark.parametrize("make", [_dark_sky, _white_wall, _blown_out_sky, _studio_shot, _sea_haze, _roofline])
@pytest.mark.parametrize("seed", [1, 2])
def test_photos_with_uniform_edges_are_left_untouched(make, seed: int) -> None:
    image = make(1000, 750, seed)
    result = process_image(jpeg(image), {})
    assert result.crop_box is None
    assert result.reencoded is False  # kept as served
    assert find_frame(np.asarray(image)) is None


@pytest.mark.parametrize("seed", range(12))
def test_plain_photos_are_not_cropped(seed: int) -> None:
    result = process_image(jpeg(photo(1024, 683, seed=seed)), {}, ImagingOptions())
    assert result.crop_box is None and not result.reencoded


def test_frame_wider_than_a_quarter_is_content() -> None:
    image, _ = framed(photo(500, 700, seed=3), [((300, 10, 300, 10), BLACK)])  # 300 of 1100 px is 27%
    assert find_frame(np.asarray(image)) == (0, 10, 1100, 710)  # top/bottom bands still go


def test_find_frame_on_greyscale_arrays() -> None:
    image, truth = framed(photo(600, 500, seed=4).convert("RGB"), [((10, 12, 14, 16), WHITE)])
    assert find_frame(np.asarray(image.convert("L"))) == truth
