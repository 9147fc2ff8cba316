"""Indexing throughput and query latency per encoder, on a real image folder.

For each encoder: a cold index run (images/s, wall clock, model load included),
a no-change re-run (seconds), then text-query latency p50/p95 through the whole
search path (text encoding + FAISS + SQLite) over caption queries, one at a time.
``clip:ViT-B-32:random`` has the real architecture with random weights: its speed
is that of the pretrained model, its results are meaningless.

    python bench/bench_index.py ../shared/datasets/flickr8k_dev1k \
        --models offline offline:ensemble-v1 clip:ViT-B-32:random --limit 1000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path

from gallery import place

from indexer.pipeline import Indexer
from searchengine.models.registry import create_embedder
from searchengine.search import SearchEngine
from searchengine.store.db import Store


def percentile(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def bench(folder: Path, model: str, captions: list[str], queries: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        embedder = create_embedder(model)
        store = Store(Path(tmp) / "index")
        report = Indexer(store, embedder).run(folder)
        cold = time.perf_counter() - t0
        t1 = time.perf_counter()
        again = Indexer(store, embedder).run(folder)
        warm = time.perf_counter() - t1
        assert again.processed == 0
        engine = SearchEngine(store, embedder)
        engine.query(captions[0], limit=10, mode="vector", min_score=-1)  # load the text tower
        lat = []
        for q in captions[:queries]:
            s = time.perf_counter()
            engine.query(q, limit=10, mode="vector", min_score=-1)
            lat.append((time.perf_counter() - s) * 1000)
    return {
        "model": embedder.id.spec,
        "images": report.embedded,
        "index_s": round(cold, 1),
        "images_per_s": round(report.embedded / cold, 1),
        "reindex_unchanged_s": round(warm, 2),
        "query_p50_ms": round(statistics.median(lat), 1),
        "query_p95_ms": round(percentile(lat, 95), 1),
        "queries": len(lat),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--models", nargs="+", default=["offline"])
    ap.add_argument("--limit", type=int, default=1000, help="images to index")
    ap.add_argument("--queries", type=int, default=300)
    args = ap.parse_args()
    records = [json.loads(line) for line in (args.dataset / "annotations.jsonl").open()][: args.limit]
    captions = [c for r in records for c in r["captions"]]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        for r in records:  # hard links: the shared set is read in place
            place(args.dataset / r["file"], folder / Path(r["file"]).name)
        rows = [bench(folder, m, captions, args.queries) for m in args.models]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}, "
        f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
    )
    print(
        "| encoder | images | index run (s) | images/s | unchanged re-run (s) "
        "| query p50 (ms) | query p95 (ms) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| `{r['model']}` | {r['images']} | {r['index_s']} | {r['images_per_s']} | "
            f"{r['reindex_unchanged_s']} | {r['query_p50_ms']} | {r['query_p95_ms']} |"
        )
    Path("bench/out").mkdir(parents=True, exist_ok=True)
    Path("bench/out/bench_index.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
