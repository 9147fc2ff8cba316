"""Which FAISS kind for a size: build time, bytes per vector, recall@10 against exact search.

The vectors and queries of ``bench/bench_scale.py``'s synthetic catalogue (clustered 384-d),
held in memory; each kind built by ``build_index`` as the store builds it, searched with a
few settings (HNSW ``efSearch``, IVF ``nprobe``) for R candidates that are then re-ranked
exactly with the float vectors (what ``VectorIndex.search`` does with SQLite's), and the
top 10 compared with the exact top 10. One JSON line per kind:
``"ef128_R50": [recall, ms per query]``.

    python bench/bench_index_kinds.py 1000000 "IVF4096_HNSW32,SQ8;HNSW32,SQ8"
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import faiss
import numpy as np
from bench_scale import DATASETS, DIM, Catalogue

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from searchengine.store.vector_build import build_index  # noqa: E402

QUERIES = 200


def measure(key: str, ids: np.ndarray, vecs: np.ndarray, qs: np.ndarray, truth: np.ndarray) -> dict:
    t0 = time.perf_counter()
    idx = build_index(key, ids, vecs)
    out = {"key": key, "n": len(ids), "build_s": round(time.perf_counter() - t0, 1)}
    out["bytes_per_vector"] = round(len(faiss.serialize_index(idx)) / len(ids))
    hnsw = isinstance(faiss.downcast_index(idx.index), faiss.IndexHNSW)
    settings = [("ef", e) for e in (128, 256, 512)] if hnsw else [("nprobe", p) for p in (16, 32, 64, 128)]
    for name, value in settings:
        for r in (10, 50, 100, 200):
            params = (
                faiss.SearchParametersHNSW(efSearch=max(value, r))
                if hnsw
                else faiss.SearchParametersIVF(nprobe=value)
            )
            got, t0 = [], time.perf_counter()
            for q in qs:
                cand = idx.search(q[None, :], r, params=params)[1][0]
                cand = cand[cand >= 0]
                got.append(cand[np.argsort(-(vecs[cand] @ q), kind="stable")[:10]])
            ms = (time.perf_counter() - t0) * 1000 / len(qs)
            recall = np.mean(
                [len(set(g.tolist()) & set(t.tolist())) / 10 for g, t in zip(got, truth, strict=True)]
            )
            out[f"{name}{value}_R{r}"] = [round(float(recall), 3), round(ms, 2)]
    return out


def main() -> None:
    n, keys = int(sys.argv[1]), sys.argv[2].split(";")
    cat = Catalogue(n, DATASETS)
    vecs = np.empty((n, DIM), dtype=np.float32)
    for s in range(0, n, 100_000):
        vecs[s : s + 100_000] = cat.vectors(s, min(100_000, n - s))
    ids = np.arange(n, dtype=np.int64)
    qs = cat.queries(QUERIES)
    truth = np.argsort(-(qs @ vecs.T), axis=1)[:, :10]
    for key in keys:
        print(json.dumps(measure(key, ids, vecs, qs, truth)), flush=True)


if __name__ == "__main__":
    main()
