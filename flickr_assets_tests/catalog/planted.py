"""A small data folder with planted overlaps and duplicates, written like the pipeline writes it."""

import hashlib
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from flickr_assets.storage.atomic import atomic_path, write_bytes
from flickr_assets.storage.layout import DataLayout
from flickr_assets.storage.schemas import MANIFEST, RECORDS

T0 = datetime(2024, 5, 1, tzinfo=UTC)
EIFFEL, PARIS, TOUR = "eiffel tower", "paris", "tour eiffel ñ"
NEAR_BASE = 0x0F0F_3C3C_5A5A_9669


def day(n: int) -> datetime:
    return T0 + timedelta(days=n)


def jpeg(seed: int) -> bytes:
    """A real, distinct little JPEG."""
    image = Image.new("RGB", (16, 12), ((seed * 37) % 256, (seed * 91) % 256, (seed * 53) % 256))
    image.putpixel((seed % 16, seed % 12), (255, 255, 255))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def record(photo_id: int, keyword: str, first: int, last: int, title: str | None = None) -> dict:
    return {
        "photo_id": photo_id,
        "keyword": keyword,
        "owner": f"{photo_id}@N01",
        "owner_name": f"owner {photo_id}",
        "secret": f"s{photo_id}",
        "server": "65535",
        "farm": 66,
        "title": title or f"photo {photo_id}",
        "description": f"about {photo_id}",
        "tags": ["paris", f"t{photo_id}"],
        "machine_tags": [],
        "date_upload": day(-100),
        "date_taken": datetime(2023, 1, 1),
        "date_taken_granularity": 0,
        "date_taken_unknown": False,
        "latitude": 48.85,
        "longitude": 2.29,
        "accuracy": 16,
        "license": 4,
        "views": photo_id * 10,
        "media": "photo",
        "url_l": f"http://127.0.0.1/{photo_id}_l.jpg",
        "width_l": 1024,
        "height_l": 768,
        "first_seen": day(first),
        "last_seen": day(last),
    }


@dataclass
class Stored:
    path: str
    sha256: str


def write_records(layout: DataLayout, keyword: str, rows: list[dict]) -> None:
    with atomic_path(layout.records_file(keyword)) as tmp:
        pq.write_table(pa.Table.from_pylist(rows, schema=RECORDS), tmp)


def store_image(layout: DataLayout, keyword: str, photo_id: int, data: bytes) -> Stored:
    file = layout.image_file(keyword, 0, f"{photo_id}_s{photo_id}_65535_{photo_id}@N01.jpg")
    write_bytes(file, data)
    return Stored(layout.relative(file), hashlib.sha256(data).hexdigest())


def manifest_row(photo_id: int, status: str, stored: Stored | None = None, phash: int | None = None) -> dict:
    return {
        "photo_id": photo_id,
        "status": status,
        "reason": None if status == "ok" else f"planted {status}",
        "sha256": stored.sha256 if stored else None,
        "phash": phash if stored else None,
        "path": stored.path if stored else None,
        "stored_width": 16 if stored else None,
        "stored_height": 12 if stored else None,
        "attempts": 1,
        "updated_at": T0,
    }


def write_manifest(layout: DataLayout, keyword: str, rows: list[dict]) -> None:
    with atomic_path(layout.manifest_file(keyword)) as tmp:
        pq.write_table(pa.Table.from_pylist(rows, schema=MANIFEST), tmp)


def signed(value: int) -> int:
    """The signed 64-bit view of an unsigned hash, as the manifest stores it."""
    return value - (1 << 64) if value >= 1 << 63 else value


def plant(layout: DataLayout) -> dict[int, int]:
    """Write three overlapping keywords; return the phash planted per photo ID.

    - 1: eiffel tower (older) + paris (newer, title "new title"); image ok only under paris
    - 2: paris only; 3: all three keywords, newest under "tour eiffel ñ" whose download failed
    - 4: tour eiffel ñ only, too small (no image)
    - 5, 6: byte-identical images (exact duplicates)
    - 7, 8, 9: near chain (7-8 at 3 bits, 8-9 at 5 bits, 7-9 at 8 bits); 10: far from everything
    """
    phash = {pid: signed((0x9E37_79B9_7F4A_7C15 * pid * 0x1000_0001) % (1 << 64)) for pid in range(1, 11)}
    phash[7] = signed(NEAR_BASE)
    phash[8] = signed(NEAR_BASE ^ 0b111)
    phash[9] = signed(NEAR_BASE ^ 0b111 ^ (0b11111 << 40))
    phash[6] = phash[5]
    write_records(
        layout,
        EIFFEL,
        [record(1, EIFFEL, 0, 1), record(3, EIFFEL, 2, 3), record(5, EIFFEL, 0, 0), record(7, EIFFEL, 0, 0)],
    )
    write_records(
        layout,
        PARIS,
        [
            record(1, PARIS, 1, 5, title="new title"),
            record(2, PARIS, 0, 0),
            record(3, PARIS, 1, 2),
            record(6, PARIS, 0, 0),
            record(8, PARIS, 0, 0),
        ],
    )
    write_records(
        layout,
        TOUR,
        [record(3, TOUR, 3, 9, title="newest 3"), record(4, TOUR, 0, 0), record(9, TOUR, 0, 0), record(10, TOUR, 0, 0)],
    )
    same = jpeg(56)
    images = {(EIFFEL, 3): jpeg(3), (EIFFEL, 5): same, (EIFFEL, 7): jpeg(7), (PARIS, 1): jpeg(1), (PARIS, 2): jpeg(2)}
    images |= {(PARIS, 3): jpeg(3), (PARIS, 6): same, (PARIS, 8): jpeg(8), (TOUR, 9): jpeg(9), (TOUR, 10): jpeg(10)}
    stored = {key: store_image(layout, *key, data) for key, data in images.items()}

    def ok(keyword: str, pid: int) -> dict:
        return manifest_row(pid, "ok", stored[(keyword, pid)], phash[pid])

    write_manifest(layout, EIFFEL, [manifest_row(1, "failed"), ok(EIFFEL, 3), ok(EIFFEL, 5), ok(EIFFEL, 7)])
    write_manifest(layout, PARIS, [ok(PARIS, 1), ok(PARIS, 2), ok(PARIS, 3), ok(PARIS, 6), ok(PARIS, 8)])
    write_manifest(layout, TOUR, [manifest_row(3, "failed"), manifest_row(4, "too_small"), ok(TOUR, 9), ok(TOUR, 10)])
    return phash
