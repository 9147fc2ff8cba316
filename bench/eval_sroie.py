"""OCR-driven search on receipts (sroie_dev100): OCR word recall and keyword retrieval.

Indexes the folder with the default pipeline (offline encoder, rapidocr, offline
captioner), then measures:

* OCR word recall: the share of the ground-truth ``text`` words (upper-cased,
  whitespace-split) that the OCR text contains, micro-averaged over receipts;
* company search: each distinct ``fields.company`` is a keyword query, every
  receipt of that company is relevant: Recall@1 (top hit relevant) and R@5;
* distinctive line: per receipt, a line of its ground-truth text that no other
  receipt has (preferring invoice/document numbers): is that receipt first?

    python bench/eval_sroie.py ../shared/datasets/sroie_dev100 [--limit N]
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from collections import Counter
from pathlib import Path

from gallery import place

from indexer.pipeline import Indexer
from searchengine.evaluation import distinctive_line, word_recall
from searchengine.models.registry import create_captioner, create_embedder, create_ocr
from searchengine.search import SearchEngine
from searchengine.store.db import Store

_INVOICE = re.compile(r"\b(INV|INVOICE|DOC|DOCUMENT|BILL|RECEIPT|RCPT|SLIP|ORDER)\b", re.I)


def _norm(label: str) -> str:
    return "".join(ch for ch in label.upper() if ch.isalnum())


def evaluate(
    dataset: Path,
    limit: int | None = None,
    folder: Path | None = None,
    index: Path | None = None,
    ocr: str = "rapidocr",
) -> dict:
    records = [json.loads(line) for line in (dataset / "annotations.jsonl").open()][:limit]
    with tempfile.TemporaryDirectory() as tmp:
        if folder is None:
            folder = index.with_name(index.name + "-images") if index else Path(tmp) / "images"
            folder.mkdir(parents=True, exist_ok=True)
            for r in records:  # hard links: the shared set is read in place
                link = folder / Path(r["file"]).name
                if not link.exists():
                    place(dataset / r["file"], link)
        store = Store(index or Path(tmp) / "index")
        offline = create_embedder("offline")
        t0 = time.perf_counter()
        Indexer(store, offline, ocr=create_ocr(ocr), captioner=create_captioner("offline")).run(folder)
        seconds = time.perf_counter() - t0
        engine = SearchEngine(store, offline)
        name = {str(folder.resolve() / Path(r["file"]).name): r for r in records}
        found = hits = 0
        for r in records:
            rec = store.images.by_path(str(folder.resolve() / Path(r["file"]).name))
            f, h = word_recall(r["text"], store.text.of(rec.id).ocr_text or "")
            found, hits = found + f, hits + h
        companies = sorted({r["fields"]["company"] for r in records})
        r1 = r5 = r1_norm = 0
        for company in companies:
            res = engine.query(company, limit=5, mode="keyword").hits
            rel = [name[h.path]["fields"]["company"] == company for h in res]
            r1 += bool(rel[:1] and rel[0])
            r5 += any(rel)
            # the labels spell one company several ways ("AEON CO. (M) BHD" / "... BHD.")
            r1_norm += bool(res) and _norm(name[res[0].path]["fields"]["company"]) == _norm(company)
        line_counts = Counter(line.strip() for r in records for line in set(r["text"].splitlines()))
        line_hits = line_total = keyed_hits = keyed_total = 0
        examples = []
        for r in records:
            line = distinctive_line(r["text"], line_counts)
            if line is None:
                continue
            res = engine.query(line, limit=1, mode="keyword").hits
            ok = bool(res) and Path(res[0].path).name == Path(r["file"]).name
            line_hits += ok
            line_total += 1
            if _INVOICE.search(line):
                keyed_hits, keyed_total = keyed_hits + ok, keyed_total + 1
            if not ok:
                examples.append((Path(r["file"]).name, line, res[0].path.rsplit("/", 1)[1] if res else None))
    return {
        "receipts": len(records),
        "index_seconds": round(seconds, 1),
        "ocr_word_recall": round(found / hits, 4),
        "company_queries": len(companies),
        "company_R@1": round(r1 / len(companies), 4),
        "company_R@5": round(r5 / len(companies), 4),
        "company_R@1_normalised_labels": round(r1_norm / len(companies), 4),
        "invoice_line_queries": keyed_total,
        "invoice_line_top1": round(keyed_hits / max(keyed_total, 1), 4),
        "line_queries": line_total,
        "line_top1": round(line_hits / max(line_total, 1), 4),
        "line_misses": examples,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--index", type=Path, default=None, help="keep/reuse the index here")
    ap.add_argument("--ocr", default="rapidocr", help="OCR engine spec, e.g. tesseract:eng")
    args = ap.parse_args()
    res = evaluate(args.dataset, args.limit, index=args.index, ocr=args.ocr)
    Path("bench/out").mkdir(parents=True, exist_ok=True)
    res["ocr"] = args.ocr
    Path(f"bench/out/eval-sroie-{args.ocr.replace(':', '_')}.json").write_text(json.dumps(res, indent=1))
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
