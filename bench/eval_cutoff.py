"""Leave-one-set-out choice of the relevance cutoff's EVIDENCE_SHARE (searchengine.search.cutoff).

For every dev set (an eval index built by ``searchengine eval ... --index DIR``, its
annotations and its absent-thing queries in bench/absent/) and every candidate share,
the vector leg's two sides: the share of no-cutoff Recall@10 hits a query keeps (its
best evidence reaches share x margin) and the share of absent-thing queries it rejects.
Each set is then left out in turn: the share is chosen on the others (maximising the
mean over sets of min(kept / 0.9, rejected / 0.7)) and reported on the set left out.

    python bench/eval_cutoff.py flickr8k_dev1k=/work/evalidx/flickr8k_dev1k coco_mini=... \
        [--datasets ../shared/datasets] [--step 1]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from searchengine.evaluation import load_annotations, query_sets  # noqa: E402
from searchengine.search.cutoff import CANDIDATES, UNRELATED, margin  # noqa: E402
from searchengine.search.engine import open_store, resolve_embedder  # noqa: E402
from searchengine.store.vectors import VectorIndex  # noqa: E402

SHARES = np.round(np.arange(0.4, 1.31, 0.05), 2)


def best_evidence(scores: np.ndarray, null: np.ndarray) -> np.ndarray:
    """Per query, the best evidence among its CANDIDATES nearest images (as the search sees it)."""
    top = np.argsort(-scores, axis=1)[:, :CANDIDATES]
    return np.take_along_axis(scores - null, top, axis=1).max(axis=1)


def measure(name: str, index: Path, datasets: Path, step: int) -> dict:
    store = open_store(index)
    embedder = resolve_embedder(store, None)
    ids, vecs = store.embeddings.all(embedder.id.dim)
    paths = [r.path for r in (store.images.by_id(ids.tolist())[int(i)] for i in ids)]
    unrelated = embedder.embed_texts(list(UNRELATED))
    null = (vecs @ unrelated.T).max(axis=1)
    m = margin(store, VectorIndex.open(store, embedder.id.dim), unrelated)
    absent = [ln.strip() for ln in (Path(__file__).parent / "absent" / f"{name}.txt").open() if ln.strip()]
    absent_evidence = best_evidence(embedder.embed_texts(absent) @ vecs.T, null)
    rejected = {s: float((absent_evidence < s * m).mean()) for s in SHARES}
    folder, records = load_annotations(datasets / name / "annotations.jsonl")
    kept: dict[float, list[float]] = {s: [] for s in SHARES}
    for qs in query_sets(folder, records):
        queries = [q for q in qs.queries if q.text][::step]
        if not queries:
            continue
        scores = embedder.embed_texts([q.text for q in queries]) @ vecs.T
        top = np.argsort(-scores, axis=1)[:, :10]
        hit = np.array(
            [bool({paths[j] for j in row} & q.relevant) for row, q in zip(top, queries, strict=True)]
        )
        evidence = best_evidence(scores, null)
        for s in SHARES:
            if hit.sum() >= 5:  # a set whose vector leg finds (almost) nothing says nothing about keeping
                kept[s].append(float((hit & (evidence >= s * m)).sum() / hit.sum()))
    kept_mean = {s: (np.mean(v) if v else None) for s, v in kept.items()}
    return {"margin": m, "rejected": rejected, "kept": kept_mean}


def score(row: dict, s: float) -> float:
    k = row["kept"][s]
    return min(1.0 if k is None else k / 0.9, row["rejected"][s] / 0.7)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sets", nargs="+", help="NAME=INDEX_DIR")
    shared = Path(__file__).resolve().parents[2] / "shared" / "datasets"
    ap.add_argument("--datasets", type=Path, default=shared)
    ap.add_argument("--step", type=int, default=1, help="use every STEP-th query (quick runs)")
    args = ap.parse_args()
    table = {}
    for spec in args.sets:
        name, index = spec.split("=", 1)
        table[name] = measure(name, Path(index), args.datasets, args.step)
        row = table[name]
        print(f"{name}: margin {row['margin']:.3f}")
        for s in SHARES:
            k = row["kept"][s]
            kept = "-" if k is None else f"{k:.2f}"
            print(f"  share {s:.2f}: kept {kept}  absent rejected {row['rejected'][s]:.2f}")
    print("\n| set left out | share chosen on the others | kept (R@10 hits) | absent rejected |")
    print("|---|---:|---:|---:|")
    for held in table:
        chosen = max(SHARES, key=lambda s: (np.mean([score(table[n], s) for n in table if n != held]), -s))
        k = table[held]["kept"][chosen]
        kept = "-" if k is None else f"{k:.2f}"
        print(f"| {held} | {chosen:.2f} | {kept} | {table[held]['rejected'][chosen]:.2f} |")
    chosen = max(SHARES, key=lambda s: (np.mean([score(table[n], s) for n in table]), -s))
    print(f"\nchosen on all sets: {chosen:.2f}")


if __name__ == "__main__":
    main()
