"""The real page in headless Chromium (Debian's, driven by Playwright): search, details,
find similar, image upload, phone width and keyboard use. Screenshots are saved to
``test-artifacts/screenshots/``.

Runs on the sample gallery with the bundled offline models (real search quality).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.web.conftest import LiveServer

CHROMIUM = os.environ.get("SE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = REPO / "test-artifacts" / "screenshots"
SAMPLE = REPO / "data" / "sample"
# as root, in a closed network: no sandbox, no background connections
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not Path(CHROMIUM).is_file(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    ),
]


@pytest.fixture(scope="module")
def sample_index(tmp_path_factory):
    """The sample gallery indexed with the bundled offline models, and its catalogue imported."""
    from indexer.pipeline import Indexer
    from searchengine.metadata import import_catalogue
    from searchengine.models.registry import create_captioner, create_embedder, create_ocr
    from searchengine.store.db import Store

    index = tmp_path_factory.mktemp("browser") / "index"
    store = Store(index)
    Indexer(
        store,
        create_embedder("offline"),
        captioner=create_captioner("offline"),
        ocr=create_ocr("rapidocr"),
    ).run(SAMPLE)
    import_catalogue(store, SAMPLE / "products.csv")
    store.close()
    return index


def _serve(index, **settings):
    from searchengine.config import Settings
    from web.app import create_app

    app = create_app(Settings(index_path=index, captioner="none", ocr="none", **settings))
    app.state.service.warm_up()
    return LiveServer(app)


@pytest.fixture(scope="module")
def server(sample_index):
    with _serve(sample_index) as live:
        yield live


@pytest.fixture(scope="module")
def keyed_server(sample_index):
    """The same index served with an API key: the page must ask for it."""
    with _serve(sample_index, api_key="s3cret") as live:
        yield live


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def open_page(browser, url: str):
    """A new browser context on ``url``: (context, page, the script errors and failed requests seen)."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(url)
    return context, page, errors


@pytest.fixture
def page(browser, server):
    context, page, errors = open_page(browser, server.url + "/")
    page.console_errors = errors  # a test expecting a refused request removes it
    yield page
    context.close()
    assert errors == [], errors  # no script error, no failed request


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=False)


def card_names(page) -> list[str]:
    return page.locator("#results li .name").all_inner_texts()


