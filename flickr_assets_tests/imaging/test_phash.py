"""Perceptual hash: equal for identical files, close for resized/re-encoded copies, far for other scenes."""

import io
import itertools

import numpy as np
import pytest
from PIL import Image

from flickr_assets.imaging import hamming, phash_of, process_image
from flickr_assets_tests.imaging.synthetic import jpeg, photo


def test_hamming() -> None:
    assert hamming(0, 0) == 0
    assert hamming(0, -1) == 64  # -1 is all 64 bits set as int64
    assert hamming(0b1011, 0b0001) == 2
    assert hamming(-(2**63), 2**63 - 1) == 64


def test_hash_is_a_signed_int64() -> None:
    values = [phash_of(photo(300, 200, seed=s)) for s in range(8)]
    assert all(-(2**63) <= v < 2**63 for v in values)
    assert any(v < 0 for v in values)  # the top bit (the sign of an int64) is used


def test_identical_bytes_give_identical_hashes() -> None:
    data = jpeg(photo(1024, 768, seed=1))
    a, b = process_image(data, {"photo_id": 1}), process_image(data, {"photo_id": 2})
    assert a.phash == b.phash == phash_of(data)


@pytest.mark.parametrize("seed", range(4))
def test_resized_and_reencoded_copies_are_close(seed: int) -> None:
    scene = photo(2048, 1536, seed=seed)
    original = process_image(jpeg(scene), {}).phash
    smaller = process_image(jpeg(scene.resize((800, 600), Image.Resampling.BICUBIC), quality=70), {}).phash
    large = process_image(jpeg(scene.resize((1024, 768), Image.Resampling.LANCZOS), quality=85), {}).phash
    assert hamming(original, smaller) <= 10
    assert hamming(original, large) <= 10


def test_different_scenes_are_far_apart() -> None:
    hashes = [phash_of(jpeg(photo(1024, 768, seed=seed))) for seed in range(10)]
    distances = [hamming(a, b) for a, b in itertools.combinations(hashes, 2)]
    assert min(distances) >= 20
    assert 26 <= np.mean(distances) <= 38  # unrelated images: about half the bits differ


def test_phash_of_image_and_of_bytes_agree_for_non_jpeg() -> None:
    image = photo(640, 480, seed=3)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    assert phash_of(buffer.getvalue()) == phash_of(image)
