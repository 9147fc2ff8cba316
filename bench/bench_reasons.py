"""What the plain-word reasons cost a page (issue #12): SQL statements and milliseconds of
``hydrate`` per page with reasons and without, and the reasons' length, on pre-built indexes.

Opens a copy of each index (the originals stay untouched) and runs keyword-only searches (no
encoder needed) for the queries given, 24 hits a page, as the web page asks.

    .venv/bin/python bench/bench_reasons.py /work/evalidx/sroie_dev100:"total tax,cash,gst 6%" \\
        /work/evalidx/fashion_meta:"red dress,backpack,nike shoes"
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from searchengine.query import parse_query
from searchengine.search.engine import SearchEngine
from searchengine.search.hydrate import hydrate
from searchengine.search.reasons import Asked
from searchengine.store.db import Store

REPEATS = 20


def measure(store: Store, query: str, limit: int) -> tuple[float, float, int, int, list]:
    page = SearchEngine(store, None).query(query, mode="keyword", limit=limit)
    ranked = [(h.id, h.score, None) for h in page.hits]
    asked = Asked(parse_query(query), False, True, {h.id: {"keyword"} for h in page.hits})
    statements: list[str] = []
    store.db.conn.set_trace_callback(statements.append)
    hits = hydrate(store, ranked, 1, None, asked)
    with_sql = len(statements)
    statements.clear()
    hydrate(store, ranked, 1)
    without_sql = len(statements)
    store.db.conn.set_trace_callback(None)
    times = {}
    for name, extra in (("with", (None, asked)), ("without", ())):
        runs = []
        for _ in range(REPEATS):
            t = time.perf_counter()
            hydrate(store, ranked, 1, *extra)
            runs.append((time.perf_counter() - t) * 1000)
        times[name] = statistics.median(runs)
    return times["with"], times["without"], with_sql, without_sql, hits


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
            for q in queries.split(","):
                w, wo, sw, swo, hits = measure(store, q, args.limit)
                most = max((len(h.reasons) for h in hits), default=0)
                name = Path(folder).name
                print(
                    f"{name:16s} {q!r:14s} {len(hits):3d} hits  hydrate {w:6.2f} ms with reasons, "
                    f"{wo:6.2f} ms without  SQL {sw} vs {swo}  most reasons {most}"
                )
                if hits:
                    print(f"{'':18s}first: {'; '.join(hits[0].reasons)}")
            store.close()


if __name__ == "__main__":
    main()
