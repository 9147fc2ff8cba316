"""The results grid in headless Chromium (issue #15): cards with the full title, price and brand,
a receipt's issuer, date and total, equal heights; facets for every imported field (many values:
a searchable list with counts); on a phone the filters start closed and the first row of results
is on the first screen. Screenshots (desktop and phone, light and dark) are saved to
``test-artifacts/screenshots/grid-*.png``.

Runs on the sample gallery (offline models, as tests/web/test_browser.py) with a catalogue of
many brands and categories written here over its images.
"""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

import pytest

from tests.web.test_browser import (  # noqa: F401  (fixtures)
    CHROMIUM,
    SAMPLE,
    _serve,
    browser,
    playwright_api,
    sample_index,
    shot,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason=f"no Chromium at {CHROMIUM}"),
]

BRANDS = [
    f"{w} {s}"
    for w in ("North", "River", "Stone", "Maple", "Harbour")
    for s in ("Goods", "& Co", "Works", "Supply")
]
CATEGORIES = [
    "Wall art",
    "Posters",
    "Prints",
    "Pantry",
    "Footwear",
    "Personal care",
    "Signage",
    "Stationery",
    "Textiles",
    "Clocks",
    "Science",
    "Space",
    "Flooring",
    "Garden",
]
COLOURS = ["Red", "Blue", "Green", "Black"]
LONG_TITLE = "Astronaut portrait print on recycled paper"  # the page used to cut it at "Astronaut portrai"


@pytest.fixture(scope="module")
def shop_index(sample_index, tmp_path_factory):  # noqa: F811
    """The sample index with a catalogue of 25 products: 20 brands, 14 categories, 4 colours,
    3 years, prices in euros (the two documents are not products)."""
    from searchengine.metadata import import_catalogue
    from searchengine.store.db import Store

    index = tmp_path_factory.mktemp("grid") / "index"
    shutil.copytree(sample_index, index)
    own = {r["file"]: r for r in csv.DictReader((SAMPLE / "products.csv").open())}
    images = sorted(
        p.relative_to(SAMPLE).as_posix()
        for p in SAMPLE.rglob("*")
        if p.suffix.lower() in {".png", ".jpg", ".gif", ".bmp", ".webp", ".tiff"}
        and not p.relative_to(SAMPLE).as_posix().startswith("documents/")
    )
    path = index.parent / "shop.csv"
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(
            [
                "file",
                "sku",
                "title",
                "brand",
                "category",
                "colour",
                "price",
                "currency",
                "year",
                "description",
            ]
        )
        for i, name in enumerate(images):
            stem = name.rsplit("/", 1)[-1].split(".")[0].replace("_", " ").capitalize()
            title = own.get(name, {}).get("title") or f"{stem} print on recycled paper, 30 × 40"
            if name == "photos/astronaut.png":
                title = LONG_TITLE
            out.writerow(
                [
                    name,
                    f"GR-{i:04d}",
                    title,
                    BRANDS[i % len(BRANDS)],
                    CATEGORIES[i % len(CATEGORIES)],
                    COLOURS[i % len(COLOURS)],
                    f"{10 + i}.90",
                    "EUR",
                    2021 + i % 3,
                    "From the autumn catalogue",
                ]
            )
    store = Store(index)
    report = import_catalogue(store, path)
    store.close()
    assert report.matched == len(images) == 25
    return index


@pytest.fixture(scope="module")
def shop_server(shop_index):
    with _serve(shop_index) as live:
        yield live


