"""One photo as the REST API shows it: secrets, server, text fields, sizes and the `extras` attributes."""

import functools
import hashlib
import random
from dataclasses import dataclass
from datetime import UTC, datetime

from .columns import OWNER_BASE, OWNER_COUNT, OWNER_STEP
from .geometry import scaled_dims
from .spec import LARGE_EDGE, SIZES
from .universe import Universe
from .zoo import NORMAL

_WORDS = [
    "light",
    "evening",
    "morning",
    "view",
    "city",
    "old",
    "street",
    "river",
    "bridge",
    "tower",
    "park",
    "garden",
    "travel",
    "trip",
    "holiday",
    "summer",
    "winter",
    "autumn",
    "spring",
    "sky",
    "cloud",
    "clouds",
    "blue",
    "red",
    "golden",
    "night",
    "lights",
    "walk",
    "family",
    "friends",
    "architecture",
    "landscape",
    "nature",
    "water",
    "sea",
    "beach",
    "mountain",
    "hill",
    "snow",
    "tree",
    "trees",
    "building",
    "church",
    "museum",
    "people",
    "square",
]
_SYLLABLES = [
    "ka",
    "lo",
    "mi",
    "ra",
    "ne",
    "to",
    "sa",
    "ve",
    "lu",
    "di",
    "an",
    "el",
    "or",
    "is",
    "um",
    "ba",
    "co",
    "fe",
    "gi",
    "ho",
]
_CAMERAS = ("canon", "nikon", "sony", "fujifilm", "olympus", "iphone", "pentax", "leica")
_ODDITIES = (" & friends", " <b>wow</b>", " — café crème", " ☀", ' "quoted"', " 東京", " l'été", " a/b")


@dataclass(frozen=True)
class Size:
    """One size of a photo: extra name (sq, t, ..., l, o), URL suffix, upright pixel size, square crop edge."""

    name: str
    suffix: str
    width: int
    height: int
    square: int


def secret(seed: int, photo_id: int, which: str = "s") -> str:
    """The 10-hex-digit secret of a photo's sizes ("s") or of its original ("o")."""
    return hashlib.blake2b(f"{seed}:{photo_id}:{which}".encode(), digest_size=5).hexdigest()


def photo_secret(universe: Universe, photo_id: int, which: str = "s") -> str:
    """The photo's current secret in ``universe``: :func:`secret`, or a new one for each time it was rotated."""
    epoch = universe.secret_epochs.get(photo_id, 0)
    return secret(universe.seed, photo_id, f"{which}{epoch}" if epoch else which)


def server(photo_id: int, upload: int) -> str:
    """Server ID: "65535" for modern uploads, small numbers for old ones."""
    return "65535" if upload >= 1_483_228_800 else str(1 + photo_id * 7_919 % 8_999)


def owner_nsid(owner: int) -> str:
    """The NSID ("12345678@N03") of an owner number; :func:`owner_from_nsid` reverses it."""
    return f"{OWNER_BASE + owner * OWNER_STEP}@N0{1 + owner % 8}"


def owner_from_nsid(nsid: str) -> int | None:
    """Owner number of an NSID the simulator issued, else None."""
    number, _, suffix = nsid.partition("@")
    if not number.isdecimal():
        return None
    owner, rest = divmod(int(number) - OWNER_BASE, OWNER_STEP)
    if rest or not 0 <= owner < OWNER_COUNT or suffix != f"N0{1 + owner % 8}":
        return None
    return owner


@functools.lru_cache(maxsize=OWNER_COUNT)
def owner_name(owner: int) -> str:
    """The owner's display name, made up from syllables (the same for every call)."""
    rng = random.Random(owner * 31 + 7)
    name = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4))).capitalize()
    return name + (f" {rng.choice(_SYLLABLES).capitalize()}" if rng.random() < 0.5 else f"{rng.randint(1, 99)}")


def path_alias(owner: int) -> str | None:
    """The owner's URL alias; only three owners in ten have one, as on Flickr."""
    return owner_name(owner).lower().replace(" ", "_") if owner % 10 < 3 else None


def sizes(universe: Universe, row: int, wanted: set[str] | None = None) -> list[Size]:
    """The sizes a photo has (Flickr only makes sizes smaller than the original; Large may be missing)."""
    cols = universe.cols
    width, height = int(cols.width[row]), int(cols.height[row])
    longest = max(width, height)
    result = []
    for name, suffix, edge, square in SIZES:
        if wanted is not None and name not in wanted:
            continue
        if square:
            result.append(Size(name, suffix, edge, edge, edge))
        elif name == "l":
            if cols.large[row]:
                result.append(Size(name, suffix, *scaled_dims(width, height, LARGE_EDGE), 0))
        elif edge < longest:
            result.append(Size(name, suffix, *scaled_dims(width, height, edge), 0))
    if (wanted is None or "o" in wanted) and original_shown(universe, row):
        result.append(Size("o", "o", width, height, 0))
    return result


#: Share of photos whose owner hides the Original: Flickr then gives neither ``url_o`` nor its secret.
ORIGINAL_HIDDEN_SHARE = 0.2


def original_shown(universe: Universe, row: int) -> bool:
    """Whether the photo's owner lets others see its Original (the bad-input zoo's photos all do)."""
    if universe.cols.zoo[row] != NORMAL:
        return True
    digest = hashlib.blake2b(f"{universe.seed}:{int(universe.cols.ids[row])}:o-shown".encode(), digest_size=2)
    return int.from_bytes(digest.digest(), "big") >= ORIGINAL_HIDDEN_SHARE * 65_536


class PhotoText:
    """Deterministic title, description, tags and machine tags of a photo."""

    def __init__(self, universe: Universe, row: int) -> None:
        cols = universe.cols
        photo_id = int(cols.ids[row])
        rng = random.Random(photo_id * 1_000_003 + universe.seed)
        keywords = [universe.keyword_names[int(cols.kw1[row])]]
        if cols.kw2[row] >= 0:
            keywords.append(universe.keyword_names[int(cols.kw2[row])])
        filler = rng.sample(_WORDS, rng.randint(1, 6))
        self.title = f"{keywords[0].title()} {' '.join(filler[:2])}".strip()
        if rng.random() < 0.1:
            self.title += rng.choice(_ODDITIES)
        self.title = universe.titles.get(photo_id, self.title)  # edited by its owner since
        tags: list[str] = []
        for keyword in keywords:
            tags.append(keyword.replace(" ", ""))
            tags.extend(w for w in keyword.split() if w not in tags)
        tags.extend(w for w in filler if w not in tags)
        if rng.random() < 0.3:
            tags.append(rng.choice(_CAMERAS))
        self.tags = " ".join(tags)
        self.machine_tags = f"camera:make={rng.choice(_CAMERAS)}" if rng.random() < 0.15 else ""
        pick = rng.random()
        if pick < 0.4:
            self.description = ""
        elif pick < 0.8:
            self.description = f"A {' '.join(filler)} shot of {' and '.join(keywords)}."
        else:
            self.description = (
                f'Taken near <a href="https://www.example.org/{keywords[0].replace(" ", "-")}" rel="nofollow">'
                f"{keywords[0]}</a> &amp; around{rng.choice(_ODDITIES)}\n{len(filler)} of {rng.randint(2, 40)}"
            )


def datetaken(ts: int) -> str:
    """A taken time as Flickr's ``datetaken`` text ("2010-05-01 12:00:00")."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")
