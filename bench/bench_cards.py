"""What the result cards' facts cost a page (issue #15): milliseconds of ``hydrate`` per page
of 24 hits; of the part of it that reads documents' key fields from their OCR text
(:func:`~searchengine.search.hydrate.document_facts`), read first and seen before; and of
counting facets over a whole result set, the first 20 values per field against all of them;
on pre-built indexes.

Opens a copy of each index (the originals stay untouched); keyword-only searches, no encoder.

    .venv/bin/python bench/bench_cards.py /work/evalidx/sroie_dev100:"total,cash,gst" \\
        /work/evalidx/fashion_meta:"red dress,backpack,shoes"
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import searchengine.search.hydrate as hydration
from searchengine.search.engine import SearchEngine
from searchengine.search.hydrate import document_facts, facets, hydrate
from searchengine.store.db import Store

REPEATS = 20


def median_ms(fn, cold: bool = True) -> float:
    """Median milliseconds of ``fn``; ``cold``: nothing remembered from the run before."""
    runs = []
    for _ in range(REPEATS):
        if cold:
            hydration._READ.clear()
        t = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t) * 1000)
    return statistics.median(runs)


def measure(store: Store, query: str, limit: int) -> str:
    page = SearchEngine(store, None).query(query, mode="keyword", limit=limit)
    ids = [h.id for h in page.hits]
    ranked = [(h.id, h.score, None) for h in page.hits]
    ocr = {i: t.ocr_text for i, t in store.text.of_many(ids, details=False).items()}
    docs = document_facts(store, ocr)
    everything = [r[0] for r in store.db.execute("SELECT id FROM images WHERE status = 'ok'")]
    keys = [k for k, *_ in store.library.metadata_fields()][:10]
    page_ms = median_ms(lambda: hydrate(store, ranked, 1))
    return (
        f"{query!r}: {len(ids)} hits, {len(docs)} documents; hydrate {page_ms:.1f} ms"
        f" (documents' facts {median_ms(lambda: document_facts(store, ocr)):.1f} ms, "
        f"{median_ms(lambda: document_facts(store, ocr), cold=False):.1f} ms seen before); "
        f"facets of {len(keys)} fields over {len(everything)} images: first 20 "
        f"{median_ms(lambda: facets(store, everything, keys, 20)):.1f} ms, up to 1000 "
        f"{median_ms(lambda: facets(store, everything, keys, 1000)):.1f} ms"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("specs", nargs="+", help="INDEX_DIR:query,query,...")
    ap.add_argument("--limit", type=int, default=24)
    args = ap.parse_args()
    for spec in args.specs:
        folder, _, queries = spec.partition(":")
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(tmp) / "index"
            shutil.copytree(folder, copy)
            store = Store(copy)
            print(Path(folder).name)
            for query in queries.split(","):
                print("  " + measure(store, query, args.limit))
            store.close()


if __name__ == "__main__":
    main()
