"""The library in the real page (headless Chromium, as tests/web/test_browser.py): select results
and tag them, make a collection and browse it, forget a folder, each checked through the API
afterwards; with a key, a change asks for it first. Screenshots go to ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import json
import shutil
import urllib.request

import pytest

from tests.web.test_browser import (  # noqa: F401 (fixtures)
    SAMPLE,
    _serve,
    browser,
    open_page,
    playwright_api,
    pytestmark,
    sample_index,
    server,
    shot,
)

expect = playwright_api.expect


def api(live, path: str, key: str | None = None, body: dict | None = None):
    """GET (or, with ``body``, POST as JSON) an API path of a live server; the answer's JSON."""
    headers = {
        "X-Requested-With": "test",
        "Content-Type": "application/json",
        **({"X-API-Key": key} if key else {}),
    }
    data = json.dumps(body).encode() if body is not None else None
    with urllib.request.urlopen(urllib.request.Request(live.url + path, data, headers), timeout=30) as r:
        return json.loads(r.read())


def user_tags(live, image_id: int, key: str | None = None) -> list[str]:
    return api(live, f"/api/images/{image_id}", key)["user_tags"]


@pytest.fixture
def page(browser, server):  # noqa: F811
    context, page, errors = open_page(browser, server.url + "/")
    yield page
    context.close()
    assert errors == [], errors  # no script error, no failed request


@pytest.fixture
def own_index(sample_index, tmp_path):  # noqa: F811
    """A copy of the sample index, for a test that forgets part of it."""
    shutil.copytree(sample_index, tmp_path / "index")
    return tmp_path / "index"


def card_ids(page) -> list[int]:
    return [int(i) for i in page.locator("#results li.card").evaluate_all("ls => ls.map(l => l.dataset.id)")]


def test_select_three_results_and_tag_them(page, server):  # noqa: F811
    page.locator("#q").fill("image")
    expect(page.locator("#results li.card").nth(4)).to_be_visible()
    ids = card_ids(page)
    boxes = page.locator("#results .pick input")
    expect(page.locator("#sel-bar")).to_be_hidden()
    boxes.nth(0).click()
    boxes.nth(2).click(modifiers=["Shift"])  # the range from the last clicked
    expect(page.locator("#sel-count")).to_have_text("3 selected")
    assert [boxes.nth(i).is_checked() for i in range(4)] == [True, True, True, False]
    expect(page.locator("#results li.card.picked")).to_have_count(3)
    shot(page, "lib-01-selection")

    page.locator("#sel-tag").click()
    expect(page.locator("#sel-tag-dialog")).to_be_visible()
    expect(page.locator("#sel-tag-title")).to_have_text("Tag 3 images")
    page.locator("#sel-tag-input").fill("bestseller")
    shot(page, "lib-02-tag-dialog")
    page.keyboard.press("Enter")  # the first button: Add tag
    expect(page.locator("#sel-tag-dialog")).to_be_hidden()
    expect(page.locator("#lib-note")).to_have_text("Tagged 3 images “bestseller”.")
    assert [user_tags(server, i) for i in ids[:4]] == [["bestseller"]] * 3 + [[]]
    # the tag list offers it now, and the selection stays for a next action
    expect(page.locator("#tag-list option[value='bestseller']")).to_have_count(1)
    expect(page.locator("#sel-count")).to_have_text("3 selected")

    # select all on the page, then take the tag off two of them again: by keyboard
    page.locator("#sel-all").click()
    expect(page.locator("#sel-count")).to_have_text(f"{len(ids)} selected")
    page.locator("#sel-clear").click()
    expect(page.locator("#sel-bar")).to_be_hidden()
    boxes.nth(1).focus()
    page.keyboard.press("Space")
    boxes.nth(2).focus()
    page.keyboard.press("Space")
    expect(page.locator("#sel-count")).to_have_text("2 selected")
    page.locator("#sel-tag").click()
    page.locator("#sel-tag-input").fill("BESTSELLER")
    page.locator("#sel-tag-dialog button[value=remove]").click()
    expect(page.locator("#lib-note")).to_have_text("Removed “BESTSELLER” from 2 of 2 images.")
    assert [user_tags(server, i) for i in ids[:3]] == [["bestseller"], [], []]

    # a new search is a new selection
    page.locator("#q").fill("a cup of coffee")
    expect(page.locator("#results li .name").first).to_have_text("coffee.png")
    expect(page.locator("#sel-bar")).to_be_hidden()


