"""Hybrid search: fusion, explain, pagination, filters, cutoff, code boost (real offline models)."""

import json
import os
import shutil
import time

import pytest
from click.testing import CliRunner

from indexer.pipeline import Indexer
from searchengine.cli import cli
from searchengine.errors import SearchEngineError
from searchengine.models.registry import create_captioner, create_embedder, create_ocr
from searchengine.records import Filters
from searchengine.search import SearchEngine, has_code
from searchengine.store.db import Store
from tests.conftest import REPO

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    """The sample gallery copied (so mtimes can be set), indexed with every default stage."""
    root = tmp_path_factory.mktemp("gallery") / "sample"
    shutil.copytree(REPO / "data" / "sample", root)
    old = time.mktime((2020, 6, 1, 12, 0, 0, 0, 0, -1))
    for p in (root / "photos").rglob("*.*"):
        os.utime(p, (old, old))
    index = tmp_path_factory.mktemp("hybrid-index")
    store = Store(index)
    offline = create_embedder("offline")
    Indexer(store, offline, ocr=create_ocr("rapidocr"), captioner=create_captioner("offline")).run(root)
    return root, index, SearchEngine(store, offline)


def names(page):
    return [h.path.rsplit("/", 1)[1] for h in page.hits]


def test_hybrid_fuses_meaning_and_words_with_explain(gallery):
    _, _, engine = gallery
    page = engine.query("a cup of coffee", limit=5, explain=True)
    assert names(page)[0] == "coffee.png"
    top = page.hits[0]
    assert set(top.legs) == {"vector", "keyword"} and top.legs["vector"]["rank"] == 1
    assert "coffee_beans.png" in names(page)  # found by its label text, not by meaning


def test_exact_code_beats_semantic_neighbours(gallery):
    _, _, engine = gallery
    assert has_code("QX-7781-B") and not has_code("a red dress")
    page = engine.query("QX-7781-B", limit=3, min_score=-1, explain=True)  # even with every vector hit kept
    assert names(page)[0] == "green_tea.png" and "keyword" in page.hits[0].legs


def test_unrelated_query_returns_nothing(gallery):
    _, _, engine = gallery
    assert engine.cutoff() > 0
    assert engine.query("a recipe for chocolate cake", limit=5).hits == []
    assert engine.query("the stock market crashed yesterday", limit=5).hits == []
    assert engine.query("the stock market crashed yesterday", limit=5, min_score=-1).hits  # override


def test_filters_hold_and_still_fill_the_page(gallery):
    root, _, engine = gallery
    only = Filters(folder=str((root / "signs").resolve()))
    page = engine.query("a photo", limit=5, min_score=-1, filters=only)
    assert len(page.hits) == 5 and all("/signs/" in h.path for h in page.hits)
    png = engine.query("a photo", limit=30, min_score=-1, filters=Filters(formats=("PNG",)))
    assert png.hits and all(h.format == "PNG" for h in png.hits)
    recent = Filters(modified_after=int(time.mktime((2021, 1, 1, 0, 0, 0, 0, 0, -1)) * 1e9))
    assert all(
        "/photos/" not in h.path for h in engine.query("a cat", limit=30, min_score=-1, filters=recent).hits
    )
    old = Filters(modified_before=int(time.mktime((2021, 1, 1, 0, 0, 0, 0, 0, -1)) * 1e9))
    assert names(engine.query("a cat", limit=3, filters=old))[0] == "chelsea_the_cat.jpg"
    small = engine.query("a photo", limit=30, min_score=-1, filters=Filters(max_bytes=60_000))
    assert small.hits and all(engine.store.images.by_id([h.id])[h.id].size <= 60_000 for h in small.hits)
    tagged = engine.query("a photo", limit=30, min_score=-1, filters=Filters(tags=("orange",)))
    assert "chelsea_the_cat.jpg" in names(tagged)
    for h in tagged.hits:
        assert "orange" in engine.store.text.of(h.id).tags
    with pytest.raises(SearchEngineError, match="no indexed image under /nowhere"):  # not an empty page
        engine.query("a cat", limit=5, filters=Filters(folder="/nowhere"))


def test_leg_weights_and_weighted_fusion(gallery):
    _, _, engine = gallery
    kw = engine.query("coffee", limit=3, vector_weight=0.0, keyword_weight=1.0)
    assert names(kw)[0] == "coffee_beans.png"
    w = engine.query("a cup of coffee", limit=3, fusion="weighted")
    assert names(w)[0] == "coffee.png"


