"""The contract of the imaging step: its options, its result and its one error."""

from dataclasses import dataclass

Size = tuple[int, int]
Box = tuple[int, int, int, int]


class InvalidImage(ValueError):
    """The body is not a usable image (empty, HTML/text, truncated, corrupt, or a decompression bomb)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __reduce__(self) -> tuple[type, tuple[str]]:  # keeps the reason when sent across processes
        return (type(self), (self.reason,))


@dataclass(frozen=True)
class ImagingOptions:
    """How images are stored: longest side cap, smallest side kept, JPEG quality, pixel caps before decoding
    (JPEGs decode at a reduced scale; other formats at full size)."""

    max_side: int = 1024
    min_side: int = 500
    quality: int = 90
    max_pixels: int = 200_000_000
    # PNG, GIF and the rest have no reduced-scale decode: ~10 bytes per pixel while decoding, in each worker.
    max_full_decode_pixels: int = 40_000_000

    def __post_init__(self) -> None:
        if self.max_side < 1 or self.min_side < 0 or self.min_side > self.max_side:
            raise ValueError(f"ImagingOptions: need 0 <= min_side <= max_side, got {self.min_side}, {self.max_side}")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"ImagingOptions: quality must be 1..100, got {self.quality}")
        if self.max_pixels < 1 or self.max_full_decode_pixels < 1:
            raise ValueError(
                f"ImagingOptions: pixel caps must be positive, got {self.max_pixels}, {self.max_full_decode_pixels}"
            )


@dataclass(frozen=True)
class ProcessedImage:
    """The outcome of :func:`process_image`.

    ``status`` is ``"ok"`` (``jpeg`` holds the file to store) or ``"too_small"`` (``jpeg`` is None).
    Sizes are (width, height); ``original_size`` is as served after EXIF orientation; ``crop_box`` is the
    kept content (left, top, right, bottom) in those oriented source pixels, None when no frame was removed.
    ``phash`` is the 64-bit perceptual hash of the stored image as a signed int64.
    """

    status: str
    jpeg: bytes | None
    original_size: Size
    stored_size: Size | None
    crop_box: Box | None
    reencoded: bool
    phash: int | None
