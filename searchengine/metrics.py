"""Retrieval metrics: the one implementation the harness, the benchmarks and tuning share."""

from __future__ import annotations

import math
from collections.abc import Sequence

KS = (1, 5, 10)


def rank_metrics(first_ranks: Sequence[int | None]) -> dict[str, float]:
    """Recall@1/5/10 and MRR from each query's 1-based rank of its first relevant result.

    :param first_ranks: one per query; None when no relevant result was returned.
    """
    n = len(first_ranks)
    out = {f"R@{k}": 0.0 for k in KS} | {"MRR": 0.0}
    if not n:
        return out
    for k in KS:
        out[f"R@{k}"] = sum(1 for r in first_ranks if r is not None and r <= k) / n
    out["MRR"] = sum(1.0 / r for r in first_ranks if r is not None) / n
    return out


def ranking_metrics(ranked: Sequence[Sequence[str]], relevant: Sequence[frozenset[str]]) -> dict[str, float]:
    """Recall@1/5/10 (a relevant image in the top k), MRR and nDCG@10 (binary gains).

    :param ranked: per query, the returned paths best first (MRR counts only these).
    :param relevant: per query, the relevant paths.
    """
    firsts, ndcg = [], 0.0
    for got, rel in zip(ranked, relevant, strict=True):
        hits = [p in rel for p in got]
        firsts.append(next((i + 1 for i, h in enumerate(hits) if h), None))
        dcg = sum(1.0 / math.log2(i + 2) for i, h in enumerate(hits[:10]) if h)
        ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(rel), 10)))
        ndcg += dcg / ideal if ideal else 0.0
    return {**rank_metrics(firsts), "nDCG@10": ndcg / len(ranked) if ranked else 0.0}