def test_cli_explain_json_filters_and_pages(gallery):
    root, index, _ = gallery
    runner = CliRunner()
    base = ["--index", str(index), "--json"]
    r = runner.invoke(cli, ["search", "a cup of coffee", "--explain", *base])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["mode"] == "hybrid" and data["results"][0]["legs"]["vector"]["rank"] == 1
    r = runner.invoke(
        cli,
        [
            "search",
            "a photo",
            "--min-score",
            "-1",
            "-k",
            "2",
            "--offset",
            "2",
            "--folder",
            str(root / "products"),
            "--type",
            "png",
            *base,
        ],
    )
    data = json.loads(r.stdout)
    assert [x["rank"] for x in data["results"]] == [3, 4]
    assert all("/products/" in x["path"] and x["format"] == "PNG" for x in data["results"])
    r = runner.invoke(cli, ["search", "a cat", "--before", "2021-01-01", "--tag", "orange", *base])
    assert json.loads(r.stdout)["results"][0]["path"].endswith("chelsea_the_cat.jpg")
    r = runner.invoke(cli, ["search", "a cat", "--after", "yesterday", *base])
    assert r.exit_code == 1 and "not an ISO date" in r.stderr
    r = runner.invoke(cli, ["search", "a recipe for chocolate cake", "--index", str(index)])
    assert r.exit_code == 0 and "no results" in r.stderr


def test_quoted_phrase_must_match(gallery):
    _, _, engine = gallery
    page = engine.query('"summer sale" poster', limit=10, min_score=-1)
    assert names(page) == ["summer_sale.png"]
    assert names(engine.query('"olive oil" honey', limit=10, min_score=-1)) == ["olive_oil.jpg"]


def test_negative_term_pushes_matches_down(gallery):
    _, _, engine = gallery
    with_beans = names(engine.query("coffee", limit=10))
    assert "coffee_beans.png" in with_beans
    without = names(engine.query("coffee -beans", limit=10))
    assert "coffee_beans.png" not in without and without[0] == "coffee.png"


def test_term_weights_change_the_order(gallery):
    _, _, engine = gallery
    assert names(engine.query("2:honey oil", limit=2, mode="keyword"))[0] == "wildflower_honey.jpg"
    assert names(engine.query("honey 2:oil", limit=2, mode="keyword"))[0] == "olive_oil.jpg"


def test_image_queries(gallery):
    root, _, engine = gallery
    from PIL import Image

    cat_file = root / "photos" / "chelsea_the_cat.jpg"
    page = engine.query(image=Image.open(cat_file), limit=3, explain=True)
    assert names(page)[0] == "chelsea_the_cat.jpg" and page.hits[0].legs["vector"]["score"] > 0.99
    cat = engine.store.images.by_path(str(cat_file.resolve()))
    similar = engine.query(like=cat.id, limit=5)
    assert similar.hits and cat.id not in {h.id for h in similar.hits}
    both = engine.query("coffee", like=cat.id, limit=3, explain=True)
    assert set(names(both)[:2]) == {"coffee.png", "coffee_beans.png"}  # the word, steered by the cat photo
    assert all(set(h.legs) == {"vector", "keyword"} for h in both.hits[:2])
    with pytest.raises(SearchEngineError, match="no searchable indexed image"):
        engine.query(like=99999)
    with pytest.raises(SearchEngineError, match="empty"):
        engine.query("  ")


def test_cli_image_and_like(gallery, tmp_path):
    root, index, _ = gallery
    runner = CliRunner()
    base = ["--index", str(index), "--json"]
    r = runner.invoke(cli, ["search", "--image", str(root / "photos" / "coffee.png"), *base])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["results"][0]["path"].endswith("coffee.png")
    r = runner.invoke(cli, ["search", "--like", str(root / "photos" / "coffee.png"), "-k", "3", *base])
    assert r.exit_code == 0 and not any(
        x["path"].endswith("/coffee.png") for x in json.loads(r.stdout)["results"]
    )
    (tmp_path / "bad.jpg").write_text("no")
    r = runner.invoke(cli, ["search", "--image", str(tmp_path / "bad.jpg"), *base])
    assert r.exit_code == 1 and "cannot use" in r.stderr
    r = runner.invoke(cli, ["search", "--like", "/nope.png", *base])
    assert r.exit_code == 1 and "not a searchable indexed image" in r.stderr
    r = runner.invoke(cli, ["search", *base])
    assert r.exit_code == 1 and "empty" in r.stderr


def test_explain_reports_keyword_coverage(gallery):
    _, _, engine = gallery
    page = engine.query("wildflower honey jar", limit=3, explain=True)
    top = page.hits[0]
    assert names(page)[0] == "wildflower_honey.jpg"
    assert top.legs["keyword"]["coverage"] == pytest.approx(2 / 3, abs=1e-3)  # "jar" is not there
