"""How a keyword hit's share of the query's words is counted: plainly (the engine's rule,
searchengine.search.legs.coverage) or weighted by each word's IDF in the index, with
words the index never holds left out or kept. Fused and keyword-leg Recall@1 per set,
through the engine's own legs (recorded as bench/eval_fusion.py records them) and its
current fusion rules.

    python bench/eval_shares.py coco_mini=/work/evalidx/coco_mini:1 sroie_dev100=...:1 \\
        [--datasets ../shared/datasets]
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eval_fusion import arguments, record  # noqa: E402

from searchengine.query import parse_query  # noqa: E402
from searchengine.records import DEFAULT_RRF_K  # noqa: E402
from searchengine.search import plan  # noqa: E402
from searchengine.search.engine import open_store  # noqa: E402
from searchengine.search.fusion import rrf  # noqa: E402
from searchengine.text import WORD, fold  # noqa: E402

VARIANTS = ("plain", "idf", "idf, absent words left out", "plain, absent words left out")


def share(found: list[bool], idf: list[float], held: list[bool], variant: str) -> float:
    """One hit's share of the query's terms under ``variant``."""
    keep = [h or "absent" not in variant for h in held]
    weight = [w if variant.startswith("idf") else 1.0 for w in idf]
    total = sum(w for w, k in zip(weight, keep, strict=True) if k)
    got = sum(w for w, f, k in zip(weight, found, keep, strict=True) if f and k)
    return got / total if total else 0.0


def measure(store, rows: list[dict], text_of: dict) -> dict[str, tuple[float, float]]:
    n_docs = store.db.execute("SELECT count(*) FROM images").fetchone()[0]
    out = {v: [0, 0] for v in VARIANTS}
    for r in rows:
        terms = [t for t in parse_query(r["text"]).positive if t.content] or parse_query(r["text"]).positive
        df = [text_of["df"](" ".join(t.tokens)) for t in terms]
        idf = [math.log((n_docs - d + 0.5) / (d + 0.5) + 1) for d in df]
        ids = {i for hits in [r["legs"].get("keyword", []), r["kw"]] for i, _ in hits}
        docs = text_of["docs"](ids)
        for variant in VARIANTS:
            shares = {}
            for i in ids:
                found = [f" {fold(' '.join(t.tokens))} " in docs.get(i, " ") for t in terms]
                shares[i] = share(found, idf, [d > 0 for d in df], variant)
            mine = {i: shares[i] for i, _ in r["legs"].get("keyword", [])}
            signals = plan.Signals(
                "hybrid", True, max(mine.values(), default=0.0) >= plan.STRONG_COVERAGE, r["sentence"]
            )
            conf = {"keyword": {i: plan.keyword_confidence(s) for i, s in shares.items()}}
            both = {**conf, "vector": r["vconf"]}
            fused = rrf(r["legs"], plan.leg_weights(signals).as_dict(), DEFAULT_RRF_K, confidence=both)
            alone = rrf({"keyword": r["kw"]}, None, DEFAULT_RRF_K, confidence=conf) if r["kw"] else []
            out[variant][0] += bool(fused) and fused[0].id in r["relevant"]
            out[variant][1] += bool(alone) and alone[0].id in r["relevant"]
    return {v: (a / len(rows), b / len(rows)) for v, (a, b) in out.items()}


def texts(store):
    """Document frequencies and folded keyword documents, cached."""
    df_cache: dict[str, int] = {}
    doc_cache: dict[int, str] = {}

    def df(phrase: str) -> int:
        if phrase not in df_cache:
            sql = "SELECT count(*) FROM search_fts WHERE search_fts MATCH ?"
            df_cache[phrase] = store.db.execute(sql, ['"' + phrase.replace('"', '""') + '"']).fetchone()[0]
        return df_cache[phrase]

    def docs(ids) -> dict[int, str]:
        need = [i for i in ids if i not in doc_cache]
        for i, d in store.text.documents(need).items():
            doc_cache[i] = f" {' '.join(WORD.findall(fold(d)))} "
        return doc_cache

    return {"df": df, "docs": docs}


def main() -> None:
    specs, datasets = arguments(__doc__)
    print(
        "| set | queries | vector R@1 | " + " | ".join(f"{v}: fused / keyword R@1" for v in VARIANTS) + " |"
    )
    print("|---|---:|---:|" + "---:|" * len(VARIANTS))
    for name, index, step in specs:
        store = open_store(index)
        for qs, rows in record(name, index, datasets, step):
            vector = sum(
                bool(r["legs"].get("vector")) and r["legs"]["vector"][0][0] in r["relevant"] for r in rows
            )
            got = measure(store, rows, texts(store))
            cells = " | ".join(f"{f:.3f} / {k:.3f}" for f, k in got.values())
            print(f"| {name} {qs} | {len(rows)} | {vector / len(rows):.3f} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