def test_search_detail_similar_and_upload(page):
    expect = playwright_api.expect
    expect(page.locator("#empty-title")).to_have_text("Search 27 images")
    shot(page, "01-start")

    page.locator("#q").press_sequentially("a cup of coffee", delay=20)  # results as you type
    expect(page.locator("#results li").first).to_be_visible()
    expect(page.locator("#results li .name").first).to_have_text("coffee.png")
    # each card: its relevance (0 to 1) and why it matched in words, no leg ranks
    expect(page.locator("#results li .reason").first).to_have_text(re.compile(r"^[01]\.\d\d · \w"))
    assert not any("#" in t for t in page.locator("#results li .reason").all_inner_texts())
    expect(page.locator("#status")).to_contain_text("for “a cup of coffee”")
    page.wait_for_function(
        "[...document.querySelectorAll('#results img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    shot(page, "02-results")

    page.locator("#results li .thumb").first.click()
    panel = page.locator("#detail")
    expect(panel).to_be_visible()
    expect(page.locator("#detail-title")).to_have_text("coffee.png")
    expect(page.locator("#detail-caption")).to_contain_text("espresso")
    expect(page.locator("#detail-why li").first).to_contain_text("coffee")  # a word or what it looks like
    expect(page.locator("#detail-why .relevance-line")).to_have_text(re.compile(r"^Relevance [01]\.\d\d"))
    expect(page.locator("#detail-why .details")).to_contain_text("semantic #")  # raw figures: secondary
    expect(page.locator("#detail-facts")).to_contain_text("600 × 400")
    shot(page, "03-detail")

    page.locator("#detail-similar").click()
    expect(panel).to_be_hidden()
    expect(page.locator("#query-chip-text")).to_have_text("Similar to coffee.png")
    expect(page.locator("#status")).to_contain_text("images like coffee.png")
    expect(page.locator("#results li").first).to_be_visible()
    names = card_names(page)
    assert names and "coffee.png" not in names  # its neighbours, the image itself left out
    shot(page, "04-similar")

    # nothing in the sample has the astronaut among its nearest images: the page says so in words
    page.locator("#clear-chip").click()
    page.locator("#q").fill("astronaut")
    expect(page.locator("#results li .name").first).to_have_text("astronaut.png")
    page.locator("#results li .thumb").first.click()
    page.locator("#detail-similar").click()
    expect(page.locator("#empty-title")).to_have_text("Nothing here looks like astronaut.png.")
    expect(page.locator("#empty-hint")).to_contain_text("nearest images")
    shot(page, "04-nothing-similar")

    page.locator("#clear-chip").click()
    expect(page.locator("#query-chip")).to_be_hidden()
    page.locator("#image-file").set_input_files(str(SAMPLE / "photos" / "chelsea_the_cat.jpg"))
    expect(page.locator("#query-chip-text")).to_have_text("Similar to chelsea_the_cat.jpg")
    expect(page.locator("#results li .name").first).to_have_text("chelsea_the_cat.jpg")
    shot(page, "05-upload")


def test_text_in_images_and_filters(page):
    expect = playwright_api.expect
    page.locator("#q").fill("QX-7781-B")
    expect(page.locator("#results li .name").first).to_have_text(
        "Organic Green Tea Sencha 250 g"
    )  # SKU on its label
    page.locator("#results li .thumb").first.click()
    expect(page.locator("#detail-ocr")).to_contain_text("QX-7781-B")
    expect(page.locator("#detail-boxes polygon").first).to_be_attached()
    shot(page, "06-ocr-detail")
    page.keyboard.press("Escape")
    expect(page.locator("#detail")).to_be_hidden()
    expect(page.locator("#results li .thumb").first).to_be_focused()  # focus returns to the card

    page.locator("#q").fill("a horse")
    expect(page.locator("#results li .name").first).to_have_text("horse_silhouette.gif")
    page.locator("#type").select_option("PNG")
    page.wait_for_function(
        "[...document.querySelectorAll('#results .name')].every(n => n.textContent.endsWith('.png'))"
    )
    assert "horse_silhouette.gif" not in card_names(page)
    page.locator("#type").select_option("GIF")
    expect(page.locator("#results li .name")).to_have_text(["horse_silhouette.gif"])


def test_catalogue_facets_ranges_and_titles(page):
    expect = playwright_api.expect
    page.locator("#q").fill("pantry")
    expect(page.locator("#facets .facet").first).to_be_visible()
    expect(page.locator("#results li .name").first).to_have_text(re.compile("Coffee|Tea|Oil|Honey"))
    page.locator("#facets button", has_text="Meadow & Co").click()
    expect(page.locator("#active-filters button")).to_have_text("brand: Meadow & Co ×")
    page.wait_for_function(
        "[...document.querySelectorAll('#results .name')].length === 2"  # oil and honey: pantry + Meadow
    )
    assert sorted(card_names(page)) == ["Extra Virgin Olive Oil 750 ml", "Raw Wildflower Honey 350 g"]
    shot(page, "12-facets")
    page.locator("#ranges input[data-op='<=']").fill("10")
    page.locator("#ranges input[data-op='<=']").press("Enter")
    expect(page.locator("#results li .name")).to_have_text(["Raw Wildflower Honey 350 g"])
    page.locator("#results li .thumb").first.click()
    expect(page.locator("#detail-product")).to_contain_text("WH-0350-H")
    shot(page, "13-product-detail")
    page.keyboard.press("Escape")
    page.locator("#active-filters button").click()
    expect(page.locator("#active-filters button")).to_have_count(0)


def test_empty_and_error_states(page, server):
    expect = playwright_api.expect
    page.locator("#q").fill("compiler optimisation of tail recursive functions")
    expect(page.locator("#empty-title")).to_contain_text("No images match")
    expect(page.locator("#results li")).to_have_count(0)
    shot(page, "07-no-results")
    page.locator("#q").fill("x" * 1200)  # over the API's limit: the page shows the reason
    expect(page.locator("#error")).to_contain_text("Search failed")
    expect(page.locator("#error")).to_contain_text("at most 1000 characters")
    shot(page, "08-error")
    assert page.console_errors == [
        "Failed to load resource: the server responded with a status of 422 (Unprocessable Entity)"
    ]
    page.console_errors.clear()


def test_phone_width_and_keyboard(browser, server):
    expect = playwright_api.expect
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.goto(server.url + "/?q=cat")
    expect(page.locator("#q")).to_have_value("cat")
    expect(page.locator("#results li .name").first).to_have_text("chelsea_the_cat.jpg")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390  # nothing wider than the phone
    shot(page, "09-phone")
    page.locator("#results li .thumb").first.click()
    expect(page.locator("#detail")).to_be_visible()
    box = page.locator("#detail").bounding_box()
    assert box["width"] == pytest.approx(390, abs=1)  # the panel takes the whole screen
    shot(page, "10-phone-detail")
    page.keyboard.press("Escape")
    # keyboard only: "/" focuses the search box, Tab reaches the first result, Enter opens it
    page.locator("body").click(position={"x": 5, "y": 300})
    page.keyboard.press("/")
    expect(page.locator("#q")).to_be_focused()
    page.keyboard.press("End")  # "/" selects the query: add to it rather than replace it
    # wait for the search this typing starts, so Tab never walks a list being replaced
    with page.expect_response(lambda r: "/api/search" in r.url and "photo" in r.url):
        page.keyboard.type(" photo")
    expect(page.locator("#q")).to_have_value("cat photo")
    expect(page.locator("#results li").first).to_be_visible()
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.classList.contains('thumb')"):
            break
    page.keyboard.press("Enter")
    expect(page.locator("#detail")).to_be_visible()
    expect(page.locator("#detail-close")).to_be_focused()
    context.close()


def test_api_docs_render_offline(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.goto(server.url + "/docs")
    playwright_api.expect(page.locator(".opblock-summary-path").first).to_be_visible()
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert "/api/search" in paths and "/api/index" in paths
    shot(page, "11-api-docs")
    context.close()


def test_with_a_key_the_page_asks_for_it_once_then_works(browser, keyed_server):
    expect = playwright_api.expect
    context, page, errors = open_page(browser, keyed_server.url + "/?q=cat")
    dialog = page.locator("#key-dialog")
    expect(dialog).to_be_visible()  # one prompt for the several reads refused at start
    expect(page.locator("#key-input")).to_be_focused()
    page.locator("#key-input").fill("wrong")
    page.keyboard.press("Enter")
    expect(page.locator("#key-error")).to_have_text("wrong API key")
    shot(page, "14-key-prompt")
    page.locator("#key-input").fill("s3cret")
    page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    expect(page.locator("#results li .name").first).to_have_text("chelsea_the_cat.jpg")
    page.wait_for_function(  # <img> sends no header: the session cookie lets thumbnails load
        "[...document.querySelectorAll('#results img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    page.locator("#image-file").set_input_files(str(SAMPLE / "photos" / "chelsea_the_cat.jpg"))
    expect(page.locator("#query-chip-text")).to_have_text("Similar to chelsea_the_cat.jpg")
    expect(page.locator("#results li .name").first).to_have_text("chelsea_the_cat.jpg")
    (cookie,) = context.cookies()
    assert (cookie["name"], cookie["httpOnly"], cookie["sameSite"]) == ("se_session", True, "Strict")
    assert "s3cret" not in cookie["value"] and page.evaluate("document.cookie") == ""
    page.reload()  # signed in: no prompt again
    expect(page.locator("#results li .name").first).to_have_text("chelsea_the_cat.jpg")
    expect(dialog).to_be_hidden()
    context.close()
    # only the refused reads before signing in, and the wrong key, show as errors
    assert errors and all("401 (Unauthorized)" in e for e in errors), errors
