"""Peak memory of loading the vectors, and latency of filtered vector search, before and after streaming.

Builds a synthetic store (unit vectors in clusters of about 1000, as embeddings cluster;
formats drawn so that PNG passes ~50% and GIF ~1%), then measures each way in a fresh subprocess:

* ``load``: ``Embeddings.all`` (before: ``fetchall`` and a join of every blob; after: chunks
  into arrays allocated once), peak RSS above the process's RSS just before the load.
* ``rebuild``: building the FAISS index from SQLite (before: load all, train and add at once;
  after: :func:`build_from_chunks`, added chunk by chunk), peak RSS likewise.
* ``filter``: the vector leg with a broad (50%) and a selective (1%) format filter, k = 100
  (one result block), over an HNSW index: before, every passing id listed by path into an
  ``IDSelectorBatch``; after, :meth:`VectorIndex.search_passing`. Median and p95 of 200
  queries (a stored vector plus noise), and how many of the exact top 100 each way finds.

    python bench/bench_vector_load.py /tmp/vl --n 200000 --dim 384
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import faiss
import numpy as np

from searchengine.models.base import l2_normalize
from searchengine.records import Filters
from searchengine.search.legs import vector_leg
from searchengine.store.db import Store
from searchengine.store.images import ImageWrite
from searchengine.store.vectors import VectorIndex, build_from_chunks, build_index


def make(index: Path, n: int, dim: int) -> None:
    store = Store(index)
    if store.embeddings.count() == n:
        return
    rng = np.random.default_rng(0)
    centres = l2_normalize(rng.normal(size=(max(1, n // 1000), dim)))  # clustered, as embeddings are
    for start in range(0, n, 5000):
        m = min(5000, n - start)
        noise = 0.9 * rng.normal(size=(m, dim)) / math.sqrt(dim)
        vecs = l2_normalize(centres[rng.integers(0, len(centres), m)] + noise).astype(np.float32)
        formats = rng.choice(["JPEG", "PNG", "GIF"], size=len(vecs), p=[0.49, 0.5, 0.01])
        writes = []
        for j, (vec, fmt) in enumerate(zip(vecs, formats, strict=True)):
            i = start + j
            path = f"/synthetic/{i // 1000}/{i}.jpg"
            row = {
                "path": path,
                "root": "/synthetic",
                "sha256": f"{i:064x}",
                "size": 1000 + i,
                "mtime_ns": i,
                "width": 640,
                "height": 480,
                "format": str(fmt),
                "status": "ok",
                "error": None,
            }
            writes.append(ImageWrite(path, row=row, vector=vec.tobytes()))
        store.images.write_batch(writes)


def _rss_kb() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() // 1024


def _load_before(store: Store, dim: int):
    """``Embeddings.all`` as it was: every row fetched, then every blob joined."""
    rows = store.db.execute("SELECT image_id, vector FROM embeddings ORDER BY image_id").fetchall()
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dim)
    return ids, vecs


def measure(index: Path, what: str, way: str, dim: int, key: str) -> dict:
    """One measurement, in this process (run it in a fresh one): peak RSS above the start."""
    faiss.omp_set_num_threads(2)
    store = Store(index)
    base = _rss_kb()
    t0 = time.perf_counter()
    if what == "load":
        ids, _ = _load_before(store, dim) if way == "before" else store.embeddings.all(dim)
        n = len(ids)
    elif way == "before":
        with store.snapshot():
            ids, vecs = _load_before(store, dim)
        built = build_index(key, ids, vecs)
        n = built.ntotal
    else:
        with store.snapshot():
            count = store.embeddings.count()
            built = build_from_chunks(key, dim, count, lambda: store.embeddings.chunks(dim))
        n = built.ntotal
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    one_copy = n * dim * 4 / 2**20
    return {
        "what": what,
        "way": way,
        "key": key if what == "rebuild" else None,
        "n": n,
        "peak_above_start_mib": round((peak - base) / 1024, 1),
        "one_copy_mib": round(one_copy, 1),
        "seconds": round(seconds, 2),
    }


def _old_leg(store: Store, vi: VectorIndex, q: np.ndarray, k: int, filters: Filters):
    """The vector leg's filter path as it was: every passing id, by path, in an IDSelectorBatch."""
    allowed = store.images.filtered_ids(filters)
    sel = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
    params = faiss.SearchParametersHNSW(sel=sel, efSearch=max(128, k))
    _, ids = vi.index.search(q, min(k, len(allowed)), params=params)
    return [int(i) for i in ids[0] if i >= 0]