def test_the_selection_survives_show_more(page):
    root = str(SAMPLE.resolve())
    page.locator("#folder").select_option(root)  # every image: 27, shown 24 at a time
    expect(page.locator("#results li.card")).to_have_count(24)
    page.locator("#results .pick input").nth(23).check()
    page.locator("#more").click()
    expect(page.locator("#results li.card")).to_have_count(27)
    expect(page.locator("#sel-count")).to_have_text("1 selected")
    expect(page.locator("#results .pick input").nth(23)).to_be_checked()
    page.locator("#results .pick input").nth(26).click(modifiers=["Shift"])  # a range across the pages
    expect(page.locator("#sel-count")).to_have_text("4 selected")
    expect(page.locator("#sel-all")).to_have_text("Select all on page (27)")


def test_make_a_collection_browse_it_take_one_out_and_delete_it(page, server):  # noqa: F811
    page.locator("#q").fill("image")
    expect(page.locator("#results li.card").nth(2)).to_be_visible()
    ids = card_ids(page)[:2]
    boxes = page.locator("#results .pick input")
    boxes.nth(0).check()
    boxes.nth(1).check()
    page.locator("#sel-collect").click()
    expect(page.locator("#sel-col-title")).to_have_text("Add 2 images to a collection")
    page.locator("#sel-col-input").fill("Summer picks")
    page.keyboard.press("Enter")
    expect(page.locator("#lib-note")).to_have_text("Added to “Summer picks”, which now holds 2 images.")
    assert api(server, "/api/collections")[0]["name"] == "Summer picks"

    page.locator("#col-open").click()
    row = page.locator("#col-list li", has_text="Summer picks")
    expect(row).to_contain_text("2 images")
    expect(row.locator(".col-thumbs img")).to_have_count(2)
    page.wait_for_function(
        "[...document.querySelectorAll('#col-list img')].every(i => i.complete && i.naturalWidth)"
    )
    shot(page, "lib-03-collections")
    row.get_by_role("button", name="Browse Summer picks").click()
    expect(page.locator("#col-dialog")).to_be_hidden()
    expect(page.locator("#collection")).to_have_value("Summer picks")
    expect(page.locator("#q")).to_have_value("")  # the whole collection, not the last query's part
    page.wait_for_function("document.querySelectorAll('#results li.card').length === 2")
    assert sorted(card_ids(page)) == sorted(ids)
    shot(page, "lib-04-browse-collection")

    # take one out while browsing it: it leaves the view, stays indexed
    first = card_ids(page)[0]
    page.locator("#results .pick input").first.check()
    expect(page.locator("#sel-uncollect")).to_have_text("Remove from “Summer picks”")
    page.locator("#sel-uncollect").click()
    page.wait_for_function("document.querySelectorAll('#results li.card').length === 1")
    assert first not in card_ids(page)
    assert api(server, f"/api/images/{first}")["collections"] == []

    page.locator("#col-open").click()
    row = page.locator("#col-list li", has_text="Summer picks")
    expect(row).to_contain_text("1 image")
    row.get_by_role("button", name="Delete Summer picks…").click()
    expect(row).to_contain_text("Its image stays indexed")
    expect(row.get_by_role("button", name="Keep it")).to_be_focused()
    shot(page, "lib-05-delete-collection")
    row.get_by_role("button", name="Delete collection").click()
    expect(page.locator("#col-list")).to_contain_text("No collections yet")
    assert api(server, "/api/collections") == []
    assert api(server, f"/api/images/{ids[1]}")["id"] == ids[1]  # still indexed
    page.keyboard.press("Escape")
    expect(page.locator("#collection")).to_have_value("")  # the filter went with it


