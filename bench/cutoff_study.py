"""How well does each relevance-cutoff rule keep true hits and reject absent things?

For every dev set whose index exists (``searchengine eval SET --index DIR`` builds it),
every text query (the harness's query sets), every absent-thing query (bench/absent/)
and the calibration queries (``searchengine.search.cutoff.UNRELATED``) is scored against
every stored vector, exactly as the vector leg scores it. Then each rule is applied:

* ``global``: a hit must reach the best cosine any calibration query reaches (today's rule);
* ``z-calibrated``: the same in z-score space: a hit's cosine is standardised by the
  query's own score distribution over the index (mean, standard deviation), and must
  reach the best standardised top score of the calibration queries;
* ``z>=Z``: a fixed standardised threshold, chosen by leave-one-set-out (the Z that
  maximises the mean of recall kept and absent rejected on the other sets).

Reported per set: the vector leg's R@10 with the rule against no cutoff (recall kept)
and the share of absent-thing queries whose vector leg returns nothing.

    python bench/cutoff_study.py --index-root /work/evalidx --out bench/out/cutoff_study.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from searchengine.evaluation import load_annotations, query_sets
from searchengine.models.registry import create_embedder
from searchengine.query import parse_query
from searchengine.search.cutoff import UNRELATED
from searchengine.search.legs import query_vector
from searchengine.store.db import Store

SETS = ("flickr8k_dev1k", "coco_mini", "sroie_dev100", "fashion_products_3k")
REPO = Path(__file__).resolve().parent.parent


def score_all(embedder, store, texts: list[str], vecs: np.ndarray) -> np.ndarray:
    """(Q, N) cosines of every text against every stored vector, as the vector leg scores them."""
    qs = np.vstack([query_vector(embedder, store, parse_query(t), None, None) for t in texts])
    return qs @ vecs.T


def stats(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return scores.mean(axis=1, keepdims=True), scores.std(axis=1, keepdims=True) + 1e-9


def collect(dataset: Path, index: Path, embedder) -> dict:
    store = Store(index)
    ids, vecs = store.embeddings.all(embedder.id.dim)
    path_of = dict(store.images.searchable_paths())
    folder, records = load_annotations(dataset / "annotations.jsonl")
    texts, relevant = [], []
    for qs in query_sets(folder, records):
        for q in qs.queries:
            if q.text:
                texts.append(q.text)
                relevant.append(q.relevant)
    absent = [t for t in (REPO / "bench" / "absent" / f"{dataset.name}.txt").read_text().splitlines() if t]
    rel_mask = np.array([[path_of.get(int(i)) in rel for i in ids] for rel in relevant])
    return {
        "true": score_all(embedder, store, texts, vecs),
        "relevant": rel_mask,
        "absent": score_all(embedder, store, absent, vecs),
        "unrelated": score_all(embedder, store, list(UNRELATED), vecs),
    }


def recall_at_10(scores: np.ndarray, keep: np.ndarray, relevant: np.ndarray) -> float:
    """R@10 of the ranking restricted to kept hits."""
    masked = np.where(keep, scores, -np.inf)
    top = np.argsort(-masked, axis=1)[:, :10]
    found = np.take_along_axis(relevant & keep, top, axis=1).any(axis=1)
    return float(found.mean())


def apply(data: dict, rule: str, z: float = 0.0) -> tuple[float, float]:
    """(recall kept: R@10 with the rule / without, absent rejected) of one rule on one set."""
    out = []
    for part in ("true", "absent"):
        s = data[part]
        mu, sd = stats(s)
        zs = (s - mu) / sd
        if rule == "global":
            keep = s >= data["unrelated"].max()
        elif rule == "z-calibrated":
            umu, usd = stats(data["unrelated"])
            keep = zs >= ((data["unrelated"] - umu) / usd).max()
        else:
            keep = zs >= z
        out.append(keep)
    full = recall_at_10(data["true"], np.ones_like(out[0]), data["relevant"])
    kept = recall_at_10(data["true"], out[0], data["relevant"])
    rejected = float((~out[1].any(axis=1)).mean())
    return kept / full if full else 0.0, rejected


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", type=Path, default=REPO.parent / "shared" / "datasets")
    ap.add_argument("--index-root", type=Path, required=True, help="holds one index folder per set")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "cutoff_study.json")
    args = ap.parse_args()
    embedder = create_embedder("offline")
    data = {
        s: collect(args.datasets / s, args.index_root / s, embedder)
        for s in SETS
        if (args.index_root / s).is_dir()
    }
    grid = np.round(np.arange(1.0, 8.01, 0.25), 2)
    report: dict = {}
    for held in data:
        others = [s for s in data if s != held]
        best = max(grid, key=lambda z: np.mean([sum(apply(data[o], "z", z)) for o in others]))
        report[held] = {
            "global": apply(data[held], "global"),
            "z-calibrated": apply(data[held], "z-calibrated"),
            f"z>={best} (chosen on the others)": apply(data[held], "z", best),
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print("| set | rule | recall kept | absent rejected |")
    print("|---|---|---:|---:|")
    for held, rules in report.items():
        for rule, (kept, rejected) in rules.items():
            print(f"| {held} | {rule} | {kept:.2f} | {rejected:.2f} |")


if __name__ == "__main__":
    main()
