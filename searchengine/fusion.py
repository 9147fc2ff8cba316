"""Fuse ranked lists from several legs (vector, keyword) into one explained ranking.

Pure functions over ``{leg: [(image_id, score), ...]}`` lists, best first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

Ranked = Sequence[tuple[int, float]]


@dataclass(frozen=True, slots=True)
class LegScore:
    """Where one leg placed an image: 1-based rank and the leg's own score."""

    rank: int
    score: float


@dataclass(frozen=True, slots=True)
class Fused:
    """One image in the fused ranking, with every leg that found it."""

    id: int
    score: float
    legs: dict[str, LegScore] = field(default_factory=dict)


def _collect(legs: Mapping[str, Ranked]) -> dict[int, dict[str, LegScore]]:
    found: dict[int, dict[str, LegScore]] = {}
    for leg, ranked in legs.items():
        for rank, (image_id, score) in enumerate(ranked, start=1):
            found.setdefault(image_id, {})[leg] = LegScore(rank, float(score))
    return found


def _order(items: list[Fused]) -> list[Fused]:
    # ties broken by id, so pages never shuffle between calls
    return sorted(items, key=lambda f: (-f.score, f.id))


def rrf(legs: Mapping[str, Ranked], weights: Mapping[str, float] | None = None, k: int = 60) -> list[Fused]:
    """Reciprocal Rank Fusion: score = sum over legs of weight / (k + rank).

    :param k: damping constant (60 in Cormack et al. 2009); larger flattens the ranks.
    :param weights: per-leg weight, 1.0 when missing.
    """
    if k <= 0:
        raise ValueError(f"RRF k must be positive, got {k}")
    weights = weights or {}
    found = _collect(legs)
    return _order(
        [
            Fused(i, sum(weights.get(leg, 1.0) / (k + ls.rank) for leg, ls in hit.items()), hit)
            for i, hit in found.items()
        ]
    )


def weighted(legs: Mapping[str, Ranked], weights: Mapping[str, float] | None = None) -> list[Fused]:
    """Weighted sum of min-max normalised scores (0 for a leg that did not find the image).

    Each leg's scores are scaled to [0, 1] over its own list, so cosine similarities
    and BM25 scores become comparable; a leg whose scores are all equal gives 1.
    """
    weights = weights or {}
    norm: dict[str, dict[int, float]] = {}
    for leg, ranked in legs.items():
        if not ranked:
            continue
        scores = [s for _, s in ranked]
        lo, hi = min(scores), max(scores)
        norm[leg] = {i: (s - lo) / (hi - lo) if hi > lo else 1.0 for i, s in ranked}
    found = _collect(legs)
    return _order(
        [Fused(i, sum(weights.get(leg, 1.0) * norm[leg][i] for leg in hit), hit) for i, hit in found.items()]
    )
