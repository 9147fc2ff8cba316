"""The engine's contract with a tiny random encoder: paging, validation, listings, requests."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from indexer.pipeline import Indexer
from searchengine.errors import BadQuery, NotFound
from searchengine.records import Filters, SearchRequest
from searchengine.search import SearchEngine, build_request
from searchengine.search.request import instant_ns
from searchengine.store.db import Store
from tests.conftest import write_images


@pytest.fixture(scope="module")
def engine(tmp_path_factory, tiny_embedder):
    root = tmp_path_factory.mktemp("engine") / "photos"
    write_images(root, 24)
    write_images(root / "sub", 6, prefix="nested", start=50)
    store = Store(root.parent / "index")
    Indexer(store, tiny_embedder).run(root)
    return SearchEngine(store, tiny_embedder)


def test_pagination_is_stable_and_complete(engine):
    full = engine.query("a photo", limit=20, min_score=-1, mode="vector")
    pages = [engine.query("a photo", limit=5, offset=o, min_score=-1, mode="vector") for o in (0, 5, 10, 15)]
    assert [h.id for p in pages for h in p.hits] == [h.id for h in full.hits]
    assert [h.rank for h in pages[1].hits] == [6, 7, 8, 9, 10]
    assert pages[0].total == full.total == 30
    past = engine.query("a photo", limit=5, offset=40, min_score=-1, mode="vector")
    assert past.hits == [] and past.total == 30


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"mode": "fuzzy"}, "unknown search mode"),
        ({"fusion": "x"}, "unknown fusion"),
        ({"limit": 0}, "limit must be positive"),
        ({"offset": -1}, "offset not negative"),
        ({"rrf_k": 0}, "rrf_k"),
        ({"text": "  "}, "the query is empty"),
        ({"text": '"" -- **'}, "no searchable word"),
        ({"text": None, "like": 1, "mode": "keyword"}, "needs the vector leg"),
    ],
)
def test_bad_requests_are_clear(engine, fields, message):
    with pytest.raises(BadQuery, match=message):
        engine.run(SearchRequest(**{"text": "cat", **fields}))


def test_unknown_like_is_not_found(engine):
    with pytest.raises(NotFound, match="no searchable indexed image with id 99999"):
        engine.query(like=99999)


def test_keyword_only_engine_refuses_vector_search(engine):
    keyword_only = SearchEngine(engine.store, None)
    assert keyword_only.query("nested", mode="keyword").hits  # names are keywords
    with pytest.raises(BadQuery, match="needs the index's encoder"):
        keyword_only.query("nested")


def test_browse_lists_what_passes_the_filters_by_path(engine):
    folder = engine.store.images.roots()[0] + "/sub"
    page = engine.run(SearchRequest(filters=Filters(folder=folder), limit=4))
    assert page.mode == "browse" and page.total == 6 and len(page.hits) == 4
    assert [h.name for h in page.hits] == sorted(h.name for h in page.hits)
    assert all(h.folder == folder for h in page.hits)


def test_hits_are_hydrated(engine):
    hit = engine.query("a photo", limit=1, min_score=-1, explain=True).hits[0]
    rec = engine.store.images.by_id([hit.id])[hit.id]
    assert (hit.path, hit.width, hit.format) == (rec.path, rec.width, rec.format)
    assert hit.as_dict()["name"] == hit.path.rsplit("/", 1)[1] and "vector" in hit.legs


def test_build_request_reads_what_people_type(tmp_path):
    req = build_request(
        "red dress",
        folder=str(tmp_path / "a" / ".." / "b"),
        types=["jpg", " ", ".tif"],
        after="2024-05-01",
        before="2024-05-31",
        tags=["  summer   sale "],
        where=["price<50", "colour=Red"],
        facets=["baseColour", "brand", "brand"],
        limit=5,
    )
    f = req.filters
    assert f.folder == str((tmp_path / "b").resolve()) and f.formats == ("JPEG", "TIFF")
    assert f.tags == ("summer sale",) and [c.key for c in f.where] == ["price", "colour"]
    assert req.facets == ("base_colour", "brand") and req.limit == 5
    assert f.modified_after == instant_ns(date(2024, 5, 1))
    end_of_day = datetime(2024, 5, 31, 23, 59, 59, 999999).timestamp() * 1e9
    assert f.modified_before == pytest.approx(end_of_day, abs=1e3)
    assert build_request("cat").filters is None and build_request("  ").text is None


@pytest.mark.parametrize("value", ["yesterday", "2024-13-01"])
def test_bad_dates_are_bad_queries(value):
    with pytest.raises(BadQuery, match="not an ISO date"):
        build_request("cat", after=value)


def test_dates_at_the_ends_of_the_calendar_stay_in_int64():
    last, first = instant_ns(date.max, end=True), instant_ns(date.min)
    assert instant_ns(date(2024, 1, 1)) < last <= 2**63 - 1 and -(2**63) <= first < 0
