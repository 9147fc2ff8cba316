"""Keyword leg at scale: FTS5 BM25 over every match against the signature ranker.

Reads a base that ``bench/bench_scale.py`` built (``OUT/nN/base``, its ``rows`` phase is
enough) and times, on its shop-style text queries, one at a time:

* ``full``: ``Texts.keyword_search`` (FTS5 ``bm25()`` on every row the expression finds,
  joined with ``images`` for the filters), what the keyword leg ran before;
* ``ranker``: ``legs.keyword_leg`` (``Texts.keyword_top`` through ``Bm25Ranker``), with its
  phrase counts cached as a serving process keeps them (the first query of each word pays
  its count: see ``first_ms``);

unfiltered, with a broad filter (about 50% pass) and a selective one (about 1%), and
compares the two pages: identical (ids, order and scores), overlap of the top 10 and of
the whole page, and how often the ranker proved its page exact.

    python bench/bench_keyword.py --n 100000 --queries 200 --out-dir /tmp/kw_scale
    python bench/bench_keyword.py --n 1000000 --queries 200 --full-queries 40 --out-dir /tmp/kw_scale

Figures go to ``OUT/nN/keyword.json`` and are printed as markdown.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from bench_scale import BROAD, DATASETS, Catalogue, pct


def _timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    value = fn()
    return (time.perf_counter() - t0) * 1000, value


def run(args) -> dict:
    from searchengine.query import parse_query
    from searchengine.search import legs, plan
    from searchengine.search.request import build_filters
    from searchengine.store.db import Store
    from searchengine.store.fts import Bm25Ranker, KeywordQuery

    cat = Catalogue(args.n, args.datasets)
    queries = cat.text_queries(args.queries)
    store = Store(args.out_dir / f"n{args.n}" / "base")
    depth = plan.depth(0, 10)
    out: dict = {"n": args.n, "queries": len(queries), "depth": depth}
    for name, where in (("none", []), ("broad", [BROAD]), ("selective", [f"brand={cat.selective_brand}"])):
        filters = build_filters(where=where)
        parsed = [parse_query(q) for q in queries]
        store.text.ranker = Bm25Ranker(store.db.conn)  # a cold cache: each word's first count is timed
        first, ranker, pages, exact = [], [], [], 0
        for p in parsed:
            ms, page = _timed(lambda p=p, f=filters: legs.keyword_leg(store, p, depth, f))
            first.append(ms)
        for p in parsed:
            ms, page = _timed(lambda p=p, f=filters: legs.keyword_leg(store, p, depth, f))
            ranker.append(ms)
            pages.append(page)
            query = KeywordQuery.of(p)
            if query is not None:
                store.text.ranker.refresh()
                exact += _proved(store, query, depth, filters)
        full, same, top10, whole = [], 0, [], []
        for p, page in list(zip(parsed, pages, strict=True))[: args.full_queries]:
            ms, ref = _timed(lambda p=p, f=filters: store.text.keyword_search(p.fts_match(), depth, f))
            full.append(ms)
            same += page == ref
            top10.append(_overlap(page[:10], ref[:10]))
            whole.append(_overlap(page, ref))
        out[name] = {
            "ranker_p50_ms": pct(ranker, 0.5), "ranker_p95_ms": pct(ranker, 0.95),
            "ranker_first_p50_ms": pct(first, 0.5), "ranker_first_p95_ms": pct(first, 0.95),
            "proved_exact": round(exact / len(parsed), 3),
            "full_p50_ms": pct(full, 0.5), "full_p95_ms": pct(full, 0.95), "compared": len(full),
            "identical_pages": round(same / max(1, len(full)), 3),
            "top10_overlap": round(statistics.fmean(top10), 4) if top10 else None,
            "page_overlap": round(statistics.fmean(whole), 4) if whole else None,
        }  # fmt: skip
        print(f"{name}: {json.dumps(out[name])}", file=sys.stderr, flush=True)
    return out


def _overlap(page: list, ref: list) -> float:
    """Share of the reference page's ids that ``page`` holds (1.0 for two empty pages)."""
    if not ref:
        return 1.0 if not page else 0.0
    return len({i for i, _ in page} & {i for i, _ in ref}) / len(ref)


def _proved(store, query, depth: int, filters) -> bool:
    """Whether the ranker proves its page exact for this query (run again, uncounted)."""
    from searchengine.store.filters import filter_sql

    where, params = filter_sql(filters)
    sql = f"SELECT i.id FROM images i WHERE i.id IN (SELECT value FROM json_each(?)) AND {where}"

    def passing(ids):
        keep = {r[0] for r in store.db.conn.execute(sql, [json.dumps(ids), *params])} if ids else set()
        return [i for i in ids if i in keep]

    return (
        store.text.ranker.top(query, depth, passing, prefilter=filters is not None and filters.active)[1]
        == "exact"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--full-queries", type=int, default=200, help="queries also run the old way")
    ap.add_argument("--out-dir", type=Path, default=Path("/tmp/scale"))
    ap.add_argument("--datasets", type=Path, default=DATASETS, help="holds fashion_products_3k")
    args = ap.parse_args()
    figures = run(args)
    (args.out_dir / f"n{args.n}" / "keyword.json").write_text(json.dumps(figures, indent=1))
    print(f"\n| {args.n:,} images | p50 / p95 ms, all matches | p50 / p95 ms, ranker | identical pages "
          "| top-10 / page overlap | proved exact |\n|---|---:|---:|---:|---:|---:|")  # fmt: skip
    for name in ("none", "broad", "selective"):
        f = figures[name]
        full, ranker = (
            f"{f['full_p50_ms']} / {f['full_p95_ms']}",
            f"{f['ranker_p50_ms']} / {f['ranker_p95_ms']}",
        )
        overlap = f"{f['top10_overlap']} / {f['page_overlap']}"
        print(f"| {name} | {full} | {ranker} | {f['identical_pages']} | {overlap} | {f['proved_exact']} |")


if __name__ == "__main__":
    main()
