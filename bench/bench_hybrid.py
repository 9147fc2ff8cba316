"""Hybrid query latency at 1k and 100k images (synthetic vectors and text, real text encoder).

Builds an index of N synthetic images (random unit vectors, captions and OCR text
drawn from a 3,000-word vocabulary) and times ``SearchEngine.query`` one query at a
time, text encoding included, for 300 real caption queries from flickr8k_dev1k.

    python bench/bench_hybrid.py ../shared/datasets/flickr8k_dev1k --sizes 1000 100000
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from searchengine.models.base import l2_normalize
from searchengine.models.registry import create_embedder
from searchengine.records import Caption, OcrLine, OcrResult
from searchengine.search import SearchEngine
from searchengine.store.db import Store
from searchengine.store.images import ImageWrite
from searchengine.store.vectors import VectorIndex


def build(index: Path, n: int, words: list[str], dim: int, embedder) -> float:
    store = Store(index)
    store.bind_encoder(embedder.id)
    rng = np.random.default_rng(0)
    pick = random.Random(0)
    t0 = time.perf_counter()
    for start in range(0, n, 5000):
        vecs = l2_normalize(rng.normal(size=(min(5000, n - start), dim)))
        writes = []
        for j, vec in enumerate(vecs):
            i = start + j
            row = {
                "path": f"/synthetic/{i // 1000}/{i}.jpg",
                "root": "/synthetic",
                "sha256": f"{i:064x}",
                "size": 1000 + i,
                "mtime_ns": i,
                "width": 640,
                "height": 480,
                "format": "JPEG",
                "status": "ok",
                "error": None,
            }
            caption = Caption(" ".join(pick.choices(words, k=8)), tuple(pick.choices(words, k=3)))
            ocr = OcrResult(
                (OcrLine(" ".join(pick.choices(words, k=5)), 0.9, ((0, 0), (1, 0), (1, 1), (0, 1))),)
            )
            writes.append(
                ImageWrite(
                    row["path"],
                    row=row,
                    vector=vec.tobytes(),
                    caption=caption,
                    ocr=ocr,
                    stages={"caption": ("synthetic", None), "ocr": ("synthetic", None)},
                )
            )
        store.images.write_batch(writes)
    VectorIndex.open(store, dim)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000])
    ap.add_argument("--queries", type=int, default=300)
    args = ap.parse_args()
    records = [json.loads(line) for line in (args.dataset / "annotations.jsonl").open()]
    captions = [c for r in records for c in r["captions"]][: args.queries]
    words = sorted(
        {w.lower().strip(".,") for c in (x for r in records for x in r["captions"]) for w in c.split()}
    )
    words = [w for w in words if w.isalpha()][:3000]
    embedder = create_embedder("offline")
    print("| images | FAISS | mode | p50 (ms) | p95 (ms) |")
    print("|---:|---|---|---:|---:|")
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            build_s = build(Path(tmp), n, words, embedder.id.dim, embedder)
            engine = SearchEngine(Store(tmp), embedder)
            engine.query(captions[0])  # warm up: text model, calibration, caches
            for mode in ("hybrid", "vector", "keyword"):
                lat = []
                for q in captions:
                    t = time.perf_counter()
                    engine.query(q, mode=mode, limit=10)
                    lat.append((time.perf_counter() - t) * 1000)
                lat.sort()
                print(
                    f"| {n:,} | {engine.vectors.key} | {mode} | {statistics.median(lat):.1f} | "
                    f"{lat[int(0.95 * (len(lat) - 1))]:.1f} |",
                    flush=True,
                )
            print(f"(built {n:,} synthetic images in {build_s:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
