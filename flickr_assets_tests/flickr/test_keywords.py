"""The keywords file: options, @defaults, negative terms, problems with line numbers, unreadable files."""

from datetime import UTC, datetime

import pytest

from flickr_assets.flickr.keywords import KeywordsFileError, load_keywords_file, parse_keywords
from flickr_assets.flickr.query import CC_LICENSES, DEFAULT_START, OPEN_LICENSES


def test_plain_lines_follow_the_seed_defaults_and_comments_are_ignored():
    parsed = parse_keywords("# places\n\ncolosseum\n  golden   gate bridge  # the bridge\n#stonehenge\n")
    assert parsed.keywords == ["colosseum", "golden gate bridge"]
    query = parsed.entries[0]
    assert query.mode == "text" and query.has_geo is True and query.licenses == () and query.media == "photos"
    assert query.min_upload == DEFAULT_START and query.max_upload is None
    assert query.api_arguments() == {"text": "colosseum", "has_geo": "1", "media": "photos"}
    assert parsed.problems == []


def test_every_option_on_one_line():
    line = (
        "eiffel tower | tags | license=cc | has_geo=any | bbox=2.2,48.8,2.4,48.9 | uploaded=2010-01-01..2015-12-31"
        " | taken=..2012-01 | tag_mode=all | media=all | accuracy=11"
    )
    (query,) = parse_keywords(line).entries
    assert query.mode == "tags" and query.tag_mode == "all" and query.has_geo is None
    assert query.licenses == CC_LICENSES and query.bbox == (2.2, 48.8, 2.4, 48.9) and query.media == "all"
    assert query.min_upload == datetime(2010, 1, 1, tzinfo=UTC)
    assert query.max_upload == datetime(2015, 12, 31, 23, 59, 59, tzinfo=UTC)  # TO is inclusive
    assert query.min_taken is None and query.max_taken == datetime(2012, 1, 31, 23, 59, 59)
    args = query.api_arguments()
    assert args["tags"] == "eiffel tower" and args["tag_mode"] == "all" and "has_geo" not in args
    assert args["bbox"] == "2.2,48.8,2.4,48.9" and args["accuracy"] == "11"
    assert query.is_geo and query.page_size == 250


def test_defaults_apply_in_order_caller_then_file_then_line():
    text = "first\n@defaults has_geo=0 | license=open\nsecond\nthird | has_geo=1 | license=4,5\n@defaults text\n"
    parsed = parse_keywords(text, defaults={"has_geo": None, "licenses": (9,), "media": "all"})
    first, second, third = parsed.entries
    assert (first.has_geo, first.licenses, first.media) == (None, (9,), "all")
    assert (second.has_geo, second.licenses, second.media) == (False, OPEN_LICENSES, "all")
    assert (third.has_geo, third.licenses) == (True, (4, 5))
    assert not first.is_geo and first.page_size == 500
    assert second.is_geo and second.page_size == 250  # has_geo=0 is a geo argument too: 250 per page


def test_caller_defaults_may_be_option_strings():
    (query,) = parse_keywords("sunset", defaults={"license": "cc", "uploaded": "2020..2020"}).entries
    assert query.licenses == CC_LICENSES
    assert (query.min_upload, query.max_upload) == (
        datetime(2020, 1, 1, tzinfo=UTC),
        datetime(2020, 12, 31, 23, 59, 59, tzinfo=UTC),
    )


def test_negative_lines_are_appended_to_every_full_text_query_wherever_they_are():
    parsed = parse_keywords("colosseum\n-wedding\nbridge | tags\n- -party  tour\nfuji\n")
    colosseum, bridge, fuji = parsed.entries
    assert colosseum.api_arguments()["text"] == "colosseum -wedding -party -tour"
    assert fuji.negative_terms == ("wedding", "party", "tour")
    assert bridge.negative_terms == () and bridge.api_arguments()["tags"] == "bridge"


def test_bad_lines_are_skipped_with_file_and_line_number():
    text = "\n".join(
        [
            "eiffel tower",  # 1
            "Eiffel  Tower",  # 2 duplicate after normalising, other case
            "paris | lisence=cc",  # 3 unknown option
            "rome | has_geo=maybe",  # 4
            "oslo | bbox=1,2,3",  # 5
            "lima | uploaded=2015-01-01..2010-01-01",  # 6 reversed
            "kyiv | taken=2010-13-01..",  # 7 month 13
            "a,b",  # 8 comma
            "@include other.txt",  # 9
            " | tags",  # 10 empty keyword
            "nice\x07bell",  # 11 control character
            "quito | license=cc,99x",  # 12
            "bern | media=films",  # 13
            "good one",  # 14
            "accra | license=²",  # 15 a digit to str.isdigit, not to int()
        ]
    )
    parsed = parse_keywords(text, source="kw.txt")
    assert parsed.keywords == ["eiffel tower", "good one"]
    lines = [int(problem.split(" line ")[1].split(":")[0]) for problem in parsed.problems]
    assert lines == [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15]
    assert "license='²': '²' is not a licence id" in parsed.problems[-1]
    assert all(problem.startswith("kw.txt line ") and "\n" not in problem for problem in parsed.problems)
    assert "'Eiffel Tower' repeats line 1" in parsed.problems[0]
    assert "unknown option 'lisence'" in parsed.problems[1]


def test_lookup_by_keyword_is_case_insensitive():
    parsed = parse_keywords("Mount Fuji | has_geo=0")
    assert parsed.query("mount  FUJI").keyword == "Mount Fuji"
    assert parsed.query("everest") is None


def test_load_file_with_bom_and_unicode(tmp_path):
    path = tmp_path / "keywords.txt"
    path.write_bytes("\ufeffcafé\nsão paulo | has_geo=any\n".encode())
    parsed = load_keywords_file(path)
    assert parsed.keywords == ["café", "são paulo"] and parsed.source == str(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"colosseum\n\x00\x01\x02binary", "binary"),
        (b"colosseum\nparis\n\xff\xfe\xfa junk\n", "line 3: not UTF-8"),
    ],
)
def test_unreadable_files_fail_with_one_line(tmp_path, content, message):
    path = tmp_path / "keywords.txt"
    path.write_bytes(content)
    with pytest.raises(KeywordsFileError, match=message) as caught:
        load_keywords_file(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_missing_file_names_the_setting(tmp_path):
    with pytest.raises(KeywordsFileError, match="FLICKR_KEYWORDS_FILE"):
        load_keywords_file(tmp_path / "nope.txt")


def test_sample_file_parses_cleanly():
    from pathlib import Path

    import flickr_assets

    sample = Path(flickr_assets.__file__).parent / "sample" / "keywords.txt"
    parsed = load_keywords_file(sample)
    assert parsed.problems == [] and "colosseum" in parsed.keywords
