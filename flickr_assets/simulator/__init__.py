"""An offline Flickr: REST API, static photo host, fault injection and ground truth, on 127.0.0.1.

Never imports the pipeline (only the standard library, numpy and Pillow).
"""

from .faults import Budget, Faults
from .server import Simulator
from .spec import DEFAULT_KEYWORDS, DEMO_API_KEY, DEMO_API_SECRET, TEST_PATTERN, UniverseSpec
from .truth import DownloadTruth, GroundTruth

__all__ = [
    "DEFAULT_KEYWORDS",
    "DEMO_API_KEY",
    "DEMO_API_SECRET",
    "TEST_PATTERN",
    "Budget",
    "DownloadTruth",
    "Faults",
    "GroundTruth",
    "Simulator",
    "UniverseSpec",
]
