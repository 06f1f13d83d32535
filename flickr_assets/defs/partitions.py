"""Keyword partitions, read from the keywords file (``$FLICKR_KEYWORDS_FILE``).

The file is the source of truth: every code-location load (each CLI call, ``dagster dev`` start, "Reload
definitions" in the UI, or the reload ``keywords_file_watch`` asks for when the file changes) reads it again,
so a keyword added to it is a partition at once, and a removed one stops being scheduled while its data
stays on disk.
"""

import logging
import os
from functools import cache
from pathlib import Path

import dagster as dg

from flickr_assets.flickr.keywords import KeywordsFile, load_keywords_file

SAMPLE_KEYWORDS_FILE = Path(__file__).resolve().parent.parent / "sample" / "keywords.txt"

log = logging.getLogger("flickr_assets")


def keywords_file_path() -> Path:
    """``$FLICKR_KEYWORDS_FILE``, or the sample file shipped with the package."""
    return Path(os.environ.get("FLICKR_KEYWORDS_FILE") or SAMPLE_KEYWORDS_FILE)


@cache
def load_keywords() -> KeywordsFile:
    """The parsed keywords file; lines that cannot be used are reported once, one warning per line."""
    parsed = load_keywords_file(keywords_file_path())
    for problem in parsed.problems:
        log.warning("skipped keyword: %s", problem)
    return parsed


keyword_partitions = dg.StaticPartitionsDefinition([query.keyword for query in load_keywords().entries])
