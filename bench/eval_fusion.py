"""Leave-one-set-out choice of the fusion rules (searchengine.search.plan), R@1 against each leg.

Each query of each dev set is run once through the engine's legs with default settings
(the relevance cutoff included); then every combination of the candidate rules below is
fused offline (each leg's hits weighed by their confidence, as the engine weighs them)
and scored by Recall@1, beside each leg alone (the vector leg with its cutoff, the keyword
leg as ``--mode keyword`` runs it). Each set is left out in turn: the
rules are chosen on the others (maximise the worst gap "fused minus the better leg", then
mean R@1, then the fewest rules) and reported on the set left out.

Candidate rules (1.0 / off is "no rule"): RRF k; FULL (a hit holding every term counts
FULL times a partial one); CODE (keyword weight times CODE for code-like queries); WEAK
(vector weight when a keyword hit holds >= 75% of the terms and no image looks like the
query); ALWAYS (apply WEAK whenever such a hit exists: the words decide); SENTENCE
(keyword weight for descriptive sentences without such a hit); CATALOGUE (vector weight
for catalogue phrases without such a hit).

    python bench/eval_fusion.py flickr8k_dev1k=/work/evalidx/flickr8k_dev1k:5 coco_mini=...:1 \
        [--datasets ../shared/datasets]

NAME is the dataset folder (``fashion_meta`` reads fashion_products_3k's annotations: an
index with the catalogue imported); ``:STEP`` uses every STEP-th query.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from searchengine.evaluation import load_annotations, query_sets  # noqa: E402
from searchengine.models.base import TextCache  # noqa: E402
from searchengine.query import parse_query  # noqa: E402
from searchengine.records import SearchRequest  # noqa: E402
from searchengine.search import SearchEngine, has_code  # noqa: E402
from searchengine.search.engine import open_store, resolve_embedder  # noqa: E402
from searchengine.search.fusion import rrf  # noqa: E402
from searchengine.search.plan import vector_confidence  # noqa: E402

GRID = {
    "k": [20, 60],
    "FULL": [1.0, 3.0],
    "CODE": [1.0, 3.0],
    "WEAK": [1.0, 0.2],
    "ALWAYS": [0, 1],
    "SENTENCE": [1.0, 0.3],
    "CATALOGUE": [1.0, 0.5],
}
NEUTRAL = {"k": 60, "ALWAYS": 0}


def record(name: str, index: Path, datasets: Path, step: int) -> list[tuple[str, list[dict]]]:
    """Every text query's legs, as the engine runs them with default settings."""
    store = open_store(index)
    cache = TextCache(resolve_embedder(store, None), 10**6)
    engine = SearchEngine(store, cache)
    folder, records = load_annotations(
        datasets / name.replace("fashion_meta", "fashion_products_3k") / "annotations.jsonl"
    )
    out = []
    for qs in query_sets(folder, records):
        queries = [q for q in qs.queries if q.text][::step]
        texts = [parse_query(q.text).semantic_text for q in queries]
        for b in range(0, len(texts), 256):
            cache.embed_texts(texts[b : b + 256])
        rows = []
        for q in queries:
            parsed = parse_query(q.text)
            legs, sig, shares, _, looks = engine._run_legs(
                SearchRequest(q.text, limit=10), parsed, engine.vectors
            )
            kw, _, kshares, _, _ = engine._run_legs(
                SearchRequest(q.text, limit=10, mode="keyword"), parsed, None
            )
            ids = {i for hits in [*legs.values(), *kw.values()] for i, _ in hits}
            paths = {i: r.path for i, r in store.images.by_id(list(ids)).items()}
            relevant = {i for i in ids if paths.get(i) in q.relevant}
            rows.append(
                {
                    "legs": legs,
                    "shares": shares,
                    "vconf": {i: vector_confidence(v) for i, v in looks.items()},
                    "kw": kw.get("keyword", []),
                    "kshares": kshares,
                    "relevant": relevant,
                    "strong": sig.keyword_strong,
                    "looks": bool(legs.get("vector")),
                    "code": has_code(q.text),
                    "sentence": parsed.descriptive,
                    "text": q.text,
                }
            )
        if rows:
            out.append((qs.name, rows))
        print(f"  recorded {name}/{qs.name}: {len(rows)} queries", file=sys.stderr, flush=True)
    return out


