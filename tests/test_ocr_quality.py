"""OCR search quality on real receipts (../shared/datasets/sroie_dev100, a subset)."""

import json
from collections import Counter
from pathlib import Path

import pytest

from bench.gallery import place
from indexer.pipeline import Indexer
from searchengine.evaluation import distinctive_line, word_recall
from searchengine.models.registry import create_captioner, create_embedder, create_ocr
from searchengine.search import SearchEngine
from searchengine.store.db import Store
from tests.conftest import SHARED

SROIE = SHARED / "sroie_dev100"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not SROIE.is_dir(), reason="../shared/datasets/sroie_dev100 is absent (a user's clone)"
    ),
]
N = 24


@pytest.fixture(scope="module")
def receipts(tmp_path_factory):
    records = [json.loads(line) for line in (SROIE / "annotations.jsonl").open()][:N]
    folder = tmp_path_factory.mktemp("receipts")
    for r in records:  # hard links: the shared set is read in place
        place(SROIE / r["file"], folder / Path(r["file"]).name)
    store = Store(tmp_path_factory.mktemp("sroie-index"))
    offline = create_embedder("offline")
    Indexer(store, offline, ocr=create_ocr("rapidocr"), captioner=create_captioner("offline")).run(folder)
    by_name = {Path(r["file"]).name: r for r in records}
    return records, by_name, folder, SearchEngine(store, offline)


def test_ocr_word_recall_floor(receipts):
    records, _, folder, engine = receipts
    found = total = 0
    for r in records:
        rec = engine.store.images.by_path(str(folder.resolve() / Path(r["file"]).name))
        f, t = word_recall(r["text"], engine.store.text.of(rec.id).ocr_text)
        found, total = found + f, total + t
    assert found / total >= 0.78, found / total


def test_company_name_finds_its_receipts_first(receipts):
    records, by_name, _, engine = receipts
    companies = sorted({r["fields"]["company"] for r in records})
    top1 = [engine.query(c, limit=1, mode="keyword").hits for c in companies]
    r1 = sum(
        bool(h) and by_name[Path(h[0].path).name]["fields"]["company"] == c
        for h, c in zip(top1, companies, strict=True)
    ) / len(companies)
    assert r1 >= 0.85, r1


def test_distinctive_line_finds_its_receipt_first(receipts):
    records, _, _, engine = receipts
    counts = Counter(line.strip() for r in records for line in set(r["text"].splitlines()))
    pairs = [(distinctive_line(r["text"], counts), Path(r["file"]).name) for r in records]
    pairs = [(q, name) for q, name in pairs if q]
    hits = sum(Path(engine.query(q, limit=1, mode="keyword").hits[0].path).name == name for q, name in pairs)
    assert hits / len(pairs) >= 0.8, hits / len(pairs)