def filtered(index: Path, dim: int, queries: int) -> list[dict]:
    faiss.omp_set_num_threads(1)  # one query at a time, as the service answers
    store = Store(index)
    ids, vecs = store.embeddings.all(dim)
    key = "HNSW32,Flat"
    saved = index / f"bench-{key}.faiss"
    if saved.exists():
        built = faiss.read_index(str(saved))
    else:
        built = build_index(key, ids, vecs)
        faiss.write_index(built, str(saved))
    vi = VectorIndex.of(built, key, store.generation())
    rng = np.random.default_rng(7)
    picks = rng.choice(len(ids), queries, replace=False)
    qs = l2_normalize(vecs[picks] + 0.8 * rng.normal(size=(queries, dim)) / math.sqrt(dim)).astype(np.float32)
    found = 0
    for q in qs:  # the index's own recall, unfiltered: what a post-filtered search can reach
        _, got = vi.search(q[None, :], 100)
        found += len(set(got[0].tolist()) & set(ids[np.argsort(-(vecs @ q))[:100]].tolist()))
    print(json.dumps({"filter": "none", "passing": len(ids), "recall_at_100": found / (100 * len(qs))}))
    out = []
    for name, fmt in (("broad (50%)", "PNG"), ("selective (1%)", "GIF")):
        filters = Filters(formats=(fmt,))
        passing = store.images.filtered_ids(filters)
        mask = np.isin(ids, passing)
        for way in ("before", "after"):
            times, found = [], 0
            for q in qs:
                t0 = time.perf_counter()
                if way == "before":
                    got = _old_leg(store, vi, q[None, :], 100, filters)
                else:
                    got = [i for i, _ in vector_leg(store, vi, q[None, :], 100, filters, None)]
                times.append(time.perf_counter() - t0)
                exact = ids[mask][np.argsort(-(vecs[mask] @ q))[:100]]
                found += len(set(got) & set(exact.tolist()))
            times.sort()
            out.append(
                {
                    "filter": name,
                    "passing": int(mask.sum()),
                    "way": way,
                    "p50_ms": round(1000 * statistics.median(times), 2),
                    "p95_ms": round(1000 * times[int(0.95 * len(times))], 2),
                    "recall_at_100": round(found / (100 * len(qs)), 3),
                }
            )
            print(json.dumps(out[-1]), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("index", type=Path)
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--key", default="Flat", help="index type for the rebuild figure")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--only", choices=["memory", "filter"], help="one half of the figures")
    ap.add_argument("--measure", nargs=2, metavar=("WHAT", "WAY"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(args.index, *args.measure, args.dim, args.key)))
        return
    t0 = time.perf_counter()
    make(args.index, args.n, args.dim)
    print(f"store of {args.n} x {args.dim}: {time.perf_counter() - t0:.0f} s", flush=True)
    if args.only != "filter":
        for what in ("load", "rebuild"):
            for way in ("before", "after"):
                cmd = [sys.executable, __file__, str(args.index), "--dim", str(args.dim), "--key", args.key]
                run = subprocess.run([*cmd, "--measure", what, way], capture_output=True, text=True)
                print(run.stdout.strip() or run.stderr.strip()[-2000:], flush=True)
    if args.only != "memory":
        filtered(args.index, args.dim, args.queries)


if __name__ == "__main__":
    main()
