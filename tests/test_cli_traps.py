"""The CLI's traps (issue 15): typos that gave silent empty results, ambiguous tagging,
bare file names refused, counts in the wrong number, paging past the end.

Each test fails on the code before the fix. Tiny generated images and the tiny random
model; searches are filter-only listings or keyword searches, so no encoder loads.
"""

from __future__ import annotations

import csv
import io

import pytest
from click.testing import CliRunner

from indexer.pipeline import Indexer
from searchengine.cli import cli
from searchengine.store.db import Store
from tests.conftest import make_image, write_images


def cli_run(*args, stdin: str | None = None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=stdin)


def ok(*args, stdin: str | None = None):
    r = cli_run(*args, stdin=stdin)
    assert r.exit_code == 0, r.output + r.stderr
    return r


def user_tags(index, path) -> list[str]:
    store = Store(index)
    try:
        return store.library.user_tags(store.images.by_path(str(path)).id)
    finally:
        store.close()


@pytest.fixture
def shop(tmp_path, tiny_embedder, monkeypatch):
    """``(root, index)``: 12 product images p000..p011 (4 with a catalogue: sku, title, brand,
    price), two images both named dup090.png (in a/ and b/), and a collection 'spring'.
    The working folder is elsewhere, so relative names are not paths from it."""
    root, index = tmp_path / "shop", tmp_path / "index"
    write_images(root, 12, prefix="p")
    write_images(root / "a", 1, prefix="dup", start=90)
    (root / "b").mkdir()
    make_image(seed=91).save(root / "b" / "dup090.png")
    store = Store(index)
    Indexer(store, tiny_embedder).run(root)
    store.close()
    catalogue = tmp_path / "catalog.csv"
    catalogue.write_text(
        "image,sku,title,brand,price\n"
        "p000.png,SKU-1,Trail Runner,Acme,89.90\n"
        "p001.png,SKU-2,City Sneaker,Acme,59\n"
        "p002.png,SKU-3,Wool Beanie,Northwind,19.5\n"
        "p003.png,SKU-4,Rain Jacket,Northwind,120\n"
    )
    ok("import", catalogue, "--index", index)
    ok("collection", "add", "spring", root / "p000.png", "--index", index)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return root, index


# -- 1. an unknown --where field ------------------------------------------------------------
def test_unknown_where_field_is_an_error_naming_the_fields(shop):
    _, index = shop
    r = cli_run("search", "--index", index, "--where", "prise<50")
    assert r.exit_code == 1 and "no results" not in r.output
    assert "unknown field 'prise'" in r.stderr and "did you mean price?" in r.stderr
    assert "fields: brand, price, sku, title" in r.stderr
    r = cli_run("search", "shoe", "--mode", "keyword", "--index", index, "--where", "colour=red")
    assert r.exit_code == 1 and "unknown field 'colour'" in r.stderr
    r = cli_run("search", "--index", index, "--where", "brand<5")  # no brand is a number
    assert r.exit_code == 1 and "no value of 'brand' is a number" in r.stderr
    assert "City Sneaker" in ok("search", "--index", index, "--where", "price<60", "--json").stdout


def test_unknown_field_and_collection_over_http(shop):
    from tests.web.conftest import make_client

    _, index = shop
    client = make_client(index)
    r = client.get("/api/search", params={"where": "prise<50"})
    assert r.status_code == 400 and "did you mean price?" in r.json()["detail"]
    r = client.get("/api/search", params={"q": "x", "mode": "keyword", "collection": "sprung"})
    assert r.status_code == 404 and "no collection 'sprung' (did you mean spring?)" in r.json()["detail"]
    r = client.get("/api/export", params={"collection": "nosuch"})
    assert r.status_code == 404 and "collections: spring" in r.json()["detail"]
    assert client.get("/api/export", params={"collection": "spring"}).text.count("\n") == 2
    client.app.state.service.close()


# -- 2. an unknown --collection -------------------------------------------------------------
def test_unknown_collection_is_an_error_listing_the_collections(shop):
    _, index = shop
    r = cli_run("search", "--index", index, "--collection", "nosuch")
    assert r.exit_code == 1 and "no results" not in r.output
    assert "no collection 'nosuch'; collections: spring" in r.stderr
    r = cli_run("search", "--index", index, "--folder", "/no/such/folder")
    assert r.exit_code == 1 and "no indexed image under /no/such/folder; indexed folders:" in r.stderr
    assert "p000.png" in ok("search", "--index", index, "--collection", "spring").stdout


