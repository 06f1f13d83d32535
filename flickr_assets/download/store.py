"""One fetched image to its stored file: ``process_image`` (decode, orient, unframe, resize, encode) and an
atomic write, run on a worker process's fetch thread.

Images are processed one at a time per process, on one thread (the workers are one per core, and decode
buffers allocated by one thread stay in one malloc arena: with every fetch thread decoding, each kept its
own arena and a worker's memory grew by half). Hashing and writing happen on the calling thread. The file is
written without an fsync: the download process makes a whole batch of files durable at once before it
journals their rows (see ``engine``).
"""

import hashlib
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

from flickr_assets.imaging import ImagingOptions, process_image
from flickr_assets.imaging.model import Box, Size
from flickr_assets.storage.atomic import write_bytes


@dataclass(frozen=True)
class StoredImage:
    """The outcome of one image: ``ok`` (stored at the given path, with its sha256) or ``too_small``."""

    status: str
    original_size: Size
    stored_size: Size | None
    crop_box: Box | None
    reencoded: bool
    phash: int | None
    sha256: str | None  # of the stored file (metadata included): the integrity check of the file
    source_sha256: str | None  # of the bytes as served: equal for byte-identical uploads (exact duplicates)


def process_and_store(
    data: bytes,
    metadata: dict,
    options: ImagingOptions,
    destination: Path,
    processor: Executor,
) -> StoredImage:
    """Process one image on ``processor`` and, if it is kept, write it to ``destination`` atomically (not
    yet durable: see :func:`~flickr_assets.storage.atomic.make_durable`). Raises ``InvalidImage`` for bytes
    that are not a usable image."""
    result = processor.submit(process_image, data, metadata, options).result()
    digest = source_digest = None
    if result.status == "ok" and result.jpeg is not None:
        write_bytes(destination, result.jpeg, durable=False)
        digest = hashlib.sha256(result.jpeg).hexdigest()
        source_digest = hashlib.sha256(data).hexdigest()
    return StoredImage(
        result.status,
        result.original_size,
        result.stored_size,
        result.crop_box,
        result.reencoded,
        result.phash,
        digest,
        source_digest,
    )
