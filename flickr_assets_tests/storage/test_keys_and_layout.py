"""Keywords become safe folder names; no path handed out leaves the data folder."""

import pytest

from flickr_assets.storage.keys import KeywordError, decode_keyword, encode_keyword, validate_keyword
from flickr_assets.storage.layout import DataFolderError, DataLayout


@pytest.mark.parametrize(
    "keyword",
    ["eiffel tower", "café", "black/white", "../x", "/etc", "a/../../b", "ü😀", "50% off", "~user", "x" * 200],
)
def test_usable_keywords_stay_inside_the_data_folder(tmp_path, keyword):
    layout = DataLayout.at(tmp_path)
    for path in (layout.records_file(keyword), layout.images_dir(keyword), layout.manifest_file(keyword)):
        assert layout.root in path.parents
        assert path.relative_to(layout.root).parts[1].endswith(encode_keyword(keyword))
    name = encode_keyword(keyword)
    assert "/" not in name and not name.startswith(".") and len(name.encode()) <= 255
    assert decode_keyword(name) == keyword


def test_distinct_keywords_get_distinct_folders(tmp_path):
    layout = DataLayout.at(tmp_path)
    keywords = ["black", "black/white", "black%2Fwhite", "Black", "black white"]
    assert len({layout.images_dir(k) for k in keywords}) == len(keywords)


@pytest.mark.parametrize(
    ("keyword", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("a\x00b", "control"),
        ("line\nbreak", "control"),
        ("tab\there", "control"),
        (" padded", "whitespace"),
        ("two  spaces", "whitespace"),
        ("...", "dots"),
        ("..", "dots"),
        ("a,b", "comma"),
        ("wait... what", r"'\.\.\.'"),
        ("x" * 201, "characters long"),
        ("é" * 100, "too long once encoded"),
    ],
)
def test_unusable_keywords_are_rejected_with_a_reason(keyword, message):
    with pytest.raises(KeywordError, match=message):
        validate_keyword(keyword)


def test_layout_refuses_relative_paths_that_escape(tmp_path):
    layout = DataLayout.at(tmp_path)
    with pytest.raises(ValueError, match="leave the data folder"):
        layout.resolve_relative("../outside.jpg")
    with pytest.raises(ValueError, match="unsafe image file name"):
        layout.image_file("k", 0, "../x.jpg")
    assert layout.image_file("k", 3, "1_a_b_c.jpg").parent.name == "0003"


def test_a_data_folder_that_is_a_file_is_named_as_such(tmp_path):
    path = tmp_path / "data"
    path.write_text("a file")
    with pytest.raises(DataFolderError, match=f"^the data folder {path} is a file, not a folder$"):
        DataLayout.at(path).ensure_writable()
    assert path.read_text() == "a file"
