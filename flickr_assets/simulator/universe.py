"""The photo universe: every simulated photo as columns of numpy arrays, built deterministically from a seed.

Row order is upload order (ties in random order), so any sorted array of row indices is also sorted by
upload time. Photo IDs grow with the row for the generated photos; photos added by :meth:`Universe.upload`
get new, larger IDs wherever their upload time falls.

This module holds the :class:`Universe` model, its per-process cache and the build (keyword blocks, overlaps,
duplicates); the column arrays are in ``columns.py``, per-photo attributes in ``attributes.py`` and the
bad-input photos in ``zoo.py``.
"""

import hashlib
import threading
import time
from dataclasses import fields, replace

import numpy as np

from .attributes import avoid_borderline_sizes, photo_attributes, upload_times
from .columns import Columns, Duplicate
from .spec import LARGE_EDGE, START_TS, TEST_PATTERN, TIE_PROFILES, UniverseSpec
from .zoo import NORMAL, ZOO_KINDS, ZOO_SIZE, configure_zoo

FIRST_ID = 2_000_000_000


class Universe:
    """The photos of one simulator. Built once per (seed, spec) and forked per simulator for uploads/deletes."""

    def __init__(self, seed: int, spec: UniverseSpec, columns: Columns, duplicates: list[Duplicate], now: int) -> None:
        self.seed = seed
        self.spec = spec
        self.now = now
        self.keyword_names: list[str] = [*spec.keywords, *([TEST_PATTERN] if spec.test_pattern else [])]
        self.keyword_index = {name: i for i, name in enumerate(self.keyword_names)}
        self.duplicates = duplicates
        self._base_ids = columns.ids
        self._base_zoo = columns.zoo
        self._lock = threading.Lock()
        self.secret_epochs: dict[int, int] = {}  # photo ID -> times its owner has had its secrets changed
        self.titles: dict[int, str] = {}  # photo ID -> the title its owner gave it since (see ``edit``)
        self._set(columns)

    def _set(self, columns: Columns) -> None:
        self.cols = columns
        self._id_order = np.argsort(columns.ids, kind="stable")
        self._sorted_ids = columns.ids[self._id_order]
        self._keyword_rows = [
            np.flatnonzero((columns.kw1 == k) | (columns.kw2 == k)) for k in range(len(self.keyword_names))
        ]

    def fork(self) -> "Universe":
        """A copy sharing the (immutable) columns, with its own uploads and deletions."""
        forked = Universe(
            self.seed, self.spec, replace(self.cols, deleted=self.cols.deleted.copy()), self.duplicates, self.now
        )
        forked._base_ids, forked._base_zoo = self._base_ids, self._base_zoo
        return forked

    # -- lookups -------------------------------------------------------------------------------------------
    def row_of(self, photo_id: int) -> int | None:
        """Row index of a photo ID, or None when there is no such photo."""
        pos = int(np.searchsorted(self._sorted_ids, photo_id))
        if pos < len(self._sorted_ids) and self._sorted_ids[pos] == photo_id:
            return int(self._id_order[pos])
        return None

    def rows_of(self, photo_ids: np.ndarray) -> np.ndarray:
        """Sorted rows of known photo IDs (unknown IDs are dropped)."""
        pos = np.minimum(np.searchsorted(self._sorted_ids, photo_ids), len(self._sorted_ids) - 1)
        pos = pos[self._sorted_ids[pos] == photo_ids]
        return np.sort(self._id_order[pos])

    def keyword_rows(self, name: str) -> np.ndarray | None:
        """Sorted rows of the photos matching a universe keyword, or None if ``name`` is not one."""
        k = self.keyword_index.get(name)
        return None if k is None else self._keyword_rows[k]

    def pseudo_rows(self, query: str) -> np.ndarray:
        """Rows of the small deterministic photo set an arbitrary query matches (a few dozen to a few hundred)."""
        digest = int.from_bytes(_blake(f"{self.seed}/{query}"), "little")
        rng = np.random.default_rng(digest)
        count = 30 + digest % 271
        picks = np.unique(rng.integers(0, len(self._base_ids), count * 2))
        picks = picks[self._base_zoo[picks] == NORMAL]
        picks = np.sort(rng.permutation(picks)[:count])
        return self.rows_of(self._base_ids[picks])

    # -- mutations -----------------------------------------------------------------------------------------
    def delete(self, photo_id: int) -> None:
        """Make a photo unavailable on the static host (it stays in search results, as on Flickr)."""
        row = self.row_of(photo_id)
        if row is None:
            raise KeyError(f"no photo {photo_id} in the simulated universe")
        self.cols.deleted[row] = True

    def rotate_secret(self, photo_id: int) -> None:
        """Give a photo new secrets (as Flickr does when its owner replaces it or changes who may see it): its
        old image URLs answer the placeholder from now on, and searches show the new secrets."""
        if self.row_of(photo_id) is None:
            raise KeyError(f"no photo {photo_id} in the simulated universe")
        self.secret_epochs[photo_id] = self.secret_epochs.get(photo_id, 0) + 1

    def edit(self, photo_id: int, *, title: str | None = None, license: int | None = None) -> None:
        """Change a photo's title and/or licence, as its owner may at any time: searches show the new values
        (and a search by licence finds it under the new one); its images do not change."""
        row = self.row_of(photo_id)
        if row is None:
            raise KeyError(f"no photo {photo_id} in the simulated universe")
        if title is not None:
            self.titles[photo_id] = title
        if license is not None:
            licenses = self.cols.license.copy()  # the columns are shared with the universe this one forks
            licenses[row] = license
            self.cols = replace(self.cols, license=licenses)

    def upload(self, keyword: str, count: int, when: int) -> list[int]:
        """Add ``count`` new photos matching ``keyword`` uploaded at ``when``; return their IDs."""
        with self._lock:
            cols = self.cols
            new = _new_photos(self, keyword, count, when, int(cols.ids.max()) + 1)
            merged = Columns(
                **{f.name: np.concatenate([getattr(cols, f.name), getattr(new, f.name)]) for f in fields(cols)}
            )
            self._set(merged.take(np.argsort(merged.upload, kind="stable")))
            return [int(i) for i in new.ids]