def test_unknown_tag_is_an_error_listing_the_tags(shop):
    root, index = shop
    ok("tag", "add", "bestseller", root / "p001.png", "--index", index)
    r = cli_run("search", "--index", index, "--tag", "bestseler")
    assert r.exit_code == 1 and "no results" not in r.output
    assert "no image is tagged 'bestseler' (did you mean bestseller?); tags:" in r.stderr
    assert "p001.png" in ok("search", "--index", index, "--tag", "BestSeller").stdout  # any case

    from tests.web.conftest import make_client

    client = make_client(index)
    r = client.get("/api/search", params={"tag": "bestseler"})
    assert r.status_code == 404 and "did you mean bestseller?" in r.json()["detail"]
    filters = client.get("/api/filters").json()  # your tags are offered as filters too
    assert filters["tags"][0] == {"value": "bestseller", "count": 1}
    client.app.state.service.close()


# -- 3. export of an unknown folder or collection ---------------------------------------------
def test_export_refuses_an_unknown_folder_or_collection(shop, tmp_path):
    root, index = shop
    out = tmp_path / "out.csv"
    r = cli_run("export", "--index", index, "--format", "csv", "--folder", tmp_path / "nosuch", "--out", out)
    assert r.exit_code == 1 and "no indexed image under" in r.stderr and not out.exists()
    r = cli_run("export", "--index", index, "--format", "csv", "--collection", "nosuch", "--out", out)
    assert r.exit_code == 1 and "no collection 'nosuch'" in r.stderr and not out.exists()
    r = cli_run(
        "export", "--index", index, "--format", "csv", "--folder", root / "a", "--collection", "spring"
    )
    assert r.exit_code == 1 and "nothing to export" in r.stderr
    r = ok("export", "--index", index, "--format", "csv", "--folder", root / "a", "--out", out)
    assert "1 image written" in r.stderr  # and in the right number
    assert [row["path"] for row in csv.DictReader(io.StringIO(out.read_text()))] == [
        str(root / "a" / "dup090.png")
    ]


# -- 4. several images in one tag command -----------------------------------------------------
def test_tag_add_with_several_images_is_unambiguous(shop):
    root, index = shop
    a, b = root / "p004.png", root / "p005.png"
    r = cli_run("tag", "add", a, b, "bestseller", "--index", index)
    assert r.exit_code == 2 and f"'{b}' looks like an image, not a tag" in r.stderr
    assert f"searchengine tag add bestseller {a} {b}" in r.stderr
    assert user_tags(index, a) == []  # nothing was tagged "p005.png"
    ok("tag", "add", "bestseller", a, b, "--index", index)  # TAG IMAGE..., as collection add
    assert user_tags(index, a) == user_tags(index, b) == ["bestseller"]
    ok("tag", "add", a, "hero shot", "spring", "--index", index)  # the older IMAGE TAG... form
    assert user_tags(index, a) == ["bestseller", "hero shot", "spring"]
    ok("tag", "add", "--tag", "sale", "--tag", "new", "p006.png", "p007.png", "--index", index)
    assert user_tags(index, root / "p007.png") == ["new", "sale"]
    ok("tag", "add", "piped", "-", "--index", index, stdin=f"{root / 'p008.png'}\np009.png\n")
    assert user_tags(index, root / "p008.png") == user_tags(index, root / "p009.png") == ["piped"]
    found = ok("search", "--index", index, "--where", "brand=northwind", "--paths").stdout
    assert found == f"{root / 'p002.png'}\n{root / 'p003.png'}\n"
    ok("tag", "add", "northwind", "-", "--index", index, stdin=found)  # search --paths | tag add TAG -
    assert user_tags(index, root / "p003.png") == ["northwind"]
    ok("collection", "add", "winter", "-", "--index", index, stdin=found)  # the same for collections
    winter = lambda: ok("search", "--index", index, "--collection", "winter", "--paths").stdout  # noqa: E731
    assert winter() == found
    ok("collection", "remove", "winter", "-", "--index", index, stdin=f"{root / 'p002.png'}\n")
    assert winter() == f"{root / 'p003.png'}\n"
    ok("tag", "remove", "bestseller", a, b, "--index", index)
    assert user_tags(index, b) == []
    r = cli_run("tag", "remove", a, b, "spring", "--index", index)
    assert r.exit_code == 2 and "searchengine tag remove spring" in r.stderr
    store = Store(index)
    an_id = str(store.images.by_path(str(root / "p011.png")).id)  # a tag "5" that is also an id
    store.close()
    r = cli_run("tag", "add", an_id, b, "--index", index)
    assert r.exit_code == 2 and f"searchengine tag add --tag {an_id} {b}" in r.stderr  # not the same command
    assert user_tags(index, a) == ["hero shot", "spring"]