def test_forget_a_folder_from_the_page(browser, own_index):  # noqa: F811
    with _serve(own_index) as live:
        before = api(live, "/api/stats")["images"]
        textures = str((SAMPLE / "textures").resolve())
        hits = api(live, "/api/search?q=brick+wall&limit=5")["results"]
        brick = next(h["id"] for h in hits if h["name"] == "brick.bmp")
        assert api(live, "/api/tags", body={"ids": [brick], "tags": ["wall"]})["changed"] == 1
        context, page, errors = open_page(browser, live.url + "/")
        page.locator("#folders-open").click()
        row = page.locator(f"#folders-list li[data-folder='{textures}']")
        expect(row).to_contain_text("3 images")
        shot(page, "lib-06-folders")
        row.get_by_role("button", name=f"Forget {textures}…").click()
        confirm = page.locator("#folders-confirm")
        expect(confirm).to_contain_text(f"Forget 3 images under {textures}?")
        expect(confirm).to_contain_text("Going with them: your tags on 1 image.")
        expect(confirm).to_contain_text("the next index run of")  # still on disk, inside data/sample
        expect(confirm).to_contain_text("The files themselves are not touched.")
        shot(page, "lib-07-forget-confirm")
        assert api(live, "/api/stats")["images"] == before  # only planned so far
        confirm.get_by_role("button", name="Forget 3 images").click()
        expect(page.locator("#folders-dialog")).to_be_hidden()
        expect(page.locator("#lib-note")).to_have_text(f"Forgot 3 images under {textures}.")
        assert api(live, "/api/stats")["images"] == before - 3
        expect(page.locator(f"#folder option[value='{textures}']")).to_have_count(0)
        page.locator("#q").fill("image")  # before: brick, grass and gravel among its 11 results
        expect(page.locator("#results li.card").first).to_be_visible()
        names = page.locator("#results li .name").all_inner_texts()
        assert names and not {"brick.bmp", "grass.webp", "gravel.tiff"} & set(names), names
        assert (SAMPLE / "textures" / "brick.bmp").is_file()  # files untouched
        context.close()
        assert errors == [], errors


def test_with_a_key_a_change_asks_for_it_then_succeeds(browser, own_index):  # noqa: F811
    with _serve(own_index, api_key="s3cret", public_reads=True) as live:
        context, page, errors = open_page(browser, live.url + "/?q=cat")
        expect(page.locator("#results li .name").first).to_have_text("chelsea_the_cat.jpg")
        expect(page.locator("#key-dialog")).to_be_hidden()  # reads are public here
        cat = card_ids(page)[0]
        page.locator("#results .pick input").first.check()
        page.locator("#sel-tag").click()
        page.locator("#sel-tag-input").fill("cats")
        page.keyboard.press("Enter")
        expect(page.locator("#key-dialog")).to_be_visible()  # the change was refused: the key
        page.locator("#key-input").fill("s3cret")
        page.keyboard.press("Enter")
        expect(page.locator("#lib-note")).to_have_text("Tagged 1 image “cats”.")
        assert user_tags(live, cat) == ["cats"]
        context.close()
        assert errors and all("401 (Unauthorized)" in e for e in errors), errors


def test_phone_selection_bar_and_folders(browser, server):  # noqa: F811
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.goto(server.url + "/?q=image")
    expect(page.locator("#results li.card").nth(3)).to_be_visible()
    nav = page.locator("#library-nav").bounding_box()
    assert nav["height"] < 48  # one compact row
    for i in range(3):
        page.locator("#results .pick input").nth(i).tap()
    expect(page.locator("#sel-count")).to_have_text("3 selected")
    bar = page.locator("#sel-bar").bounding_box()
    assert bar["x"] >= 0 and bar["x"] + bar["width"] <= 390 and bar["y"] + bar["height"] <= 844
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot(page, "lib-08-phone-selection")
    page.locator("#folders-open").tap()
    expect(page.locator("#folders-list li").first).to_be_visible()
    box = page.locator("#folders-dialog").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390
    shot(page, "lib-09-phone-folders")
    context.close()
