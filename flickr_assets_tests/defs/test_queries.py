"""The query defaults taken from the environment (FLICKR_HAS_GEO, FLICKR_LICENSE) and the resource."""

import pytest

from flickr_assets.defs.queries import QueryDefaults
from flickr_assets.flickr.keywords import OptionError, parse_keywords


def _query(defaults: QueryDefaults):
    return parse_keywords("colosseum\n", defaults=defaults.as_options()).query("colosseum")


@pytest.mark.parametrize(("value", "expected"), [("1", True), ("yes", True), ("off", False), (" Any ", None)])
def test_has_geo_default_accepts_what_the_keywords_file_accepts(value, expected):
    assert _query(QueryDefaults(has_geo=value)).has_geo is expected


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"has_geo": "maybe"}, "has_geo='maybe'"),
        ({"license": "bogus"}, "license='bogus'"),
        ({"uploaded": "x.."}, "'x'"),
    ],
)
def test_a_bad_default_fails_in_one_line_naming_the_setting(settings, named):
    with pytest.raises(OptionError) as caught:
        QueryDefaults(**settings).as_options()
    message = str(caught.value)
    assert message.startswith("query defaults (FLICKR_HAS_GEO, FLICKR_LICENSE") and named in message
    assert "\n" not in message


def test_licence_default_reaches_the_query():
    assert _query(QueryDefaults(license="4,5")).licenses == (4, 5)
