"""How often a page's relevance figures disagree with its ranking, with default settings.

Every text query of each dev set runs through ``SearchEngine.run`` as ``search`` and
``/api/search`` run it (hybrid, the cutoff on); a page *disagrees* when some hit in its
top 10 shows a relevance more than 0.05 above a hit ranked before it. Also reported:
Recall@1 of the same pages (the ranking this figure describes).

    python bench/eval_relevance_order.py coco_mini=IDX flickr8k_dev1k=IDX:5 \\
        fashion_products_3k=IDX:2 fashion_meta=IDX:3 [--datasets ../shared/datasets]

NAME is the dataset folder (``fashion_meta`` reads fashion_products_3k's annotations: an
index with the catalogue imported); ``:STEP`` uses every STEP-th query.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from eval_fusion import arguments  # noqa: E402

from searchengine.evaluation import load_annotations, query_sets  # noqa: E402
from searchengine.models.base import TextCache  # noqa: E402
from searchengine.search import SearchEngine  # noqa: E402
from searchengine.search.engine import open_store, resolve_embedder  # noqa: E402

SLACK = 0.05


def disagrees(figures: list[float]) -> bool:
    """Some hit shows more than SLACK above a hit ranked before it."""
    return any(later > earlier + SLACK for i, earlier in enumerate(figures) for later in figures[i + 1 :])


def measure(name: str, index: Path, datasets: Path, step: int) -> list[tuple[str, int, float, float]]:
    store = open_store(index)
    engine = SearchEngine(store, TextCache(resolve_embedder(store, None), 10**6))
    folder, records = load_annotations(
        datasets / name.replace("fashion_meta", "fashion_products_3k") / "annotations.jsonl"
    )
    out = []
    for qs in query_sets(folder, records):
        queries = [q for q in qs.queries if q.text][::step]
        if not queries:
            continue
        bad = first = 0
        for q in queries:
            hits = engine.query(q.text, limit=10).hits
            bad += disagrees([h.relevance for h in hits])
            first += bool(hits) and hits[0].path in q.relevant
        out.append((qs.name, len(queries), bad / len(queries), first / len(queries)))
        print(f"  {name}/{qs.name}: {len(queries)} queries", file=sys.stderr, flush=True)
    return out


def main() -> None:
    specs, datasets = arguments(__doc__)
    print("| set | query set | queries | pages whose figures disagree with the ranking | R@1 |")
    print("|---|---|---:|---:|---:|")
    for name, index, step in specs:
        for qs, n, bad, r1 in measure(name, index, datasets, step):
            print(f"| {name} | {qs} | {n} | {bad:.1%} | {r1:.3f} |", flush=True)


if __name__ == "__main__":
    main()
