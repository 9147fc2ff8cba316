"""Caption -> image retrieval quality of an encoder, through the real index and search.

Every caption in the dataset's annotations.jsonl is a query with exactly one relevant
image (the protocol of ../shared/datasets/README.md). Prints Recall@1/5/10 and MRR
as a markdown row and writes JSON to bench/out/.

    python bench/eval_retrieval.py ../shared/datasets/flickr8k_dev1k --model offline
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from indexer.pipeline import Indexer
from searchengine.evaluation import indexed_path
from searchengine.metrics import ranking_metrics
from searchengine.models.registry import create_embedder
from searchengine.search import SearchEngine
from searchengine.store.db import Store


def evaluate(dataset: Path, model: str, index: Path | None = None, k: int = 10) -> dict:
    records = [json.loads(line) for line in (dataset / "annotations.jsonl").open()]
    embedder = create_embedder(model)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(index or Path(tmp) / "index")
        t0 = time.perf_counter()
        report = Indexer(store, embedder).run(dataset)
        index_s = time.perf_counter() - t0
        engine = SearchEngine(store, embedder)
        queries = [(c, str(indexed_path(dataset, r["file"]))) for r in records for c in r["captions"]]
        ranked = [
            [h.path for h in engine.query(q, limit=100, mode="vector", min_score=-1).hits] for q, _ in queries
        ]
    out = ranking_metrics(ranked, [frozenset({gold}) for _, gold in queries])  # past 100 counts as 0
    n = len(queries)
    out.update(
        dataset=dataset.name,
        model=embedder.id.spec,
        images=report.scanned,
        queries=n,
        index_seconds=round(index_s, 1),
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--model", default="offline")
    ap.add_argument("--index", type=Path, default=None, help="keep/reuse the index here")
    args = ap.parse_args()
    res = evaluate(args.dataset, args.model, args.index)
    out = Path("bench/out")
    out.mkdir(parents=True, exist_ok=True)
    (out / f"eval-{res['dataset']}-{res['model'].replace(':', '_')}.json").write_text(
        json.dumps(res, indent=1)
    )
    print(json.dumps(res))
    print(
        f"| {res['dataset']} | {res['model']} | {res['R@1']:.3f} | {res['R@5']:.3f} | "
        f"{res['R@10']:.3f} | {res['MRR']:.3f} |"
    )


if __name__ == "__main__":
    main()
