"""Pure functions on image bytes: orient, remove frames, resize, embed metadata, perceptual hash.

No file or network I/O and no Dagster: bytes in, bytes out, safe in worker processes.
"""

from flickr_assets.imaging.frame import find_frame
from flickr_assets.imaging.model import ImagingOptions, InvalidImage, ProcessedImage
from flickr_assets.imaging.phash import hamming, phash_of
from flickr_assets.imaging.process import process_image

__all__ = ["ImagingOptions", "InvalidImage", "ProcessedImage", "find_frame", "hamming", "phash_of", "process_image"]
