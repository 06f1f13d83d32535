"""The column arrays of the photo universe: one numpy array per photo attribute, and the planted duplicates."""

from dataclasses import dataclass, fields

import numpy as np

# Owner numbers run from 0 to OWNER_COUNT - 1; owner n's NSID is built from OWNER_BASE + n * OWNER_STEP.
OWNER_COUNT = 60_000
OWNER_BASE = 10_000_000
OWNER_STEP = 7_919


@dataclass(frozen=True)
class Columns:
    """One immutable snapshot of every per-photo column (replaced whole on upload)."""

    ids: np.ndarray  # int64 photo ID
    upload: np.ndarray  # int64 unix seconds, non-decreasing
    taken: np.ndarray  # int64 unix seconds (owner's local time read as UTC)
    granularity: np.ndarray  # int8 0/4/6/8
    taken_unknown: np.ndarray  # bool
    kw1: np.ndarray  # int8 keyword index
    kw2: np.ndarray  # int8 second keyword index or -1
    lat: np.ndarray  # float32
    lon: np.ndarray  # float32
    accuracy: np.ndarray  # int8, 0 = not geotagged
    license: np.ndarray  # int8 0..16
    owner: np.ndarray  # int32 owner number
    width: np.ndarray  # int32 original width after orientation
    height: np.ndarray  # int32
    large: np.ndarray  # bool: a Large (_b) exists
    orientation: np.ndarray  # int8 EXIF orientation of the stored original (1, 6, 8)
    frame: np.ndarray  # int8 frame kind (geometry.py)
    frame_fraction: np.ndarray  # float32 total frame thickness / shorter side
    content: np.ndarray  # int32 scene seed (shared by duplicates)
    variant: np.ndarray  # int8 0 = as generated, >0 = a re-encoded near duplicate
    views: np.ndarray  # int32
    interest: np.ndarray  # float32 interestingness score
    zoo: np.ndarray  # int8 ZOO_KINDS index or -1 (zoo.py)
    deleted: np.ndarray  # bool: the static host answers the placeholder

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, rows: np.ndarray) -> "Columns":
        """The columns of ``rows`` only, in that order."""
        return Columns(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})


@dataclass(frozen=True)
class Duplicate:
    """Photos planted as duplicates: "exact" share the served bytes, "near" show the same scene re-encoded."""

    kind: str  # "exact" or "near"
    ids: tuple[int, ...]
