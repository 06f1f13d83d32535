"""Photo-like test images made with numpy and Pillow: smooth gradients, shapes, texture and noise."""

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def photo(width: int, height: int, seed: int = 0, noise: float = 6.0) -> Image.Image:
    """A scene: sky gradient over a ground gradient, a few filled shapes, blur, then sensor noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    horizon = height * rng.uniform(0.35, 0.6)
    sky = np.stack([90 + 60 * y / height, 140 + 50 * y / height, 230 - 30 * y / height], axis=-1)
    ground = np.stack([70 + 50 * x / width, 110 + 40 * np.sin(x / width * 6 + seed), 40 + 30 * y / height], axis=-1)
    ridge = horizon + 0.08 * height * np.sin(x / width * rng.uniform(3, 9) + seed)
    pixels = np.where((y > ridge)[..., None], ground, sky)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        cx, cy = rng.uniform(0.1, 0.9) * width, rng.uniform(0.2, 0.95) * height
        r = rng.uniform(0.03, 0.15) * min(width, height)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
        else:
            draw.rectangle((cx - r, cy - r * 0.6, cx + r, cy + r * 0.6), fill=colour)
    image = image.filter(ImageFilter.GaussianBlur(1.2))
    return add_noise(image, noise, seed)


def add_noise(image: Image.Image, sigma: float, seed: int = 0) -> Image.Image:
    """Gaussian noise of ``sigma`` levels on every channel."""
    rng = np.random.default_rng(seed + 1000)
    pixels = np.asarray(image, dtype=np.float32)
    pixels = pixels + rng.normal(0, sigma, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def framed(
    content: Image.Image, layers: list[tuple[tuple[int, int, int, int], tuple[int, int, int]]], noise: float = 0.0
) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """``content`` inside frame layers given outermost first as ((left, top, right, bottom) widths, colour).

    Returns the framed image and the content box (left, top, right, bottom) in its pixels.
    """
    lw = sum(layer[0][0] for layer in layers)
    tw = sum(layer[0][1] for layer in layers)
    rw = sum(layer[0][2] for layer in layers)
    bw = sum(layer[0][3] for layer in layers)
    width, height = content.size[0] + lw + rw, content.size[1] + tw + bw
    canvas = Image.new("RGB", (width, height))
    x0, y0, x1, y1 = 0, 0, width, height
    for (left, top, right, bottom), colour in layers:
        fill = Image.new("RGB", (x1 - x0, y1 - y0), colour)
        if noise:
            fill = add_noise(fill, noise, seed=x0 + y0)
        canvas.paste(fill, (x0, y0))
        x0, y0, x1, y1 = x0 + left, y0 + top, x1 - right, y1 - bottom
    canvas.paste(content, (x0, y0))
    return canvas, (x0, y0, x1, y1)


def jpeg(image: Image.Image, quality: int = 90, **params: object) -> bytes:
    """The image encoded as JPEG."""
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality, **params)
    return buffer.getvalue()


def encoded(image: Image.Image, fmt: str, **params: object) -> bytes:
    """The image encoded in any Pillow format."""
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()