# -- 5. bare file names in tag and show -------------------------------------------------------
def test_tag_and_show_take_what_import_takes(shop):
    root, index = shop
    assert f"path:     {root / 'p010.png'}" in ok("show", "p010.png", "--index", index).stdout
    ok("show", "a/dup090.png", "--index", index)  # relative to an indexed folder
    ok("tag", "add", "sale", "p010.png", "b/dup090.png", "--index", index)
    assert user_tags(index, root / "p010.png") == user_tags(index, root / "b" / "dup090.png") == ["sale"]
    r = cli_run("show", "dup090.png", "--index", index)
    assert r.exit_code == 1 and "2 indexed images are named 'dup090.png'" in r.stderr
    assert str(root / "a" / "dup090.png") in r.stderr and str(root / "b" / "dup090.png") in r.stderr
    r = cli_run("tag", "add", "sale", "dup090.png", "--index", index)
    assert r.exit_code == 1 and "give its path" in r.stderr
    r = cli_run("show", "nothing.png", "--index", index)
    assert r.exit_code == 1 and "not in the index: nothing.png" in r.stderr


def test_a_name_is_never_guessed_between_indexed_folders_nor_taken_from_another_path(
    shop, tmp_path, tiny_embedder
):
    root, index = shop
    other = tmp_path / "other"
    other.mkdir()
    make_image(seed=7).save(other / "p010.png")  # a second indexed folder with its own p010.png
    store = Store(index)
    Indexer(store, tiny_embedder).run(other)
    store.close()
    r = cli_run("tag", "add", "sale", "p010.png", "--index", index)  # relative to either root
    assert r.exit_code == 1 and "2 indexed images are named 'p010.png'" in r.stderr
    assert user_tags(index, root / "p010.png") == user_tags(index, other / "p010.png") == []
    ok("tag", "add", "sale", "shop/p010.png", "--index", index)  # the folder tells them apart
    assert user_tags(index, root / "p010.png") == ["sale"]
    # a path to a file the index does not hold is not the indexed image of the same name
    r = cli_run("show", tmp_path / "new" / "p011.png", "--index", index)
    assert r.exit_code == 1 and "not in the index" in r.stderr
    r = cli_run("show", "~nosuchuser/p011.png", "--index", index)
    assert r.exit_code == 1 and "not in the index" in r.stderr  # not a RuntimeError traceback


# -- 6. tune on a catalogue of bare names ---------------------------------------------------
def test_tune_resolves_bare_names_against_the_index(shop, tmp_path):
    _, index = shop
    pairs = tmp_path / "elsewhere" / "titles.csv"  # not beside the images
    pairs.write_text(
        "image,title\n" + "".join(f"p{i:03d}.png,product number {i}\n" for i in range(12)) + "ghost.png,x\n"
    )
    r = ok("tune", pairs, "--index", index, "--no-apply", "--epochs", "2", "-q")
    assert "pairs: 12 texts for 12 images" in r.stderr
    assert "skipped line 14: no file and no indexed image matches 'ghost.png'" in r.stderr


# -- 7. and 8. counts and paging ----------------------------------------------------------------
def test_counts_are_in_the_right_number(shop):
    _, index = shop
    r = ok("search", "--index", index, "--where", "sku=SKU-1")
    assert ", 1 match" in r.stderr and "1 matches" not in r.stderr
    assert ", 2 matches" in ok("search", "--index", index, "--where", "brand=acme").stderr


def test_offset_past_the_end_says_where_the_last_page_starts(shop):
    _, index = shop
    r = ok("search", "--index", index, "--where", "sku=SKU-1", "--offset", "10")
    assert "1 match" in r.stderr and "nothing at offset 10 (the last page starts at 0)" in r.stderr
    assert "no results" not in r.stderr
    r = ok("search", "--index", index, "--where", "price>0", "-k", "3", "--offset", "7")
    assert "4 matches" in r.stderr and "the last page starts at 3" in r.stderr
