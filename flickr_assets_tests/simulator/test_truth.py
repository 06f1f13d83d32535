"""Ground truth agrees with what the REST API serves; the universe is deterministic and shaped as specified."""

import time

import numpy as np
import requests

from flickr_assets.simulator import DEFAULT_KEYWORDS, Simulator, UniverseSpec
from flickr_assets.simulator.universe import build_universe

from .helpers import search_json


def _harvest(sim: Simulator, session: requests.Session, lo: int, hi: int, **args: object) -> set[int]:
    """Every photo ID of a query in [lo, hi]: windows are split until one page holds them all (paging a window
    is unreliable, as on Flickr: photos sharing an upload second are reordered between calls)."""
    window = {"min_upload_date": lo, "max_upload_date": hi, "per_page": 500, **args}
    first = search_json(sim, session, **window)
    if first["total"] <= first["perpage"]:
        return {int(p["id"]) for p in first["photo"]}
    if lo < hi:
        mid = (lo + hi) // 2
        return _harvest(sim, session, lo, mid, **args) | _harvest(sim, session, mid + 1, hi, **args)
    found: set[int] = set()  # one second holding more than a page: ask again until every photo was seen
    for _ in range(50):
        for page in range(1, first["pages"] + 1):
            found.update(int(p["id"]) for p in search_json(sim, session, page=page, **window)["photo"])
        if len(found) == first["total"]:
            break
    return found


def test_paging_small_windows_finds_exactly_the_truth(sim: Simulator) -> None:
    with requests.Session() as session:
        everything = (1_075_000_000, int(time.time()) + 86_400)
        assert _harvest(sim, session, *everything, text="golden gate bridge") == sim.truth.search_ids(
            text="golden gate bridge"
        )
        geo = _harvest(sim, session, *everything, text="eiffel tower", has_geo="1")
        assert geo == sim.truth.search_ids(text="eiffel tower", has_geo=True)
        assert 0.5 < len(geo) / 2_000 < 0.7
        cc = _harvest(sim, session, *everything, tags="stonehenge,colosseum", license="4,9")
        assert cc == sim.truth.search_ids(tags=["stonehenge", "colosseum"], license=[4, 9])


