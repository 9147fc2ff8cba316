"""What a result card shows, over HTTP (issue #15): each hit's imported product facts (price,
currency, brand, SKU), a document's key fields read from its text (issuer, date, total), and
facet counts with a per-field limit (a searchable list of many brands needs them all)."""

from __future__ import annotations

import pytest

from indexer.pipeline import Indexer
from searchengine.metadata import import_catalogue
from searchengine.records import OcrLine, OcrResult
from searchengine.store.db import Store
from tests.conftest import make_image, write_images
from tests.web.conftest import TagCaptioner, make_client

RECEIPT = (
    "CORNER BAKERY SDN BHD",
    "12 Jalan Mawar",
    "Date: 25/12/2018 10:41",
    "Sourdough loaf",
    "2 x 3.50",
    "7.00",
    "Flat white 4.50",
    "TOTAL",
    "CASH 20.00",
    "CHANGE 8.50",
    "11.50",  # the right column of the TOTAL row, read last
)


class ReceiptOcr:
    """Reads a receipt off the tall 60x120 image, one label elsewhere. The total's amount is
    read last, as its own line: only its box puts it on the TOTAL row."""

    id = "receipt-ocr:1"

    def read(self, image, scale=1.0):
        if image.size != (60, 120):
            return OcrResult((OcrLine("SALE", 0.9, ((2, 3), (30, 3), (30, 12), (2, 12))),))
        lines = [
            OcrLine(text, 0.95, ((2, 10 * i), (38, 10 * i), (38, 10 * i + 8), (2, 10 * i + 8)))
            for i, text in enumerate(RECEIPT[:-1])
        ]
        y = 10 * RECEIPT.index("TOTAL")
        lines.append(OcrLine(RECEIPT[-1], 0.95, ((40, y), (58, y), (58, y + 8), (40, y + 8))))
        return OcrResult(tuple(lines))


@pytest.fixture(scope="module")
def shop(tmp_path_factory, tiny_embedder):
    """A client over 30 product images (30 brands, 3 categories, prices in EUR), one image with
    a title only, and one receipt."""
    base = tmp_path_factory.mktemp("cards")
    root, index = base / "photos", base / "index"
    write_images(root, 31)
    make_image((250, 250, 245), size=(60, 120)).save(root / "receipt.png")
    store = Store(index)
    Indexer(store, tiny_embedder, captioner=TagCaptioner(), ocr=ReceiptOcr()).run(root)
    rows = ["file,sku,title,brand,category,price,currency"]
    rows += [
        f"img{i:03d}.png,SK-{i:03d},Product number {i} with a long descriptive title,"
        f"Brand {i:02d},{['Pantry', 'Garden', 'Kitchen'][i % 3]},{10 + i}.50,EUR"
        for i in range(30)
    ]
    rows.append("img030.png,,Untitled sample,,,,")
    (base / "shop.csv").write_text("\n".join(rows) + "\n")
    import_catalogue(store, base / "shop.csv")
    store.close()
    client = make_client(index)
    yield client
    client.app.state.service.close()


def search(client, **params) -> dict:
    r = client.get("/api/search", params={"mode": "keyword", "limit": 50, **params})
    assert r.status_code == 200, r.text
    return r.json()


def by_name(body: dict) -> dict[str, dict]:
    return {h["name"]: h for h in body["results"]}


def test_cards_carry_the_imported_product_facts(shop):
    hits = by_name(search(shop, q="product"))
    assert hits["img007.png"]["title"] == "Product number 7 with a long descriptive title"
    assert hits["img007.png"]["product"] == {
        "price": "17.50",
        "currency": "EUR",
        "brand": "Brand 07",
        "sku": "SK-007",
    }
    assert hits["img007.png"]["document"] is None
    untitled = by_name(search(shop, q="untitled"))["img030.png"]
    assert untitled["title"] == "Untitled sample" and untitled["product"] is None  # empty cells: no facts
    # a listing by the filters alone (no query) carries the same facts
    listed = by_name(search(shop, where="sku=SK-012"))
    assert listed["img012.png"]["product"]["price"] == "22.50"


def test_a_receipt_card_carries_its_issuer_date_and_total(shop):
    body = search(shop, q="bakery")
    (receipt,) = [h for h in body["results"] if h["name"] == "receipt.png"]
    assert receipt["document"] == {
        "kind": "Receipt",
        "issuer": "CORNER BAKERY SDN BHD",
        "date": "25/12/2018",
        "number": None,
        "total": "11.50",  # on the TOTAL row by its box; not the cash tendered
        "currency": None,
    }
    assert receipt["product"] is None
    # an image with one line of text is no document
    assert all(h["document"] is None for h in search(shop, q="sale")["results"])


def test_facets_count_every_value_up_to_the_limit_asked(shop):
    body = search(shop, q="product", facet=["brand", "category"])
    assert len(body["facets"]["brand"]) == 20  # the default: the 20 most frequent values
    assert body["facets"]["category"] == [
        {"value": "Garden", "count": 10},
        {"value": "Kitchen", "count": 10},
        {"value": "Pantry", "count": 10},
    ]
    every = search(shop, q="product", facet=["brand"], facet_limit=200)["facets"]["brand"]
    assert len(every) == 30 and {"value": "Brand 29", "count": 1} in every
    # counted over the whole result set, not the page shown
    small = search(shop, q="product", facet=["brand"], facet_limit=200, limit=5)
    assert len(small["results"]) == 5 and len(small["facets"]["brand"]) == 30
    # ...and over the results only: a filter narrows the counts
    narrowed = search(shop, q="product", facet=["brand"], where="category=Garden", facet_limit=200)
    assert len(narrowed["facets"]["brand"]) == 10
    for bad in (0, 1001, "many"):
        r = shop.get("/api/search", params={"q": "product", "facet": "brand", "facet_limit": bad})
        assert r.status_code == 422 and "facet_limit" in r.text
