"""The page's review actions in headless Chromium: import a catalogue after its preview,
download an export (with the server's key), and mark a near-duplicate group as not duplicates.
Screenshots go to ``test-artifacts/screenshots/`` (``review-*``).

Runs on a small gallery (a photo and its re-encoded copy among distinct images) indexed with the
tiny test encoder: these tests are about the library actions, not search quality.
"""

from __future__ import annotations

import csv
import io
import json
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.conftest import make_image, write_images
from tests.web.conftest import LiveServer
from tests.web.test_browser import ARGS, CHROMIUM, open_page, playwright_api, shot

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).is_file(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    ),
]
expect = playwright_api.expect
KEY = "s3cret"


@pytest.fixture(scope="module")
def review_index(tmp_path_factory, tiny_embedder):
    """``(root, index)``: five distinct images, a photo and its copy, a catalogue beside them."""
    from indexer.pipeline import Indexer
    from searchengine.store.db import Store

    base = tmp_path_factory.mktemp("review")
    root, index = base / "photos", base / "index"
    write_images(root, 5)
    photo = make_image(seed=7, size=(200, 160))
    photo.save(root / "mug.png")
    photo.resize((120, 96)).save(root / "mug-copy.jpg", quality=70)
    Indexer(Store(index), tiny_embedder).run(root)
    (base / "catalogue.csv").write_text(
        "file,title,price,brand\n"
        "mug.png,Red Enamel Camping Mug,12.50,Trailware\n"
        "img001.png,Blue Linen Tote Bag,24,Weaver & Co\n"
        "nosuch.jpg,A product without a photo,5,Nobody\n",
        encoding="utf-8",
    )
    return root, index


def _serve(index, **settings):
    from searchengine.config import Settings
    from web.app import create_app

    app = create_app(Settings(index_path=index, captioner="none", ocr="none", **settings))
    return LiveServer(app)


@pytest.fixture(scope="module")
def server(review_index):
    with _serve(review_index[1], api_key=KEY, public_reads=True) as live:  # changes need the key
        yield live


@pytest.fixture(scope="module")
def keyed_server(review_index):
    with _serve(review_index[1], api_key=KEY) as live:  # reads need it too
        yield live


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def sign_in(page) -> None:
    expect(page.locator("#key-dialog")).to_be_visible()
    page.locator("#key-input").fill(KEY)
    page.keyboard.press("Enter")
    expect(page.locator("#key-dialog")).to_be_hidden()


def refused_before_sign_in(errors: list[str]) -> list[str]:
    return [e for e in errors if "401 (Unauthorized)" not in e]


def test_upload_a_catalogue_preview_then_apply(browser, server, review_index):
    root, _ = review_index
    context, page, errors = open_page(browser, server.url + "/")
    page.evaluate(  # what the page is told of changes
        "window.changes = [];document.addEventListener('library-changed', (e) => changes.push(e.detail.what))"
    )
    page.locator("#cat-open").click()
    expect(page.locator("#cat-dialog")).to_be_visible()
    page.locator("#cat-file").set_input_files(str(root.parent / "catalogue.csv"))
    page.get_by_role("button", name="Preview").click()
    sign_in(page)  # the first change asks for the key (a dry run is an import too)
    preview = page.locator("#cat-preview")
    expect(preview).to_contain_text("2 rows of 3 match indexed images; 1 row would be left out.")
    fields = preview.locator(".cat-fields li span:first-child")
    expect(fields).to_have_text(["title", "price", "brand"])  # each with how many images get it
    expect(preview.locator(".cat-problems")).to_contain_text("line 4: no indexed image matches “nosuch.jpg”")
    shot(page, "review-01-catalogue-preview")
    lookup = lambda: page.request.get(  # noqa: E731
        f"{server.url}/api/images/lookup", params={"path": str(root / "mug.png")}
    ).json()
    assert lookup()["metadata"] == {}  # a preview changes nothing

    page.locator("#cat-apply").click()
    expect(preview).to_contain_text("Imported 2 images: 6 values from catalogue.csv.")
    assert lookup()["metadata"]["title"] == "Red Enamel Camping Mug"
    assert page.evaluate("window.changes") == ["metadata"]  # the page's filters are told
    shot(page, "review-02-catalogue-applied")
    page.get_by_role("button", name="Done").click()
    expect(page.locator("#cat-dialog")).to_be_hidden()

    page.locator("#cat-open").click()  # a wrong image column: the server's one-line reason
    page.locator("#cat-file").set_input_files(str(root.parent / "catalogue.csv"))
    page.locator("#cat-column").fill("picture")
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#cat-error")).to_have_text(
        "catalogue.csv: no column 'picture'; columns: file, title, price, brand"
    )
    assert "/tmp" not in page.locator("#cat-error").inner_text()

    page.set_viewport_size({"width": 390, "height": 844})  # the preview on a phone
    page.locator("#cat-column").fill("")
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#cat-preview")).to_contain_text("2 rows of 3 match")
    for part in ("#cat-dialog", "#cat-dialog .lib-head .review-close", "#cat-apply"):  # nothing cut off
        box = page.locator(part).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390, part
    shot(page, "review-07-catalogue-phone")
    context.close()
    assert [e for e in refused_before_sign_in(errors) if "400 (Bad Request)" not in e] == [], errors