def new_page(browser, server, *, phone=False, dark=False, url="/"):  # noqa: F811
    size = {"width": 390, "height": 844} if phone else {"width": 1280, "height": 860}
    context = browser.new_context(
        viewport=size, is_mobile=phone, has_touch=phone, color_scheme="dark" if dark else "light"
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(server.url + url)
    return context, page, errors


def images_loaded(page) -> None:
    page.wait_for_function(
        "[...document.querySelectorAll('#results img[loading=eager]')]"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )


def test_on_a_phone_the_first_row_of_results_is_on_the_first_screen(browser, shop_server):  # noqa: F811
    expect = playwright_api.expect
    for dark in (False, True):
        context, page, errors = new_page(
            browser, shop_server, phone=True, dark=dark, url="/?q=autumn+catalogue"
        )
        toggle = page.locator("#filters-toggle")
        expect(page.locator("#results li").first).to_be_visible()
        # the catalogue's facets are there, behind the closed Filters button
        expect(page.locator("#facets .facet-many").first).to_be_attached()
        expect(toggle).to_have_attribute("aria-expanded", "false")
        expect(page.locator("#facets")).to_be_hidden()
        expect(page.locator("#filter-controls")).to_be_hidden()
        images_loaded(page)
        first, second = (page.locator("#results li").nth(i).bounding_box() for i in (0, 1))
        assert 0 < first["y"] and first["y"] + first["height"] <= 844, first  # the whole first row
        assert second["y"] == first["y"] and second["x"] > first["x"]  # two cards side by side
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        nav = page.locator("#library-nav")  # the library's buttons: one row, counted above
        assert nav.count() == 0 or nav.bounding_box()["height"] <= 48
        shot(page, f"grid-phone{'-dark' if dark else ''}")
        toggle.click()
        expect(toggle).to_have_attribute("aria-expanded", "true")
        expect(page.locator("#facets .facet-many").first).to_be_visible()
        expect(page.locator("#folder")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        shot(page, f"grid-phone-filters{'-dark' if dark else ''}")
        toggle.click()
        expect(page.locator("#facets")).to_be_hidden()
        context.close()
        assert errors == [], errors


def test_brand_and_category_are_searchable_lists_with_counts(browser, shop_server):  # noqa: F811
    expect = playwright_api.expect
    context, page, errors = new_page(browser, shop_server, url="/?q=autumn+catalogue")
    expect(page.locator("#filters-toggle")).to_have_attribute("aria-expanded", "true")  # open on a desktop
    brand, category = page.get_by_role("group", name="brand"), page.get_by_role("group", name="category")
    expect(brand.locator(".facet-value")).to_have_count(20)
    expect(category.locator(".facet-value")).to_have_count(14)
    expect(page.get_by_role("group", name="colour").locator(".chip-button")).to_have_count(4)  # few: chips
    expect(page.get_by_role("group", name="year").locator(".chip-button")).to_have_count(3)  # a number too
    expect(brand.locator(".facet-value").first).to_have_text(re.compile(r"^.+\d+$"))  # value and count
    box = page.locator("#facet-brand-filter")
    expect(box).to_have_accessible_name("brand")
    box.fill("river")
    expect(brand.locator(".facet-value:visible")).to_have_count(4)
    shown = sorted(brand.locator(".facet-value:visible .value").all_inner_texts())
    assert shown == ["River & Co", "River Goods", "River Supply", "River Works"]
    box.fill("nothing like it")
    expect(brand.locator(".facet-none")).to_have_text("No brand matches “nothing like it”")
    box.fill("river goods")
    shot(page, "grid-facets")
    count = int(brand.locator(".facet-value:visible .count").inner_text())
    box.press("Enter")  # the first value shown
    expect(page.locator("#active-filters button")).to_have_text("brand: River Goods ×")
    expect(page.locator("#filters-count")).to_have_text("1")
    expect(page.locator("#results li")).to_have_count(count)
    context.close()
    assert errors == [], errors


def test_cards_show_the_full_title_price_and_brand_at_equal_heights(browser, shop_server):  # noqa: F811
    expect = playwright_api.expect
    for dark in (False, True):
        context, page, errors = new_page(browser, shop_server, dark=dark, url="/?q=autumn+catalogue")
        expect(page.locator("#results li")).to_have_count(24)
        images_loaded(page)
        astronaut = page.locator("#results li", has_text=LONG_TITLE)
        title = astronaut.locator(".name")
        expect(title).to_have_text(LONG_TITLE)
        lines = title.evaluate(
            "n => [n.scrollHeight, n.clientHeight, parseFloat(getComputedStyle(n).lineHeight)]"
        )
        assert lines[0] <= lines[1] + 1 and lines[1] >= 1.9 * lines[2], lines  # two lines, nothing cut
        facts = astronaut.locator(".facts")
        expect(facts.locator(".price")).to_have_text(re.compile(r"^€\d+\.90$"))
        expect(facts.locator(".brand")).to_have_text(re.compile(r"^(North|River|Stone|Maple|Harbour) "))
        expect(facts.locator(".sku")).to_have_text(re.compile(r"^SKU GR-\d{4}$"))
        cards = page.locator("#results li.card").evaluate_all(
            "cs => cs.map(c => [c.getBoundingClientRect().top, c.getBoundingClientRect().height, "
            "c.querySelector('.similar').getBoundingClientRect().top - c.getBoundingClientRect().top])"
        )
        assert len({round(h) for _, h, _ in cards}) == 1, cards  # every card the same height...
        assert len({round(b) for _, _, b in cards}) == 1, cards  # ...its button at the same place
        assert len({round(t) for t, _, _ in cards}) >= 2  # over more than one row
        shot(page, f"grid-cards{'-dark' if dark else ''}")
        context.close()
        assert errors == [], errors


def test_a_receipt_card_shows_its_issuer_date_and_total(browser, shop_server):  # noqa: F811
    expect = playwright_api.expect
    context, page, errors = new_page(browser, shop_server, url="/?q=bakery+receipt")
    receipt = page.locator("#results li", has_text="receipt_corner_bakery.png")
    expect(receipt).to_be_visible()
    # the sample's bill reads "INVOICE No: INV-2018-0457": an invoice; what and how much first,
    # then when and who
    facts = receipt.locator(".facts.doc")
    expect(facts).to_be_visible()
    assert facts.inner_text() == "Invoice · total RM 23.40\n25/12/2018 · CORNER BAKERY SDN BHD"
    expect(facts).to_have_attribute(
        "title", "Invoice · no. INV-2018-0457 · 25/12/2018 · total RM 23.40 · CORNER BAKERY SDN BHD"
    )
    total = facts.locator(".total").bounding_box()
    shown = facts.bounding_box()
    assert total["y"] + total["height"] <= shown["y"] + shown["height"] + 1  # not cut off
    images_loaded(page)
    shot(page, "grid-receipt")
    receipt.locator(".thumb").click()  # the detail panel lists the same fields
    expect(page.locator("#detail-product-section h3")).to_have_text("Invoice")
    expect(page.locator("#detail-product")).to_contain_text("numberINV-2018-0457")
    shot(page, "grid-receipt-detail")
    context.close()
    assert errors == [], errors
