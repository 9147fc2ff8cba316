"""Near-duplicate grouping on near_duplicates: pair precision and recall per rule.

Indexes the set once with the offline encoder (no OCR, no captions; the pipeline
computes the perceptual hashes), then groups it with each rule of the table in
docs/evaluation.md, plus the first approach tried (embedding neighbours, then the
hash). Every pair inside a predicted group is one predicted pair.

    python bench/eval_duplicates.py ../shared/datasets/near_duplicates
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from indexer.pipeline import Indexer
from searchengine.duplicates import DuplicateRule, _bits, find_groups
from searchengine.models.registry import create_embedder
from searchengine.store.db import Store

RULES = [
    ("hash <= 2 bits, alone", DuplicateRule(2, 2, 1.0)),
    ("hash <= 4 bits, alone", DuplicateRule(4, 4, 1.0)),
    ("hash <= 4 bits and cosine >= 0.7", DuplicateRule(0, 4, 0.7)),
    ("hash <= 2 bits, or <= 4 bits with cosine >= 0.9 (default)", DuplicateRule()),
    ("hash <= 2 bits, or <= 6 bits with cosine >= 0.9", DuplicateRule(2, 6, 0.9)),
]


def pairs_of(groups: list[list[int]]) -> set[tuple[int, int]]:
    return {(g[i], g[j]) for g in groups for i in range(len(g)) for j in range(i + 1, len(g))}


def neighbour_groups(ids: np.ndarray, vecs: np.ndarray, hashes: dict[int, str], k: int = 10, bits: int = 6):
    """The first approach: candidates among each image's k nearest embeddings, then the hash."""
    sims = vecs @ vecs.T
    code = dict(zip(ids.tolist(), _bits([hashes[int(i)] for i in ids]), strict=True))
    parent = {int(i): int(i) for i in ids}

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for row, a in enumerate(ids.tolist()):
        for col in np.argsort(-sims[row])[1 : k + 1]:
            b = int(ids[col])
            if int(np.count_nonzero(code[a] != code[b])) <= bits:
                parent[root(a)] = root(b)
    groups: dict[int, list[int]] = {}
    for i in parent:
        groups.setdefault(root(i), []).append(i)
    return [sorted(g) for g in groups.values() if len(g) > 1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", type=Path, help="near_duplicates folder")
    args = ap.parse_args()
    folder = args.dataset.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "index")
        Indexer(store, create_embedder("offline"), duplicates=None).run(folder)
        by_path = {p: i for i, p in store.images.searchable_paths()}
        records = [json.loads(line) for line in (folder / "annotations.jsonl").open()]
        truth = {
            tuple(sorted((by_path[str(folder / r["file"])], by_path[str(folder / r["duplicate_file"])])))
            for r in records
        }
        ids, vecs = store.embeddings.all(384)
        hashes = store.duplicates.phashes()
        rows = ["| rule | predicted pairs | precision | recall | ms |", "|---|---:|---:|---:|---:|"]
        candidates = [("embedding neighbours (10 nearest), then hash <= 6 bits", None), *RULES]
        for name, rule in candidates:
            t0 = time.perf_counter()
            groups = (
                neighbour_groups(ids, vecs, hashes) if rule is None else find_groups(ids, vecs, hashes, rule)
            )
            ms = (time.perf_counter() - t0) * 1000
            pred = pairs_of(groups)
            hit = len(pred & truth)
            precision, recall = hit / max(len(pred), 1), hit / len(truth)
            rows.append(f"| {name} | {len(pred)} | {precision:.3f} | {recall:.3f} | {ms:.0f} |")
            print(rows[-1], flush=True)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
