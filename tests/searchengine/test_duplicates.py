"""The near-duplicate rule on synthetic images: copies are kept, look-alikes are not."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from PIL import Image, ImageDraw, ImageFilter

from indexer.pipeline import Indexer
from searchengine.cli import cli
from searchengine.duplicates import (
    DEFAULT_RULE,
    PHASH_STAGE,
    PHASH_TOOL,
    DuplicateRule,
    content_box,
    find_groups,
    is_current,
    numbers,
    perceptual_hash,
)
from searchengine.store.db import Store
from tests.conftest import make_image

RECEIPT = ["SHOP SDN BHD", "NO 12, JALAN SAGU 18", "INVOICE NO: {inv}", "DATE: {date}", "TOTAL RM {total}"]


def receipt(inv: str, date: str, total: str) -> tuple[Image.Image, str]:
    """A receipt-like image (black lines on white) and the text on it."""
    lines = [line.format(inv=inv, date=date, total=total) for line in RECEIPT]
    im = Image.new("RGB", (240, 160), "white")
    draw = ImageDraw.Draw(im)
    for n, line in enumerate(lines):
        draw.text((20, 15 + 25 * n), line, fill="black")
    return im, "\n".join(lines)


def shoe(colour, size=(240, 320)) -> Image.Image:
    """A product photo on white (soft edges, as a camera gives): the same shape and pose in
    another ``colour``."""
    im = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(im)
    w, h = size
    draw.ellipse((w * 0.13, h * 0.37, w * 0.87, h * 0.65), fill=colour)
    draw.rectangle((w * 0.17, h * 0.5, w * 0.5, h * 0.65), fill=tuple(c // 2 for c in colour))
    return im.filter(ImageFilter.GaussianBlur(2))


def reencode(im: Image.Image, size=None, quality=70) -> Image.Image:
    buf = io.BytesIO()
    (im.resize(size, Image.Resampling.BICUBIC) if size else im).save(buf, "JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def groups_of(images: list[Image.Image], texts: list[str] | None = None, rule=DEFAULT_RULE):
    ids = np.arange(len(images), dtype=np.int64)
    vecs = np.ones((len(images), 4), dtype=np.float32) / 2  # the encoder agrees: only the rule decides
    hashes = {i: perceptual_hash(im) for i, im in enumerate(images)}
    return find_groups(ids, vecs, hashes, rule, dict(enumerate(texts)) if texts else None)


def test_a_reencoded_and_a_resized_copy_are_duplicates():
    photo = make_image(seed=3, size=(200, 160))
    copies = [photo, reencode(photo), reencode(photo, (120, 96)), reencode(photo, (100, 100))]
    assert groups_of(copies) == [[0, 1, 2, 3]]


def test_receipts_differing_only_in_their_numbers_are_not_duplicates():
    a, text_a = receipt("TD01167104", "25/12/2018", "9.00")
    b, text_b = receipt("TD01167185", "26/12/2018", "14.50")
    assert groups_of([a, b]) == [[0, 1]]  # to the pixels alone they are the same picture
    assert groups_of([a, b], [text_a, text_b]) == []  # their numbers differ
    small, _ = reencode(a, (180, 120)), None
    assert groups_of([a, small], [text_a, text_a.replace("SAGU", "SACU")]) == [[0, 1]]  # a copy, OCR noise
    assert groups_of([a, b], [text_a, "SHOP"]) == [[0, 1]]  # too little text on one to tell


def test_products_in_another_colour_on_white_are_not_duplicates():
    blue, purple = shoe((40, 60, 200)), shoe((120, 40, 160))
    frame = [int(perceptual_hash(im)[:16], 16) for im in (blue, purple)]
    assert (frame[0] ^ frame[1]).bit_count() <= DEFAULT_RULE.hamming  # the frame hashes alone collide
    assert groups_of([blue, purple, reencode(blue, (60, 80)), reencode(blue, (200, 200))]) == [[0, 2, 3]]


def test_content_box_crops_the_background_and_keeps_a_photo_whole():
    left, top, right, bottom = content_box(np.asarray(shoe((40, 60, 200))))
    assert abs(left - 31) <= 3 and abs(top - 118) <= 3 and abs(right - 209) <= 3 and abs(bottom - 209) <= 3
    photo = make_image(seed=5, size=(64, 48))
    left, top, right, bottom = content_box(np.asarray(photo))
    assert (right - left) * (bottom - top) >= 0.8 * 64 * 48


def test_groups_do_not_chain_look_alikes():
    """A~B and B~C but not A~C: B joins the closer of the two, C stays alone."""

    def sig(level: int) -> str:
        return "0" * 16 + "-" + bytes([level]).hex() * 192

    hashes = {1: sig(100), 2: sig(107), 3: sig(115)}  # content differences 7, 8 and 15
    ids = np.array([1, 2, 3], dtype=np.int64)
    vecs = np.ones((3, 2), dtype=np.float32)
    assert find_groups(ids, vecs, hashes, DuplicateRule()) == [[1, 2]]
    assert find_groups(ids, vecs, hashes, DuplicateRule(content=20.0)) == [[1, 2, 3]]
    assert find_groups(ids, vecs, {**hashes, 3: "0" * 16}, DuplicateRule(content=20.0)) == [
        [1, 2]
    ]  # old hash


def test_numbers_ignore_currency_and_separators():
    assert numbers("RM12.50 total 12,50 on 12/03/2018 x 1 INV-0012") == {"1250", "12032018", "0012"}


def test_an_index_from_an_older_version_is_hashed_again(tmp_path, tiny_embedder):
    """`searchengine duplicates` on an index whose signatures an older version computed."""
    root = tmp_path / "photos"
    root.mkdir()
    photo = make_image(seed=7, size=(200, 160))
    photo.save(root / "orig.png")
    photo.resize((120, 96)).save(root / "small.jpg", quality=70)
    make_image(seed=8, size=(200, 160)).save(root / "other.png")
    store = Store(tmp_path / "index")
    Indexer(store, tiny_embedder).run(root)
    with store.db.atomic():  # what version 1 left: a 16-hex-digit hash, its tool, its rule
        store.db.execute("UPDATE images SET phash = substr(phash, 1, 16)")
        store.db.execute("UPDATE stages SET tool = 'imagehash-phash-64-v1' WHERE stage = ?", [PHASH_STAGE])
        store.db.execute("DELETE FROM duplicates")
    store.set_meta("duplicates", json.dumps({"method": "imagehash-phash-64-v1", "hamming": 2}))
    r = CliRunner().invoke(cli, ["duplicates", "--index", str(tmp_path / "index"), "--json"])
    assert r.exit_code == 0, r.output
    assert [[Path(x["path"]).name for x in g] for g in json.loads(r.stdout)["groups"]] == [
        ["orig.png", "small.jpg"]
    ]
    assert all(is_current(s) for s in store.duplicates.phashes().values())
    tools = store.db.execute("SELECT DISTINCT tool FROM stages WHERE stage = ?", [PHASH_STAGE]).fetchall()
    assert tools == [(PHASH_TOOL,)] and store.duplicates.stale(PHASH_STAGE, PHASH_TOOL) == []
