"""Honest labels wherever text leaves the product: captions, tags, keywords, alt text, in every
export format and in ``show``; old indexes (hedged captions made before the lists) included."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from bench.gallery import place
from indexer.pipeline import Indexer
from searchengine import documents
from searchengine.cli import cli
from searchengine.export import SeoRecord, alt_text, descriptive_name, disambiguate, ocr_keywords
from searchengine.labels import (
    LABEL_FLOOR,
    NEVER_STATE,
    PROSE_WORDS,
    honest_caption,
    sentence,
    stated_labels,
)
from searchengine.records import Caption, CaptionParts, OcrLine, OcrResult
from searchengine.store.db import Store
from tests.conftest import REPO, SHARED, write_images

#: Every never-stated class name that means nothing innocent ("tank", "napkin"... are left out).
_LEAK = re.compile(
    r"\b("
    + "|".join(
        re.escape(w)
        for w in sorted(
            set(PROSE_WORDS) | {w for w in NEVER_STATE if " " in w or w in ("revolver", "rifle", "gasmask")},
            key=len,
            reverse=True,
        )
    )
    + r")s?\b",
    re.IGNORECASE,
)
_HEDGE = re.compile(r"\b(looks like|appears to be|seems to be|might be|may be|probably|possibly)\b", re.I)


def run(*args):
    r = CliRunner().invoke(cli, [str(a) for a in args])
    assert r.exit_code == 0, r.output + r.stderr
    return r


def exported_texts(index: Path, tmp: Path) -> dict[str, list[str]]:
    """Every text field of every export format (csv, jsonl, jsonld, xmp), by format."""
    out: dict[str, list[str]] = {}
    rows = list(csv.DictReader(io.StringIO(run("export", "--index", index, "--format", "csv").stdout)))
    out["csv"] = [r[k] for r in rows for k in ("alt_text", "title", "caption", "keywords")]
    lines = run("export", "--index", index, "--format", "jsonl").stdout.splitlines()
    out["jsonl"] = [v for r in map(json.loads, lines) for v in (r["alt_text"], r["caption"], *r["keywords"])]
    doc = json.loads(run("export", "--index", index, "--format", "jsonld").stdout)
    out["jsonld"] = [o[k] for o in doc["@graph"] for k in ("description", "caption", "keywords")]
    run("export", "--index", index, "--format", "xmp", "--out", tmp / "xmp", "--overwrite")
    out["xmp"] = [p.read_text() for p in (tmp / "xmp").rglob("*.xmp")]
    return out


def assert_honest(texts: dict[str, list[str]]) -> None:
    for fmt, values in texts.items():
        assert values, fmt
        for v in values:
            assert not _LEAK.search(v), (fmt, v)
            assert not _HEDGE.search(v), (fmt, v)


# -- the lists and the sentence ---------------------------------------------------------------
def test_only_precise_stateable_labels_are_stated():
    labels = [("nipple", 0.95), ("sandal", 0.9), ("clog", LABEL_FLOOR - 0.01), ("Loafer", None)]
    assert stated_labels(labels) == [("sandal", 0.9)]
    assert stated_labels([("bulletproof vest", 0.99), ("brassiere", 0.99), ("maillot", 0.99)]) == []


def test_kinds_are_stated_when_no_breed_is_precise():
    from searchengine.labels import top_labels

    breeds = [(285, "Egyptian cat", 0.36), (282, "tiger cat", 0.34), (281, "tabby", 0.18)]
    assert top_labels(breeds) == [("cat", pytest.approx(0.88))]
    assert top_labels([(281, "tabby", 0.8), (282, "tiger cat", 0.1)]) == [("tabby", 0.8)]
    assert top_labels([(680, "nipple", 0.9), (502, "clog", 0.05)]) == []
    assert top_labels([(134, "crane", 0.4), (517, "crane", 0.4)]) == [("crane", pytest.approx(0.8))]


def test_sentence_is_plain():
    assert sentence([("sandal", 0.9)], ["white"], "") == "A sandal; mostly white."
    assert sentence([], ["red"], "SALE") == 'The text "SALE"; mostly red.'
    assert sentence([("sandal", 0.9)], [], "KIDS") == 'A sandal with the text "KIDS".'
    assert sentence([], [], "") == "An image."


def test_old_captions_are_stated_as_today():
    v1 = CaptionParts((("nipple", 0.5), ("clog", 0.3)), ("white",), "")
    assert honest_caption(
        "Looks like a nipple or a clog; mostly white.", ("nipple", "clog", "white"), v1
    ) == (
        "An image; mostly white.",
        ("white",),
    )
    migrated = CaptionParts((("sandal", None),), ("black",), "KIDS")  # migration 0004: no probabilities
    assert honest_caption("x", ("sandal",), migrated) == ('The text "KIDS"; mostly black.', ("black", "text"))
    said, tags = honest_caption("a woman in a bikini on a beach", ("woman", "bikini", "beach"), None)
    assert said is None and tags == ("woman", "beach")  # prose: dropped when it names one


# -- alt text, keywords, disambiguation ----------------------------------------------------------
@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("photos/astronaut.jpg", "Astronaut"),
        ("chelsea_the_cat.jpg", "Chelsea the cat"),
        ("IMG_1234.JPG", ""),
        ("DSC0001.jpg", ""),
        ("PXL_20230101_123456789.jpg", ""),
        ("Screenshot 2024-01-01 at 10.00.00.png", ""),
        ("photo-1503023345310-bd7c1de61c7d.jpg", ""),
        ("d41d8cd98f00b204e9800998ecf8427e.png", ""),
        ("10008.jpg", ""),
        ("p001.png", ""),
        ("IMG_1234_beach.jpg", "Beach"),
    ],
)
def test_descriptive_file_names(path, expected):
    assert descriptive_name(path) == expected


def test_alt_text_order_without_a_catalogue():
    sure = CaptionParts((("golf ball", 0.9),), ("grey",), "")
    unsure = CaptionParts((("bobsled", 0.4),), ("white",), "")
    # a name a person chose wins over a label (coins.jpg is not "a golf ball")
    assert alt_text("A golf ball.", sure, "", {}, "/x/coins.jpg") == ("Coins, mostly grey", "file name")
    assert alt_text("x", sure, "", {}, "/x/IMG_0001.jpg") == ("A golf ball, mostly grey", "caption")
    assert alt_text("x", unsure, "", {}, "/x/IMG_0001.jpg") == ("IMG 0001, mostly white", "file name")
    title = alt_text("x", sure, "", {"title": "Trail Runner", "colour": "Red"}, "/x/IMG_0001.jpg")
    assert title == ("Trail Runner, red", "title")
    doc = documents.Document("Receipt", "ABC TRADING SDN BHD", "25/12/2018", "D1", "31.00")
    assert alt_text("x", sure, "ABC\nTOTAL 31.00", {}, "/x/r.jpg", (), doc)[0] == (
        "Receipt from ABC TRADING SDN BHD, 25/12/2018, total 31.00"
    )
    lines = (
        {"text": "SUMMER SALE", "confidence": 0.98, "box": []},
        {"text": "x#q", "confidence": 0.55, "box": []},
    )
    assert alt_text("x", sure, "SUMMER SALE\nx#q", {}, "/x/a.jpg", lines)[0] == (
        'Text reading "SUMMER SALE", mostly grey'
    )


def test_ocr_keywords_are_words_read_with_confidence():
    lines = [
        {"text": "n", "confidence": 0.99},
        {"text": "八", "confidence": 0.99},
        {"text": "八八", "confidence": 0.8},  # CJK needs 0.9
        {"text": "有机绿茶", "confidence": 0.95},
        {"text": "GARBLED NONSENSE", "confidence": 0.6},
        {"text": "SKU QX-7781-B 250 g", "confidence": 0.97},
        {"text": "ORGANIC tea of the day", "confidence": 0.97},
    ]
    assert ocr_keywords(lines, "") == ["有机绿茶", "SKU", "QX-7781-B", "ORGANIC", "tea", "day"]


def record(path: str, alt: str, hints=()) -> SeoRecord:
    return SeoRecord(path, "/r", alt, "", "", [], "", None, None, None, None, hints=list(hints))


def test_identical_alt_texts_are_told_apart():
    items = [
        record("/r/a/000.jpg", "Receipt from ABC", ["no. D1", "25/12/2018"]),
        record("/r/a/001.jpg", "Receipt from ABC", ["no. D2", "25/12/2018"]),
        record("/r/a/002.jpg", "Receipt from ABC", ["", "26/12/2018"]),
        record("/r/a/IMG_1.jpg", "A jersey, mostly white"),
        record("/r/b/IMG_1.jpg", "A jersey, mostly white"),
        record("/r/c/only.jpg", "Only one"),
    ]
    disambiguate(items)
    assert [r.alt_text for r in items] == [
        "Receipt from ABC, no. D1",
        "Receipt from ABC, no. D2",
        "Receipt from ABC, 26/12/2018",
        "A jersey, mostly white, a/IMG_1.jpg",
        "A jersey, mostly white, b/IMG_1.jpg",
        "Only one",
    ]
    assert len({r.alt_text for r in items}) == len(items)


# -- an index made before the lists: export and show state it as today ---------------------------
class OldOfflineCaptioner:
    """Writes what offline:labels-colours-ocr-v1 wrote: hedged, a 0.15 floor, no lists."""

    id = "offline:labels-colours-ocr-v1"

    def caption(self, images, texts=None):
        parts = CaptionParts((("nipple", 0.92), ("clog", 0.05)), ("white",), "")
        return [
            Caption("Looks like a nipple or a clog; mostly white.", ("nipple", "clog", "white"), parts)
        ] * len(images)


class NoisyOcr:
    id = "fake-ocr:1"

    def read(self, image, scale=1.0):
        box = ((0, 0), (9, 0), (9, 9), (0, 9))
        return OcrResult((OcrLine("n", 0.99, box), OcrLine("八", 0.99, box), OcrLine("KIDS", 0.6, box)))


def test_an_old_index_exports_and_shows_no_hedge_and_no_never_stated_label(tmp_path, tiny_embedder):
    root, index = tmp_path / "shop", tmp_path / "index"
    write_images(root, 3, prefix="sandal_")
    Indexer(Store(index), tiny_embedder, captioner=OldOfflineCaptioner(), ocr=NoisyOcr()).run(root)
    texts = exported_texts(index, tmp_path)
    assert_honest(texts)
    rows = [
        json.loads(line) for line in run("export", "--index", index, "--format", "jsonl").stdout.splitlines()
    ]
    assert {r["caption"] for r in rows} == {""}  # nothing left but colours: the alt text says it
    assert [r["alt_text"] for r in rows] == [f"Sandal, mostly white, sandal_00{i}.png" for i in range(3)]
    assert all(r["keywords"] == ["white"] for r in rows)  # no "n", no "八", no low-confidence "KIDS"
    shown = json.loads(run("show", root / "sandal_000.png", "--index", index, "--json").stdout)
    assert shown["caption"] == "An image; mostly white." and shown["tags"] == ["white"]


# -- real models: the sample gallery, and fashion products and receipts when present -------------
SAMPLE = REPO / "data" / "sample"


@pytest.fixture(scope="module")
def sample_export(tmp_path_factory):
    from searchengine.models.registry import create_captioner, create_embedder, create_ocr

    tmp = tmp_path_factory.mktemp("honest-sample")
    store = Store(tmp / "index")
    Indexer(
        store, create_embedder("offline"), ocr=create_ocr("rapidocr"), captioner=create_captioner("offline")
    ).run(SAMPLE)
    return tmp


@pytest.mark.slow
def test_sample_export_is_honest_and_every_alt_text_differs(sample_export):
    index = sample_export / "index"
    assert_honest(exported_texts(index, sample_export))
    rows = {
        Path(r["path"]).relative_to(SAMPLE).as_posix(): r
        for r in map(json.loads, run("export", "--index", index, "--format", "jsonl").stdout.splitlines())
    }
    assert rows["photos/astronaut.png"]["alt_text"].startswith("Astronaut")
    assert rows["photos/coins.png"]["alt_text"].startswith("Coins")
    receipt = rows["documents/receipt_corner_bakery.png"]["alt_text"]
    assert "CORNER BAKERY" in receipt and "25/12/2018" in receipt and "23.40" in receipt
    assert len({r["alt_text"] for r in rows.values()}) == len(rows)
    assert {r["provenance"]["caption"] for r in rows.values()} == {"offline:labels-colours-ocr-v2"}


FASHION, SROIE = SHARED / "fashion_products_3k", SHARED / "sroie_dev100"
#: Product types whose images ImageNet labelled "nipple", "brassiere", "maillot", "bulletproof vest"...
RISKY_TYPES = (
    "Sandals",
    "Flip Flops",
    "Perfume and Body Mist",
    "Sunscreen",
    "Shirts",
    "Handbags",
    "Bra",
    "Tshirts",
)


@pytest.fixture(scope="module")
def shared_export(tmp_path_factory):
    if not (FASHION.is_dir() and SROIE.is_dir()):
        pytest.skip("../shared/datasets/fashion_products_3k or sroie_dev100 not present")
    from searchengine.models.registry import create_captioner, create_embedder, create_ocr

    tmp = tmp_path_factory.mktemp("honest-shared")
    fashion = [json.loads(line) for line in (FASHION / "annotations.jsonl").open()]
    picked = [r for t in RISKY_TYPES for r in [x for x in fashion if x["attributes"]["articleType"] == t][:5]]
    receipts = [json.loads(line) for line in (SROIE / "annotations.jsonl").open()][:10]
    images = tmp / "images"
    images.mkdir()
    for folder, recs in ((FASHION, picked), (SROIE, receipts)):
        for r in recs:  # hard-linked in place where possible
            place(folder / r["file"], images / f"{folder.name}_{Path(r['file']).name}")
    Indexer(
        Store(tmp / "index"),
        create_embedder("offline"),
        ocr=create_ocr("rapidocr"),
        captioner=create_captioner("offline"),
    ).run(images)
    return tmp, receipts


@pytest.mark.slow
def test_fashion_and_receipt_export_is_honest(shared_export):
    tmp, receipts = shared_export
    assert_honest(exported_texts(tmp / "index", tmp))
    rows = {
        Path(r["path"]).name: r
        for r in map(
            json.loads, run("export", "--index", tmp / "index", "--format", "jsonl").stdout.splitlines()
        )
    }
    assert len({r["alt_text"] for r in rows.values()}) == len(rows)
    named = {"issuer": 0, "date": 0, "total": 0}
    for r in receipts:
        alt = rows[f"sroie_dev100_{Path(r['file']).name}"]["alt_text"]
        assert alt.startswith(("Receipt from", "Invoice from")) and '"' not in alt, alt  # never an OCR dump
        company = re.sub(r"[^A-Z0-9]", "", r["fields"]["company"].upper())
        named["issuer"] += company[:12] in re.sub(r"[^A-Z0-9]", "", alt.upper())
        named["date"] += r["fields"]["date"] in alt
        named["total"] += re.sub(r"[^\d.]", "", r["fields"]["total"]) in alt
    assert named["issuer"] >= 8 and named["date"] >= 8 and named["total"] >= 6, named
