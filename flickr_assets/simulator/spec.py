"""What the simulated Flickr contains: keyword volumes and the fixed constants of the photo universe."""

import hashlib
from dataclasses import dataclass, field

DEMO_API_KEY = "5f3c9a1e7b2d4c6e8f0a1b3c5d7e9f21"
DEMO_API_SECRET = "a7c3e9b1d5f20486"

TEST_PATTERN = "test pattern"

DEFAULT_KEYWORDS: dict[str, int] = {
    "colosseum": 60,
    "stonehenge": 150,
    "golden gate bridge": 300,
    "eiffel tower": 2_000,
    "mount fuji": 12_000,
    "new york": 120_000,
    "sunset": 1_200_000,
}

# Photos planted in two small keywords at once (on top of the random overlaps, which mostly land in the big
# keywords), so that the sample keywords overlap and the catalog has photos found by several keywords.
DEFAULT_OVERLAPS: dict[tuple[str, str], int] = {
    ("colosseum", "stonehenge"): 6,
    ("stonehenge", "golden gate bridge"): 12,
    ("golden gate bridge", "colosseum"): 8,
}

# (latitude, longitude, spread in degrees) of the place a keyword names; None: anywhere on Earth.
KEYWORD_PLACES: dict[str, tuple[float, float, float]] = {
    "colosseum": (41.8902, 12.4922, 0.02),
    "stonehenge": (51.1789, -1.8262, 0.03),
    "golden gate bridge": (37.8199, -122.4783, 0.05),
    "eiffel tower": (48.8584, 2.2945, 0.03),
    "mount fuji": (35.3606, 138.7274, 0.3),
    "new york": (40.7128, -74.0060, 0.15),
}

START_TS = 1_075_593_600  # 2004-02-01, Flickr's launch month

# How uploads share one second: cumulative shares of upload groups of 1 photo and of at most 4 photos (groups
# of 2-4 in between; the rest hold 5-300, log-uniform). "heavy" puts ~88 % of photos in same-second batches
# of 5-300, the worst case the harvest must stay complete (and cheap) under; "light" leaves ~65 % of photos
# alone in their second.
TIE_PROFILES: dict[str, tuple[float, float]] = {"heavy": (0.72, 0.88), "light": (0.95, 0.995)}

# Largest side of each size suffix (Flickr's size table); "sq"/"q" are square crops.
SIZES: tuple[tuple[str, str, int, bool], ...] = (
    # extra name, URL suffix, longest edge, square
    ("sq", "s", 75, True),
    ("q", "q", 150, True),
    ("t", "t", 100, False),
    ("s", "m", 240, False),
    ("n", "n", 320, False),
    ("w", "w", 400, False),
    ("m", "", 500, False),
    ("z", "z", 640, False),
    ("c", "c", 800, False),
    ("l", "b", 1024, False),
)
SUFFIX_TO_SIZE = {suffix: (name, edge, square) for name, suffix, edge, square in SIZES}
LARGE_EDGE = 1024
MIN_SIDE = 500  # the downloader's rule: a side under this after orientation, frame removal and resize is too small


@dataclass(frozen=True)
class UniverseSpec:
    """Keyword name -> number of photos matching it, plus the bad-input zoo keyword."""

    keywords: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_KEYWORDS))
    test_pattern: bool = True
    # (a, b) -> photos of ``a`` that also match ``b``; pairs naming a keyword not in ``keywords`` are ignored.
    overlaps: dict[tuple[str, str], int] = field(default_factory=lambda: dict(DEFAULT_OVERLAPS))
    ties: str = "heavy"  # a key of TIE_PROFILES

    def __post_init__(self) -> None:
        for name, count in self.keywords.items():
            if not isinstance(name, str) or not name.strip() or name != name.strip().casefold():
                raise ValueError(f"UniverseSpec: keyword {name!r} must be non-empty, trimmed and lower case")
            if not isinstance(count, int) or count < 1:
                raise ValueError(f"UniverseSpec: keyword {name!r} needs a positive photo count, got {count!r}")
        if self.ties not in TIE_PROFILES:
            raise ValueError(f"UniverseSpec: ties must be one of {sorted(TIE_PROFILES)}, got {self.ties!r}")
        if TEST_PATTERN in self.keywords:
            raise ValueError(f"UniverseSpec: {TEST_PATTERN!r} is reserved for the bad-input zoo")

    def key(self) -> tuple:
        """A hashable identity of this spec (dicts are not hashable)."""
        base = (tuple(sorted(self.keywords.items())), self.test_pattern, tuple(sorted(self.overlaps.items())))
        return base if self.ties == "heavy" else (*base, self.ties)  # the default keeps its image-cache name

    def __hash__(self) -> int:
        return hash(self.key())

    def digest(self, seed: int) -> str:
        """A short stable name for (seed, spec), used for the on-disk image cache folder."""
        return hashlib.blake2b(repr((seed, self.key())).encode(), digest_size=6).hexdigest()