def weights(r: dict, p: dict) -> dict[str, float]:
    vector, keyword = 1.0, p["FULL"] * (p["CODE"] if r["code"] else 1.0)
    if r["strong"] and (p["ALWAYS"] or not r["looks"]):
        vector *= p["WEAK"]
    elif not r["strong"] and r["sentence"]:
        keyword *= p["SENTENCE"]
    elif not r["strong"]:
        vector *= p["CATALOGUE"]
    return {"vector": vector, "keyword": keyword}


def confidence(shares: dict[int, float], p: dict, vconf: dict[int, float] | None = None) -> dict:
    """Each leg's per-hit confidence as the engine weighs it (the vector leg's by how far a hit
    stands out, when ``vconf`` is given)."""
    out = {"keyword": {i: 1.0 if s >= 1.0 else s * s / p["FULL"] for i, s in shares.items()}}
    if vconf is not None:
        out["vector"] = vconf
    return out


def r1(rows: list[dict], p: dict, which: str) -> float:
    hits = 0
    for r in rows:
        if which == "vector":
            ranked = [i for i, _ in r["legs"].get("vector", [])]
        elif which == "keyword":
            ranked = [f.id for f in rrf({"keyword": r["kw"]}, None, p["k"], confidence(r["kshares"], p))]
        else:
            conf = confidence(r["shares"], p, r["vconf"])
            ranked = [f.id for f in rrf(r["legs"], weights(r, p), p["k"], conf)]
        hits += bool(ranked) and ranked[0] in r["relevant"]
    return hits / len(rows)


def arguments(doc: str) -> tuple[list[tuple[str, Path, int]], Path]:
    """The command line of a bench over recorded legs: ``(name, index, step)`` per set, and
    the datasets folder."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("sets", nargs="+", help="NAME=INDEX_DIR[:STEP]")
    ap.add_argument(
        "--datasets", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "datasets"
    )
    args = ap.parse_args()
    out = []
    for spec in args.sets:
        name, rest = spec.split("=", 1)
        index, _, step = rest.partition(":")
        out.append((name, Path(index), int(step or 1)))
    return out, args.datasets


def main() -> None:
    specs, datasets = arguments(__doc__)
    sets = {name: record(name, index, datasets, step) for name, index, step in specs}
    combos = [dict(zip(GRID, v, strict=True)) for v in itertools.product(*GRID.values())]
    cells = [(n, qs) for n, found in sets.items() for qs, _ in found]
    rows = {(n, qs): r for n, found in sets.items() for qs, r in found}
    legs = {
        c: (r1(rows[c], combos[0], "vector"), r1(rows[c], {**combos[0], "k": 60}, "keyword")) for c in cells
    }
    fused = {(i, c): r1(rows[c], p, "fused") for i, p in enumerate(combos) for c in cells}

    def gap(i: int, c) -> float:
        return fused[(i, c)] - max(legs[c])

    def key(i: int, among) -> tuple:
        simple = sum(v == NEUTRAL.get(k, 1.0) for k, v in combos[i].items())
        return (
            round(min(gap(i, c) for c in among), 3),
            round(np.mean([fused[(i, c)] for c in among]), 3),
            simple,
        )

    print(
        "| set left out | query set | rules chosen on the others "
        "| fused R@1 | vector R@1 | keyword R@1 | fused - better leg |"
    )
    print("|---|---|---|---:|---:|---:|---:|")
    for held in sets:
        best = max(range(len(combos)), key=lambda i: key(i, [c for c in cells if c[0] != held]))
        for c in (c for c in cells if c[0] == held):
            v, k = legs[c]
            print(
                f"| {held} | {c[1]} | {combos[best]} "
                f"| {fused[(best, c)]:.3f} | {v:.3f} | {k:.3f} | {gap(best, c):+.3f} |"
            )
    best = max(range(len(combos)), key=lambda i: key(i, cells))
    print(f"\nchosen on all sets: {combos[best]}")
    for c in cells:
        print(
            f"  {c[0]}/{c[1]}: fused {fused[(best, c)]:.3f} "
            f"(better leg {max(legs[c]):.3f}, gap {gap(best, c):+.3f})"
        )


if __name__ == "__main__":
    main()
