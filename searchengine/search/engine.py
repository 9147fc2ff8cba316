"""The search engine: one :class:`SearchRequest` in, one hydrated :class:`SearchPage` out.

``run`` validates the request, runs the legs (:mod:`.legs`), asks the plan
(:mod:`.plan`) how they weigh, fuses them (:mod:`.fusion`) and hydrates the page
(:mod:`.hydrate`). Both edges, the evaluation harness and the benchmarks call it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from searchengine.errors import BadQuery, IndexNotBuilt, NotFound
from searchengine.models.base import Embedder
from searchengine.models.registry import create_embedder
from searchengine.query import ParsedQuery, parse_query
from searchengine.records import FUSIONS, MODES, EncoderId, SearchPage, SearchRequest
from searchengine.search import cutoff as calibration
from searchengine.search import legs as leg
from searchengine.search import plan
from searchengine.search.fusion import rrf, weighted
from searchengine.search.hydrate import facets, hydrate
from searchengine.search.reasons import Asked
from searchengine.search.request import check_filters
from searchengine.store.db import DB_NAME, Store, mismatch_error
from searchengine.store.vectors import VectorCache, VectorIndex


def open_store(index_dir: Path, create: bool = False) -> Store:
    """Open the index in ``index_dir``.

    :raises IndexNotBuilt: there is none and ``create`` is false.
    """
    if not create and not (Path(index_dir) / DB_NAME).is_file():
        raise IndexNotBuilt(
            f"no index at {index_dir}: build one with 'searchengine index FOLDER' "
            "(or point --index / SE_INDEX at an existing one)"
        )
    return Store(index_dir)


def resolve_embedder(store: Store, spec: str | None) -> Embedder:
    """Return the encoder for querying ``store``: its own, or ``spec`` if it matches.

    :raises IndexNotBuilt: the index has no encoder yet (nothing indexed).
    :raises IndexMismatch: ``spec`` names another encoder than the index's.
    """
    recorded = store.encoder()
    if recorded is None:
        raise IndexNotBuilt(f"the index at {store.dir} is empty: run 'searchengine index FOLDER'")
    embedder = create_embedder(spec or recorded.spec, store.dir)
    if embedder.id != recorded:
        raise mismatch_error(store.dir, recorded, embedder.id)
    return embedder


def validate(request: SearchRequest) -> None:
    """Refuse a request the engine cannot answer, with the reason.

    :raises BadQuery: unknown mode or fusion, bad paging, or nothing to search for.
    """
    if request.mode not in MODES:
        raise BadQuery(f"unknown search mode {request.mode!r}; choose {', '.join(MODES)}")
    if request.fusion not in FUSIONS:
        raise BadQuery(f"unknown fusion {request.fusion!r}; choose {' or '.join(FUSIONS)}")
    if request.limit <= 0 or request.offset < 0:
        raise BadQuery(f"limit must be positive and offset not negative ({request.limit}, {request.offset})")
    if request.rrf_k <= 0:
        raise BadQuery(f"rrf_k must be positive, got {request.rrf_k}")
    if request.browse and not (request.filters is not None and request.filters.active):
        raise BadQuery("the query is empty: describe what to find, give an image, or filter")
    if not request.has_text and request.by_image and request.mode == "keyword":
        raise BadQuery("an image query needs the vector leg: use --mode hybrid or vector")


class SearchEngine:
    """Answers requests from a store, its FAISS index and its encoder."""

    def __init__(self, store: Store, embedder: Embedder | None, vectors: VectorCache | None = None) -> None:
        """:param embedder: None for a keyword-only engine (no model, no FAISS needed).
        :param vectors: a FAISS cache shared with other engines on the same index (the
            web app makes one engine per thread, each with its own SQLite connection).
        """
        recorded = store.encoder()
        if embedder is not None and recorded is not None and recorded != embedder.id:
            raise mismatch_error(store.dir, recorded, embedder.id)
        self.store, self.embedder = store, embedder
        self._cache = vectors or (VectorCache(embedder.id.dim) if embedder else None)

    @property
    def encoder(self) -> EncoderId | None:
        return self.embedder.id if self.embedder else self.store.encoder()

    @property
    def vectors(self) -> VectorIndex:
        """The FAISS index, reloaded when the store changed since it was loaded."""
        return self._cache.get(self.store)

    def calibration(self, vectors: VectorIndex | None = None) -> calibration.Calibration:
        """Return the relevance calibration of ``vectors`` (default: the current index)."""
        return calibration.calibration(self.store, self.embedder, vectors or self.vectors)

    def cutoff(self, vectors: VectorIndex | None = None) -> float:
        """Return the evidence a text query must reach in ``vectors`` (default: the current index)."""
        return self.calibration(vectors).threshold

    def query(self, text: str | None = None, **fields) -> SearchPage:
        """Shorthand for ``run(SearchRequest(text=text, **fields))``."""
        return self.run(SearchRequest(text=text, **fields))

    def run(self, request: SearchRequest) -> SearchPage:
        """Search by meaning and by words at once, fused into one explained, hydrated page.

        :raises BadQuery: the request cannot be answered as asked (see :func:`validate`), or a
            filter names a field no image has (see :func:`.request.check_filters`).
        :raises NotFound: ``like`` names no searchable image; an unknown collection or folder.
        """
        validate(request)
        check_filters(self.store, request.filters)  # a typo is an error, not an empty page
        if request.browse:
            return self._browse(request)
        if self.embedder is None and request.needs_encoder:
            raise BadQuery(f"{request.mode} search needs the index's encoder; use --mode keyword")
        if request.like is not None:
            rec = self.store.images.by_id([request.like]).get(request.like)
            if rec is None or rec.status != "ok":
                raise NotFound(f"no searchable indexed image with id {request.like}")
        parsed = parse_query(request.text) if request.has_text else None
        vectors = self.vectors if request.mode != "keyword" else None
        legs, signals, shares, cut, looks_like = self._run_legs(request, parsed, vectors)
        weights = plan.leg_weights(signals, request.vector_weight, request.keyword_weight)
        confidence = {"keyword": {i: plan.keyword_confidence(s) for i, s in shares.items()}}
        if request.min_score is None and request.by_image != request.has_text:
            # measured hits count by how far they stand out; a cosine floor (and a picture with
            # words, which has no null) keeps the vector leg's plain rank order
            confidence["vector"] = {i: plan.vector_confidence(v) for i, v in looks_like.items()}
        fuse = rrf if request.fusion == "rrf" else weighted
        args = (request.rrf_k,) if request.fusion == "rrf" else ()
        fused = fuse(legs, weights.as_dict(), *args, confidence=confidence)
        window = fused[request.offset : request.offset + request.limit]
        relevance = _relevance(window, looks_like, shares, weights)

        def why(f) -> dict | None:
            if not request.explain:
                return None
            return {
                name: {
                    "rank": ls.rank,
                    "score": ls.score,
                    "coverage": round(shares[f.id], 3) if name == "keyword" and f.id in shares else None,
                }
                for name, ls in f.legs.items()
            }

        ids = tuple(f.id for f in fused)
        return SearchPage(
            hits=hydrate(
                self.store,
                [(f.id, f.score, why(f)) for f in window],
                request.offset + 1,
                relevance,
                Asked(parsed, request.by_image, request.mode != "vector", {f.id: f.legs for f in window}),
            ),
            total=len(fused),
            offset=request.offset,
            limit=request.limit,
            cutoff=cut,
            mode=request.mode,
            fusion=request.fusion,
            ids=ids,
            facets=facets(self.store, ids, request.facets, request.facet_top),
            encoder=self.encoder.spec if self.encoder else None,
            generation=vectors.generation if vectors is not None else None,
        )

    def _run_legs(self, request: SearchRequest, parsed: ParsedQuery | None, vectors: VectorIndex | None):
        """Run the legs the mode asks for; returns ``(legs, signals, keyword shares, cutoff,
        vector evidence)``, the last as each vector hit's evidence in [0, 1] (see :func:`_relevance`).

        With default settings a query's vector hits count only when the best of them stands
        out (:mod:`.cutoff`: a text query from what unrelated queries find, an image query
        as one of the hit's nearest neighbours), and then only the hits that do. In hybrid
        mode a query that no image looks like finds only keyword hits that stand on their
        own (:func:`.plan.words_suffice`). ``min_score`` replaces those tests with a cosine floor.
        """
        depth = plan.depth(request.offset, request.limit)
        legs: dict[str, list[tuple[int, float]]] = {}
        gated = request.min_score is None
        measured, looks, threshold, looks_like = False, False, -1.0, {}
        if vectors is not None:
            qvec = leg.query_vector(self.embedder, self.store, parsed, request.image, request.like)
            hits = leg.vector_leg(
                self.store, vectors, qvec, depth + (request.like is not None), request.filters, parsed
            )
            hits = [(i, s) for i, s in hits if i != request.like]
            evidence, threshold, looks_like = self._measure(request, vectors, hits)
            measured = evidence is not None
            if measured:
                best = evidence[: calibration.CANDIDATES]  # the window the null was measured on
                looks = len(best) > 0 and float(best.max()) >= threshold
            else:
                looks = bool(hits)
            if request.min_score is not None:
                legs["vector"] = [(i, s) for i, s in hits if s >= request.min_score]
            elif measured:
                legs["vector"] = [h for h, e in zip(hits, evidence, strict=True) if e >= 0] if looks else []
            else:
                legs["vector"] = hits
        shares: dict[int, float] = {}
        if request.mode != "vector" and parsed is not None:
            found = leg.keyword_leg(self.store, parsed, depth, request.filters)
            legs["keyword"] = [(i, s) for i, s in found if i != request.like]
            shares = leg.coverage(self.store, parsed, [i for i, _ in legs["keyword"]])
        has_code = request.has_text and plan.has_code(request.text)
        best_share = max(shares.values(), default=0.0)
        if gated and measured and not looks and not plan.words_suffice(best_share, has_code):
            legs["keyword"], shares = [], {}  # nothing looks like it, no text says it
        signals = plan.Signals(
            request.mode,
            parsed is not None,
            keyword_strong=best_share >= plan.STRONG_COVERAGE,
            descriptive=parsed is None or parsed.descriptive,
        )
        if request.min_score is not None:
            cut = request.min_score
        else:
            cut = threshold if measured and not request.by_image else -1.0  # a picture's test is no figure
        return legs, signals, shares, cut, looks_like

    def _measure(self, request: SearchRequest, vectors: VectorIndex, hits: list[tuple[int, float]]):
        """How far each vector hit stands out (:mod:`.cutoff`): ``(evidence, threshold,
        looks_like)``, the evidence the best hit must reach and each hit's evidence in
        [0, 1]; evidence is None (unmeasured) for an empty index, and for a picture with words
        (neither null holds for their blend: the picture says what is there, the words steer).
        A hit whose vector is gone (removed since the FAISS index was loaded) has no evidence."""
        if vectors.ntotal == 0 or request.by_image == request.has_text:
            return None, -1.0, {i: max(0.0, s) for i, s in hits}
        ids = [i for i, _ in hits]
        scores = np.array([s for _, s in hits], dtype=np.float32)
        vecs, found = self.store.embeddings.of_many(ids, self.embedder.id.dim)
        if request.by_image:  # the query is among the hit's nearest neighbours
            near = calibration.neighbourhood(self.store, vectors, self.embedder)
            evidence, radius = near.evidence(ids, scores, vecs, request.like)
            evidence[np.abs(evidence) < calibration.TIE] = 0.0  # a copy among copies is a neighbour
            threshold = 0.0
        else:  # the query looks more like the hit than anything unrelated does
            cal = self.calibration(vectors)
            evidence = cal.evidence(scores, vecs)
            threshold, margin = cal.threshold, max(cal.margin, 0.0)  # a tiny gallery's can be <= 0
        if not ids:
            return evidence, threshold, {}
        evidence[~found] = -np.inf
        # every hit is measured against the baseline of the query's best hit (its null, or its
        # radius), so the figure follows the cosine order the leg ranks by
        best = int(np.argmax(evidence[: calibration.CANDIDATES]))
        if not np.isfinite(evidence[best]):
            return evidence, threshold, dict.fromkeys(ids, 0.0)
        above = np.where(found, scores - (scores[best] - evidence[best]), 0.0).clip(min=0.0)
        if request.by_image:  # 1: the very image
            share = above / max(1.0 - float(radius[best]), 1e-6)
        else:  # 0.5: as far as the best unrelated query stands out
            share = above / np.maximum(above + margin, 1e-9)
        return evidence, threshold, dict(zip(ids, share.astype(float).tolist(), strict=True))

    def _browse(self, request: SearchRequest) -> SearchPage:
        """No query, only filters: every image that passes them, by path (a catalogue listing)."""
        ids = tuple(self.store.images.filtered_ids(request.filters).tolist())
        window = ids[request.offset : request.offset + request.limit]
        return SearchPage(
            hits=hydrate(
                self.store, [(i, 1.0, {} if request.explain else None) for i in window], request.offset + 1
            ),
            total=len(ids),
            offset=request.offset,
            limit=request.limit,
            cutoff=-1.0,
            mode="browse",
            fusion="none",
            ids=ids,
            facets=facets(self.store, ids, request.facets, request.facet_top),
            encoder=self.encoder.spec if self.encoder else None,
        )


def _relevance(window, looks_like: dict[int, float], shares: dict[int, float], weights) -> dict[int, float]:
    """Each hit's relevance in [0, 1], comparable across a page: the evidence the fusion
    weighs (with ``min_score``, or for a picture with words, the fusion ranks the vector
    leg by rank alone), each leg's times its weight (at most 1), combined as independent evidence
    (either may say so). The vector leg's is how far the hit's cosine stands above the
    null of the query's best hit, ``e / (e + margin)``: 0.5 when it stands out as far as
    the best unrelated query does (:mod:`.cutoff`); for an image query, how far its cosine
    stands from the best hit's neighbourhood radius toward 1 (the same picture); the cosine
    for a picture with words. Both follow the vector leg's cosine order. The keyword
    leg's is :func:`.plan.keyword_confidence` (the share of the query's terms, squared)."""
    wv, wk = min(1.0, weights.vector), min(1.0, weights.keyword)
    out = {}
    for f in window:
        v = min(1.0, max(0.0, looks_like.get(f.id, 0.0))) if "vector" in f.legs else 0.0
        k = plan.keyword_confidence(min(1.0, max(0.0, shares.get(f.id, 0.0))))
        out[f.id] = round(1.0 - (1.0 - wv * v) * (1.0 - wk * k), 3)
    return out