_ID_STEP = 2
_CACHE: dict[tuple, Universe] = {}
_CACHE_LOCK = threading.Lock()


def _blake(text: str) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=8).digest()


def universe_for(seed: int, spec: UniverseSpec) -> Universe:
    """The universe of (seed, spec), built once per process and forked for each caller."""
    key = (seed, spec.key())
    with _CACHE_LOCK:
        base = _CACHE.get(key)
        if base is None:
            base = _CACHE[key] = build_universe(seed, spec, now=int(time.time()) // 86_400 * 86_400)
    return base.fork()


def build_universe(seed: int, spec: UniverseSpec, now: int) -> Universe:
    """Generate every photo of the universe (vectorised; ~1 s for the default 1.3 M photos)."""
    rng = np.random.default_rng([seed, 20040201])
    names = list(spec.keywords)
    counts = np.array([spec.keywords[n] for n in names], dtype=np.int64)
    n_kw = len(names)

    # Photos matching two keywords: every keyword but the biggest shares 5-10 % of its photos with others,
    # partners chosen in proportion to their size (so "sunset" mostly receives and "colosseum" rarely does).
    shared = np.zeros((n_kw, n_kw), dtype=np.int64)
    if n_kw > 1:
        biggest = int(np.argmax(counts))
        for j in range(n_kw):
            if j == biggest:
                continue
            weights = counts.astype(float)
            weights[j] = 0
            shared[j] = rng.multinomial(round(counts[j] * rng.uniform(0.05, 0.10)), weights / weights.sum())
    for (first, second), count in spec.overlaps.items():
        if first in names and second in names and first != second:
            shared[names.index(first), names.index(second)] += count
    primary = counts - shared.sum(axis=0)
    if (primary < shared.sum(axis=1)).any():
        raise ValueError("UniverseSpec: keyword volumes too uneven to plant overlaps; use fewer tiny keywords")

    blocks_kw1, blocks_kw2, blocks_upload = [], [], []
    for j in range(n_kw):
        n = int(primary[j])
        blocks_upload.append(upload_times(rng, n, START_TS, now, TIE_PROFILES[spec.ties]))
        blocks_kw1.append(np.full(n, j, dtype=np.int8))
        kw2 = np.full(n, -1, dtype=np.int8)
        partners = np.repeat(np.arange(n_kw, dtype=np.int8), shared[j])
        kw2[rng.choice(n, len(partners), replace=False)] = partners
        blocks_kw2.append(kw2)
    zoo = np.full(sum(len(b) for b in blocks_kw1), NORMAL, dtype=np.int8)
    if spec.test_pattern:
        blocks_upload.append(np.sort(rng.integers(now - 3 * 365 * 86_400, now, ZOO_SIZE)))
        blocks_kw1.append(np.full(ZOO_SIZE, n_kw, dtype=np.int8))
        blocks_kw2.append(np.full(ZOO_SIZE, -1, dtype=np.int8))
        zoo_kinds = np.full(ZOO_SIZE, NORMAL, dtype=np.int8)
        zoo_kinds[: len(ZOO_KINDS)] = np.arange(len(ZOO_KINDS))
        zoo = np.concatenate([zoo, rng.permutation(zoo_kinds)])
    upload = np.concatenate(blocks_upload)
    order = np.lexsort((rng.random(len(upload)), upload))
    n = len(upload)
    upload = upload[order]
    kw1 = np.concatenate(blocks_kw1)[order]
    cols = photo_attributes(rng, n, upload, kw1, names)
    cols = replace(
        cols,
        ids=FIRST_ID + np.arange(n, dtype=np.int64) * _ID_STEP + rng.integers(0, _ID_STEP, n),
        kw2=np.concatenate(blocks_kw2)[order],
        zoo=zoo[order],
    )
    cols, duplicates = _plant_duplicates(rng, cols, n_kw)
    configure_zoo(cols)
    avoid_borderline_sizes(cols)
    return Universe(seed, spec, cols, duplicates, now)


def _plant_duplicates(rng: np.random.Generator, cols: Columns, n_kw: int) -> tuple[Columns, list[Duplicate]]:
    """Make some later photos exact re-uploads (same bytes) or near duplicates (same scene) of earlier ones."""
    duplicates: list[Duplicate] = []
    for k in range(n_kw):
        rows = np.flatnonzero((cols.kw1 == k) & (cols.zoo == NORMAL) & ~cols.deleted)
        pairs = max(1, round(len(rows) * 0.004)) if len(rows) >= 20 else 0
        chosen = rng.choice(rows, 4 * pairs, replace=False).reshape(-1, 2)
        chosen.sort(axis=1)
        for i, (a, b) in enumerate(chosen):
            near = i % 2 == 1
            for name in ("width", "height", "large", "orientation", "frame", "frame_fraction", "content"):
                getattr(cols, name)[b] = getattr(cols, name)[a]
            if near:  # re-encoded, and sometimes at a lower resolution
                cols.variant[b] = 1
                if cols.width[a] > 2 * LARGE_EDGE and cols.height[a] > 2 * LARGE_EDGE:
                    cols.width[b], cols.height[b] = cols.width[a] * 3 // 4, cols.height[a] * 3 // 4
            duplicates.append(Duplicate("near" if near else "exact", (int(cols.ids[a]), int(cols.ids[b]))))
    return cols, duplicates


def _new_photos(universe: Universe, keyword: str, count: int, when: int, first_id: int) -> Columns:
    """Columns for ``count`` fresh photos of a universe keyword, all uploaded in the second ``when``."""
    k = universe.keyword_index.get(keyword)
    if k is None or keyword == TEST_PATTERN:
        raise ValueError(f"upload: {keyword!r} is not a keyword of the simulated universe ({universe.keyword_names})")
    if count < 1:
        raise ValueError(f"upload: count must be positive, got {count}")
    rng = np.random.default_rng([universe.seed, first_id])
    upload = np.full(count, when, dtype=np.int64)
    cols = photo_attributes(rng, count, upload, np.full(count, k, dtype=np.int8), universe.keyword_names)
    ids = first_id + np.arange(count, dtype=np.int64)
    cols = replace(cols, ids=ids, content=(ids % 2**31).astype(np.int32), deleted=np.zeros(count, dtype=bool))
    avoid_borderline_sizes(cols)
    return cols