def test_download_a_csv_export_with_the_key(browser, keyed_server, review_index, tmp_path):
    root, _ = review_index
    context, page, errors = open_page(browser, keyed_server.url + "/")
    sign_in(page)  # this server wants its key for reads too: the download goes with the session
    page.locator("#export-open").click()
    expect(page.locator("#export-dialog")).to_be_visible()
    expect(page.locator("#export-base")).to_be_hidden()  # only JSON-LD uses a base URL
    shot(page, "review-03-export")
    with page.expect_download() as info:
        page.locator("#export-go").click()
    download = info.value
    assert download.suggested_filename == "images.csv"
    rows = list(csv.DictReader(io.StringIO(Path(download.path()).read_text(encoding="utf-8"))))
    assert len(rows) == 7 and {Path(r["path"]).name for r in rows} >= {"mug.png", "mug-copy.jpg"}
    expect(page.locator("#export-dialog")).to_be_hidden()

    page.locator("#export-open").click()
    page.get_by_label("XMP sidecars").check()
    with page.expect_download() as info:
        page.locator("#export-go").click()
    assert info.value.suggested_filename == "images-xmp.zip"
    names = zipfile.ZipFile(info.value.path()).namelist()
    assert len(names) == 7 and "photos/mug.xmp" in names

    page.set_viewport_size({"width": 390, "height": 844})  # the form on a phone
    page.locator("#export-open").click()
    page.get_by_role("radio", name="JSON-LD").check()
    expect(page.locator("#export-base")).to_be_visible()
    box = page.locator("#export-go").bounding_box()
    assert box["x"] >= 0 and box["y"] + box["height"] <= 844
    shot(page, "review-08-export-phone")
    context.close()
    assert refused_before_sign_in(errors) == [], errors


def test_mark_a_duplicate_group_as_not_duplicates(browser, server):
    context, page, errors = open_page(browser, server.url + "/")
    loaded = "[...document.querySelectorAll('.dups-item img')].every(i => i.complete && i.naturalWidth > 0)"
    group = page.locator(".dups-group")
    page.set_viewport_size({"width": 390, "height": 844})  # the view on a phone first
    page.locator("#dups-open").click()
    expect(group).to_have_count(1)
    page.wait_for_function(loaded)
    box = group.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390  # the group fits the phone's width
    shot(page, "review-06-duplicates-phone")
    page.locator("#dups-dialog .review-close").click()

    page.set_viewport_size({"width": 1280, "height": 860})
    page.locator("#dups-open").click()
    expect(page.locator("#dups-dialog")).to_be_visible()
    expect(group.locator(".dups-item")).to_have_count(2)  # side by side, with size and dimensions
    expect(group.locator(".dups-item")).to_contain_text(["mug-copy.jpg1 KB · 120×96 · JPEG", "200×160 · PNG"])
    page.wait_for_function(loaded)
    shot(page, "review-04-duplicates")

    page.get_by_role("button", name="Group 1: not duplicates").click()
    sign_in(page)  # a change: the key, once
    expect(group).to_have_count(0)
    expect(page.locator(".dups-done")).to_contain_text("Marked group 1 as not duplicates.")
    expect(page.locator("#dups-summary")).to_contain_text("No near duplicates")
    shot(page, "review-05-not-duplicates")
    page.get_by_role("button", name="Undo").click()  # changed their mind: the group is back
    expect(group).to_have_count(1)
    page.get_by_role("button", name="Group 1: not duplicates").click()
    expect(group).to_have_count(0)
    assert page.request.get(f"{server.url}/api/duplicates").json() == []

    page.reload()  # remembered by the server
    page.locator("#dups-open").click()
    expect(page.locator("#dups-summary")).to_contain_text("No near duplicates")
    expect(group).to_have_count(0)
    context.close()
    assert refused_before_sign_in(errors) == [], errors
    unmark(server, _ids(server))  # as it was, for the next test


def call(live, path: str, body: dict | None = None, method: str = "GET") -> bytes:
    """An API request to a live server, as the page sends it, with the key; the answer's body."""
    headers = {"X-API-Key": KEY, "X-Requested-With": "searchengine-page", "Content-Type": "application/json"}
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(live.url + path, data, headers, method=method)
    with urllib.request.urlopen(request, timeout=30) as r:
        return r.read()


def _ids(live) -> list[int]:
    """The ids of the photo and its copy."""
    lines = call(live, "/api/export?format=jsonl").decode().splitlines()
    paths = [p for p in (json.loads(line)["path"] for line in lines) if Path(p).name.startswith("mug")]
    return [
        json.loads(call(live, "/api/images/lookup?" + urllib.parse.urlencode({"path": p})))["id"]
        for p in paths
    ]


def unmark(live, ids: list[int]) -> None:
    """Take the "not duplicates" mark off ``ids`` again (nothing if there is none)."""
    try:
        call(live, "/api/duplicates/dismiss", {"ids": ids}, "DELETE")
    except urllib.error.HTTPError as exc:
        assert exc.code == 404  # not marked