def test_truth_date_bounds_are_inclusive_and_match_search(sim: Simulator) -> None:
    ids = sorted(sim.truth.search_ids(text="mount fuji"))
    universe = sim.universe
    t = int(universe.cols.upload[universe.row_of(ids[len(ids) // 2])])
    truth = sim.truth.search_ids(text="mount fuji", min_upload_date=t, max_upload_date=t)
    served = search_json(sim, text="mount fuji", min_upload_date=t, max_upload_date=t, per_page=500)
    assert ids[len(ids) // 2] in truth and {int(p["id"]) for p in served["photo"]} == truth
    taken = sim.truth.search_ids(text="mount fuji", min_taken_date=1_400_000_000, max_taken_date=1_500_000_000)
    served = search_json(sim, text="mount fuji", min_taken_date="2014-05-13 16:53:20", max_taken_date=1_500_000_000)
    assert served["total"] == len(taken) > 0


def test_keyword_volumes_and_overlaps(sim: Simulator) -> None:
    keywords = sim.truth.keywords()
    assert {k: keywords[k] for k in DEFAULT_KEYWORDS} == DEFAULT_KEYWORDS
    assert 30 <= keywords["test pattern"] <= 50
    for name in ("eiffel tower", "mount fuji", "new york"):
        ids = sim.truth.photo_ids(name)
        others = set().union(*(sim.truth.photo_ids(o) for o in DEFAULT_KEYWORDS if o not in (name, "sunset")))
        shared = len(ids & (others | sim.truth.photo_ids("sunset"))) / len(ids)
        assert 0.04 <= shared <= 0.12, (name, shared)


def test_upload_times_grow_with_bursts_and_shared_seconds(sim: Simulator) -> None:
    cols = sim.universe.cols
    years = (cols.upload // (365.25 * 86_400) + 1970).astype(int)
    per_year = np.bincount(years)[2005:2025]
    assert per_year[-1] > 3 * per_year[1]  # volume grows over the years
    _, counts = np.unique(cols.upload, return_counts=True)
    assert counts.max() > 500 and (counts >= 5).sum() > 1_000  # batches uploaded in one second
    assert np.all(np.diff(cols.upload) >= 0) and cols.taken.max() <= cols.upload.max()
    assert np.all(cols.taken <= cols.upload)


def test_uploads_are_visible_at_once(private_sim: Simulator) -> None:
    before = private_sim.truth.search_ids(text="colosseum")
    now = int(time.time())
    new = private_sim.upload("colosseum", 25)
    assert len(new) == 25 and not set(new) & before
    served = search_json(private_sim, text="colosseum", min_upload_date=now - 5, per_page=500, extras="url_l,url_o")
    assert {int(p["id"]) for p in served["photo"]} >= set(new)
    assert private_sim.truth.search_ids(text="colosseum") == before | set(new)
    photo = served["photo"][0]
    assert requests.get(photo.get("url_l") or photo["url_o"]).status_code == 200
    past = private_sim.upload("colosseum", 3, when=1_300_000_000)
    assert set(past) <= private_sim.truth.search_ids(text="colosseum", max_upload_date=1_300_000_000)


def test_universe_is_deterministic_per_seed_and_differs_between_seeds() -> None:
    spec = UniverseSpec(keywords={"alpha": 500, "beta": 2_000})
    now = 1_700_000_000
    a, b, c = build_universe(3, spec, now), build_universe(3, spec, now), build_universe(4, spec, now)
    assert np.array_equal(a.cols.ids, b.cols.ids) and np.array_equal(a.cols.width, b.cols.width)
    assert a.duplicates == b.duplicates
    assert not np.array_equal(a.cols.upload, c.cols.upload)


def test_default_universe_holds_every_keyword() -> None:
    universe = build_universe(11, UniverseSpec(), 1_700_000_000)
    assert len(universe.cols) > 1_300_000
    assert {name: len(universe.keyword_rows(name)) for name in DEFAULT_KEYWORDS} == DEFAULT_KEYWORDS


def _alone_share(universe) -> float:
    """Share of photos that are the only upload of their second."""
    _, counts = np.unique(universe.cols.upload, return_counts=True)
    return float((counts == 1).sum() / len(universe.cols))


def test_tie_profiles_change_only_how_uploads_share_seconds() -> None:
    keywords = {"alpha": 20_000, "beta": 60_000}
    heavy = build_universe(3, UniverseSpec(keywords=keywords, test_pattern=False), 1_700_000_000)
    light = build_universe(3, UniverseSpec(keywords=keywords, test_pattern=False, ties="light"), 1_700_000_000)
    assert len(heavy.cols) == len(light.cols)
    assert (
        {n: len(heavy.keyword_rows(n)) for n in keywords}
        == keywords
        == {n: len(light.keyword_rows(n)) for n in keywords}
    )
    assert _alone_share(heavy) < 0.15 < 0.5 < _alone_share(light)
    assert UniverseSpec(ties="light").digest(7) != UniverseSpec().digest(7)


def test_fewest_window_calls_packs_whole_seconds(private_sim: Simulator) -> None:
    when = 1_500_000_000
    private_sim.upload("colosseum", 700, when=when)  # one second holding more than a page: 2 calls at best
    private_sim.upload("colosseum", 300, when=when + 1)  # then a page that is not full ends the walk
    window = {"text": "colosseum", "min_upload_date": when, "max_upload_date": when + 1}
    assert len(private_sim.truth.search_ids(**window)) == 1_000
    assert private_sim.truth.fewest_window_calls(**window) == 3
    private_sim.upload("colosseum", 150, when=when + 2)  # 300 + 150 still fit one page
    assert private_sim.truth.fewest_window_calls(**{**window, "max_upload_date": when + 2}) == 3
    private_sim.upload("colosseum", 100, when=when + 3)  # 450 + 100 do not: one more page
    assert private_sim.truth.fewest_window_calls(**{**window, "max_upload_date": when + 3}) == 4
