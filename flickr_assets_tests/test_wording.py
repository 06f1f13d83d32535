from flickr_assets.wording import counted


def test_counts_read_in_the_singular_for_one_and_the_plural_otherwise():
    assert counted(1, "call") == "1 call"
    assert counted(0, "call") == "0 calls"
    assert counted(12_345, "keyword") == "12,345 keywords"
    assert counted(2, "query", "queries") == "2 queries"
