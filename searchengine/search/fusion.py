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


def rrf(
    legs: Mapping[str, Ranked],
    weights: Mapping[str, float] | None = None,
    k: int = 60,
    confidence: Mapping[str, Mapping[int, float]] | None = None,
) -> list[Fused]:
    """Reciprocal Rank Fusion: score = sum over legs of weight x confidence / (k + rank).

    :param k: damping constant (60 in Cormack et al. 2009); larger flattens the ranks.
    :param weights: per-leg weight, 1.0 when missing.
    :param confidence: per leg, per image, a factor in [0, 1] (1.0 when missing), such
        as the share of the query's words a keyword hit contains.
    """
    if k <= 0:
        raise ValueError(f"RRF k must be positive, got {k}")
    weights, confidence = weights or {}, confidence or {}

    def part(leg: str, image_id: int, rank: int) -> float:
        return weights.get(leg, 1.0) * confidence.get(leg, {}).get(image_id, 1.0) / (k + rank)

    found = _collect(legs)
    return _order(
        [Fused(i, sum(part(leg, i, ls.rank) for leg, ls in hit.items()), hit) for i, hit in found.items()]
    )


def weighted(
    legs: Mapping[str, Ranked],
    weights: Mapping[str, float] | None = None,
    confidence: Mapping[str, Mapping[int, float]] | None = None,
) -> list[Fused]:
    """Weighted sum of min-max normalised scores (0 for a leg that did not find the image).

    Each leg's scores are scaled to [0, 1] over its own list, so cosine similarities
    and BM25 scores become comparable; a leg whose scores are all equal gives 1.
    ``confidence`` scales an image's normalised score per leg, as in :func:`rrf`.
    """
    weights, confidence = weights or {}, confidence or {}
    norm: dict[str, dict[int, float]] = {}
    for leg, ranked in legs.items():
        if not ranked:
            continue
        scores = [s for _, s in ranked]
        lo, hi = min(scores), max(scores)
        norm[leg] = {i: (s - lo) / (hi - lo) if hi > lo else 1.0 for i, s in ranked}
    found = _collect(legs)

    def part(leg: str, image_id: int) -> float:
        return weights.get(leg, 1.0) * confidence.get(leg, {}).get(image_id, 1.0) * norm[leg][image_id]

    return _order([Fused(i, sum(part(leg, i) for leg in hit), hit) for i, hit in found.items()])
