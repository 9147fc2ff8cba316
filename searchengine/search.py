"""Text-to-image search over one index: the core the CLI and the web app share."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from searchengine.config import Settings
from searchengine.errors import IndexNotBuilt, SearchEngineError
from searchengine.fusion import rrf, weighted
from searchengine.models.base import Embedder
from searchengine.models.registry import create_embedder
from searchengine.query import NEGATIVE_STRENGTH, ParsedQuery, parse_query
from searchengine.records import EncoderId, Filters, IndexStats, SearchHit
from searchengine.store.db import DB_NAME, Store, mismatch_error
from searchengine.store.vectors import VectorCache, VectorIndex
from searchengine.text import fold


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


def fts_query(text: str) -> str:
    """Turn free text into a safe FTS5 expression (see :mod:`searchengine.query`).

    Words are OR'ed and ranked by BM25; common words ("a", "the", "photo of") are
    dropped unless quoted or alone. A word that the tokenizer splits in several tokens
    (``QX-7781-B``, ``25/12/2018``, ``CS00082662``: letters and digits are split as in
    the index) becomes a phrase of them, so codes and dates match exactly; FTS5
    operators in the input have no effect.

    :raises SearchEngineError: the text has no searchable word.
    """
    match = parse_query(text).fts_match()
    if match is None:
        raise SearchEngineError("the query has no searchable word")
    return match


def keyword_search(store: Store, query: str, k: int = 10) -> list[SearchHit]:
    """Match ``query``'s words in names, folders, captions, tags and OCR text (BM25).

    Needs no encoder, so an index can be searched by keyword even where its
    encoder's weights are not available.

    :raises SearchEngineError: no searchable word in the query, or bad ``k``.
    """
    if k <= 0:
        raise SearchEngineError(f"k must be positive, got {k}")
    found = store.keyword_search(fts_query(query), k)
    records = store.images_by_id(i for i, _ in found)
    hits: list[SearchHit] = []
    for image_id, score in found:
        rec = records[image_id]
        hits.append(SearchHit(rec.id, rec.path, score, len(hits) + 1, rec.width, rec.height, rec.format))
    return hits


#: Queries about things photo collections rarely show; their best cosine in an index
#: is what "nothing relevant" scores there (see SearchEngine.cutoff).
UNRELATED = (
    "the derivation of a quantum field theory propagator",
    "an abstract essay on the philosophy of justice",
    "irregular verb conjugation tables in Latin grammar",
    "the smell of ozone after a thunderstorm",
    "a tax law amendment passed in 1997",
    "the sound of a cello playing a minor scale",
    "a proof that the square root of two is irrational",
    "the feeling of nostalgia on a Sunday evening",
    "compiler optimisation of tail recursive functions",
    "the taste of bitter almonds",
    "a debate about monetary policy and inflation targets",
    "the history of the Byzantine calendar reform",
    "an algorithm for distributed consensus under network partitions",
    "a lullaby hummed quietly in the dark",
    "the grammar of subjunctive clauses",
    "the statistical mechanics of spin glasses",
    "insurance policy clauses about liability",
    "the concept of infinity in set theory",
    "a password reset email confirmation",
    "the melody of a forgotten folk song",
)


CUTOFF_METHOD = "max-unrelated-v1"
#: Vector-leg weight when even its best hit scores below the index's cutoff.
WEAK_VECTOR_WEIGHT = 0.2
#: Vector-leg weight for catalogue-style phrases that no image's text holds whole.
CATALOGUE_VECTOR_WEIGHT = 0.5
#: A keyword hit holding this share of the query's terms is strong evidence.
STRONG_COVERAGE = 0.75
#: Keyword-leg weight when no hit is strong evidence.
WEAK_KEYWORD_WEIGHT = 0.3
#: Keyword-leg confidence multiplier for a hit that contains every query term.
FULL_MATCH_BOOST = 3.0
_TOKEN = re.compile(r"[^\W_]+")

#: A word with letters and digits (QX-7781-B, INV2018, X2) or digit groups (25/12/2018).
_CODE = re.compile(r"^(?=[^\s]*\d)(?=[^\s]*[^\W\d_])[\w./#-]{2,}$|^\d+([-/.]\d+)+$")
#: Keyword-leg weight multiplier when the query holds a code.
CODE_BOOST = 3.0


def has_code(text: str) -> bool:
    """Tell whether a query holds a code-like word (SKU, invoice number, date)."""
    return any(_CODE.match(w.strip("\"'.,;:()")) for w in text.split())


@dataclass(frozen=True, slots=True)
class SearchPage:
    """One page of a fused search, with what produced it."""

    hits: list[SearchHit]
    total: int
    offset: int
    limit: int
    cutoff: float
    mode: str
    fusion: str
    ids: list[int] = ()  # every id of the ranking, in order (the result set, for facets)


class SearchEngine:
    """Answers text queries from a store, its FAISS index and its encoder."""

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

    @classmethod
    def open(cls, settings: Settings, model: str | None = None) -> SearchEngine:
        """Open the index at ``settings.index_path`` with its recorded (or the given) encoder."""
        store = open_store(settings.index_path)
        return cls(store, resolve_embedder(store, model))

    @property
    def encoder(self) -> EncoderId | None:
        return self.embedder.id if self.embedder else self.store.encoder()

    @property
    def vectors(self) -> VectorIndex:
        """The FAISS index, reloaded when the store changed since it was loaded."""
        return self._cache.get(self.store)

    def search(self, query: str, k: int = 10, mode: str = "vector") -> list[SearchHit]:
        """Return the ``k`` best images for ``query``, best first.

        :param mode: ``vector`` (cosine of text and image embeddings) or ``keyword``
            (BM25 over file name, folder, caption, tags and OCR text).
        :raises SearchEngineError: empty query, non-positive ``k`` or unknown mode.
        """
        if mode == "keyword":
            return self.keyword_search(query, k)
        if mode != "vector":
            raise SearchEngineError(f"unknown search mode {mode!r}; choose vector or keyword")
        return self.search_many([query], k)[0]

    def keyword_search(self, query: str, k: int = 10) -> list[SearchHit]:
        """Match ``query``'s words in names, folders, captions, tags and OCR text (BM25)."""
        return keyword_search(self.store, query, k)

    def search_many(self, queries: list[str], k: int = 10) -> list[list[SearchHit]]:
        """Answer several queries with one batched text encoding (evaluation, bulk use)."""
        cleaned = [q.strip() if isinstance(q, str) else "" for q in queries]
        if not cleaned or not all(cleaned):
            raise SearchEngineError("the query is empty: describe what to find")
        if k <= 0:
            raise SearchEngineError(f"k must be positive, got {k}")
        scores, ids = self.vectors.search(self.embedder.embed_texts(cleaned), k)
        records = self.store.images_by_id({int(i) for i in ids.ravel() if i >= 0})
        out = []
        for row_ids, row_scores in zip(ids, scores, strict=True):
            hits: list[SearchHit] = []
            for image_id, score in zip(row_ids, row_scores, strict=True):
                rec = records.get(int(image_id))
                if rec is None:  # empty slot, or deleted since the vectors were loaded
                    continue
                hits.append(
                    SearchHit(
                        rec.id,
                        rec.path,
                        float(score),
                        len(hits) + 1,
                        rec.width,
                        rec.height,
                        rec.format,
                    )
                )
            out.append(hits)
        return out

    # -- hybrid search -------------------------------------------------------------
    def cutoff(self) -> float:
        """Return this index's calibrated cosine threshold for "relevant" (cached per generation).

        The top-1 cosine of queries about things photos rarely show (``UNRELATED``) is
        what "nothing relevant" scores in this index with this encoder; a vector hit
        must reach the best of those.
        """
        vectors = self.vectors
        key = {"generation": vectors.generation, "encoder": self.encoder.spec, "method": CUTOFF_METHOD}

        def compute() -> float:
            cached = self.store.get_meta("cutoff")
            if cached:
                data = json.loads(cached)
                if all(data.get(k) == v for k, v in key.items()):
                    return float(data["threshold"])
            if vectors.ntotal == 0:
                return 1.0
            scores, _ = vectors.search(self.embedder.embed_texts(list(UNRELATED)), 1)
            threshold = float(scores[:, 0].max())
            # best effort: while an index run holds the write lock, keep it in memory only
            self.store.set_meta("cutoff", json.dumps({**key, "threshold": threshold}), wait=False)
            return threshold

        return self._cache.memo(("cutoff", self.encoder.spec), compute)

    def query(
        self,
        text: str | None = None,
        *,
        image: Image.Image | None = None,
        like: int | None = None,
        limit: int = 10,
        offset: int = 0,
        mode: str = "hybrid",
        fusion: str = "rrf",
        rrf_k: int = 60,
        weights: dict[str, float] | None = None,
        filters: Filters | None = None,
        min_score: float | None = None,
    ) -> SearchPage:
        """Search by meaning and by words at once, fused into one explained ranking.

        :param text: the query, with operators (:mod:`searchengine.query`): quoted
            phrases must match, ``-term`` pushes down, ``W:term`` weighs a word.
        :param image: an image to find similar ones to (alone or with ``text``:
            "like this, but red").
        :param like: the id of an indexed image to find similar ones to (it is left out).
        :param mode: ``hybrid`` (both legs fused), ``vector`` or ``keyword``.
        :param fusion: ``rrf`` (Reciprocal Rank Fusion with ``rrf_k``) or ``weighted``
            (weighted sum of min-max normalised leg scores).
        :param weights: per-leg weights, e.g. ``{"vector": 1.0, "keyword": 2.0}``.
        :param filters: restrictions on stored fields, applied inside each leg, so a
            filtered query still returns ``limit`` hits when that many pass.
        :param min_score: cosine a vector hit must reach; None uses the calibrated
            :meth:`cutoff` for text queries (none for image queries); negative disables.
        :raises SearchEngineError: bad mode, fusion, limit, offset, unknown ``like`` id,
            or nothing to search for.
        """
        if mode not in ("hybrid", "vector", "keyword"):
            raise SearchEngineError(f"unknown search mode {mode!r}; choose hybrid, vector or keyword")
        if fusion not in ("rrf", "weighted"):
            raise SearchEngineError(f"unknown fusion {fusion!r}; choose rrf or weighted")
        if limit <= 0 or offset < 0:
            raise SearchEngineError(f"limit must be positive and offset not negative ({limit}, {offset})")
        if rrf_k <= 0:
            raise SearchEngineError(f"rrf_k must be positive, got {rrf_k}")
        has_text = bool(text and text.strip())
        if not has_text and image is None and like is None:
            if filters is not None and filters.active:
                return self._browse(filters, limit, offset)
            raise SearchEngineError("the query is empty: describe what to find, give an image, or filter")
        if self.embedder is None and mode != "keyword":
            raise SearchEngineError(f"{mode} search needs the index's encoder; use --mode keyword")
        if not has_text and mode == "keyword":
            raise SearchEngineError("an image query needs the vector leg: use --mode hybrid or vector")
        parsed = parse_query(text) if has_text else None
        depth = 100 * (1 + (offset + limit - 1) // 100)  # the same for every page within it
        by_image = image is not None or like is not None
        if min_score is not None:
            threshold = min_score
        else:
            threshold = -1.0 if mode == "keyword" or by_image else self.cutoff()
        legs: dict[str, list[tuple[int, float]]] = {}
        weights = {"vector": 1.0, "keyword": 1.0, **(weights or {})}
        vector_strong = keyword_strong = False
        coverage: dict[int, float] = {}
        if mode in ("hybrid", "vector"):
            qvec = self._query_vector(parsed, image, like)
            hits = self._vector_leg(qvec, depth + (like is not None), filters, parsed)
            legs["vector"] = [(i, s) for i, s in hits if s >= threshold and i != like]
            vector_strong = by_image or (bool(hits) and hits[0][1] >= self.cutoff())
        if mode in ("hybrid", "keyword") and parsed is not None:
            match = parsed.fts_match()
            legs["keyword"] = self.store.keyword_search(match, depth, filters) if match else []
            if like is not None:
                legs["keyword"] = [(i, s) for i, s in legs["keyword"] if i != like]
        if has_text and has_code(text):  # exact codes are what the keyword leg is for
            weights["keyword"] *= CODE_BOOST
        confidence = {}
        if parsed is not None and legs.get("keyword"):
            coverage = self._coverage(parsed, [i for i, _ in legs["keyword"]])
            confidence["keyword"] = {
                i: share**2 * (FULL_MATCH_BOOST if share == 1.0 else 1.0) for i, share in coverage.items()
            }
            keyword_strong = max(confidence["keyword"].values()) >= STRONG_COVERAGE**2
        if mode == "hybrid" and keyword_strong and not vector_strong:
            # no image looks like the text, but some hold (nearly) all of its words (a
            # name, a code, an invoice line): the words decide, vectors break ties
            weights["vector"] *= WEAK_VECTOR_WEIGHT
        elif mode == "hybrid" and not keyword_strong and parsed is not None and parsed.descriptive:
            # a sentence describing a scene, which no image's text holds: meaning leads
            weights["keyword"] *= WEAK_KEYWORD_WEIGHT
        elif mode == "hybrid" and not keyword_strong and parsed is not None:
            # a catalogue-style phrase (names, attributes) that no image's text holds
            # whole: its words count for more than a label bridge can tell
            weights["vector"] *= CATALOGUE_VECTOR_WEIGHT
        if fusion == "rrf":
            fused = rrf(legs, weights, rrf_k, confidence)
        else:
            fused = weighted(legs, weights, confidence)
        page = fused[offset : offset + limit]
        records = self.store.images_by_id(f.id for f in page)
        hits = [
            SearchHit(
                rec.id,
                rec.path,
                f.score,
                offset + n,
                rec.width,
                rec.height,
                rec.format,
                {
                    leg: {
                        "rank": ls.rank,
                        "score": ls.score,
                        **({"coverage": round(coverage[f.id], 3)} if leg == "keyword" and coverage else {}),
                    }
                    for leg, ls in f.legs.items()
                },
            )
            for n, f in enumerate(page, start=1)
            if (rec := records.get(f.id)) is not None
        ]
        return SearchPage(hits, len(fused), offset, limit, threshold, mode, fusion, [f.id for f in fused])

    def _browse(self, filters: Filters, limit: int, offset: int) -> SearchPage:
        """No query, only filters: every image that passes them, by path (a catalogue listing)."""
        ids = self.store.filtered_ids(filters).tolist()
        records = self.store.images_by_id(ids[offset : offset + limit])
        hits = [
            SearchHit(rec.id, rec.path, 1.0, offset + n, rec.width, rec.height, rec.format, {})
            for n, image_id in enumerate(ids[offset : offset + limit], start=1)
            if (rec := records.get(image_id)) is not None
        ]
        return SearchPage(hits, len(ids), offset, limit, -1.0, "browse", "none", ids)

    def _coverage(self, parsed: ParsedQuery, ids: list[int]) -> dict[int, float]:
        """Share of the query's content terms each keyword hit contains.

        A long description matching one of its words in a caption is weak evidence;
        a code, a name or a phrase found whole is strong. Fusion scales the keyword
        leg's contribution by this share, squared, and by ``FULL_MATCH_BOOST`` when
        every term is there: a name, a code or an invoice line found whole is the
        strongest evidence either leg can give.
        """
        terms = [t for t in parsed.positive if t.content] or parsed.positive
        docs = self.store.keyword_documents(ids)
        out = {}
        for image_id in ids:
            words = f" {' '.join(_TOKEN.findall(fold(docs.get(image_id, ''))))} "
            found = sum(f" {fold(' '.join(t.tokens))} " in words for t in terms)
            out[image_id] = found / len(terms)
        return out

    def _query_vector(
        self, parsed: ParsedQuery | None, image: Image.Image | None, like: int | None
    ) -> np.ndarray:
        """Combine text (with weights and negatives) and image evidence into one unit vector."""
        parts = []
        if like is not None:
            vec = self.store.vector_of(like, self.embedder.id.dim)
            if vec is None:
                raise SearchEngineError(f"no indexed image with id {like}")
            parts.append(vec)
        if image is not None:
            parts.append(self.embedder.embed_images([image.convert("RGB")])[0])
        if parsed is not None:
            weighted_terms = [t for t in parsed.positive if t.weight != 1.0]
            texts = (
                [parsed.semantic_text] + [t.text for t in weighted_terms] + [t.text for t in parsed.negative]
            )
            vecs = self.embedder.embed_texts(texts)
            q = vecs[0].copy()
            for t, v in zip(weighted_terms, vecs[1 : 1 + len(weighted_terms)], strict=True):
                q += (t.weight - 1.0) * v
            for v in vecs[1 + len(weighted_terms) :]:
                q -= NEGATIVE_STRENGTH * v
            parts.append(q / max(float(np.linalg.norm(q)), 1e-12))
        q = np.sum(parts, axis=0)
        return (q / max(float(np.linalg.norm(q)), 1e-12)).astype(np.float32)[None, :]

    def _vector_leg(
        self, qvec: np.ndarray, depth: int, filters: Filters | None, parsed: ParsedQuery | None
    ) -> list[tuple[int, float]]:
        vectors = self.vectors
        if vectors.ntotal == 0:
            return []
        allowed = None
        if filters is not None and filters.active:
            allowed = self.store.filtered_ids(filters)
        required = parsed.required_match() if parsed is not None else None
        if required:  # quoted phrases must match: only images whose text has them
            must = self.store.match_ids(required, filters)
            allowed = must if allowed is None else np.intersect1d(allowed, must)
        if allowed is not None:
            if len(allowed) == 0:
                return []
            scores, ids = vectors.search(qvec, min(depth, len(allowed)), allowed=allowed)
        else:
            scores, ids = vectors.search(qvec, depth)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]


def index_stats(store: Store, vectors: VectorIndex | None = None) -> IndexStats:
    """Describe ``store`` (and its vector index, if loaded) for ``searchengine info``."""
    counts = store.counts()
    return IndexStats(
        path=str(store.dir),
        encoder=store.encoder(),
        images=counts["images"],
        ok=counts["ok"],
        failed=counts["failed"],
        vectors=counts["vectors"],
        faiss_key=vectors.key if vectors else None,
        roots=store.roots(),
        captions=counts["captions"],
        ocr=counts["ocr"],
        with_text=counts["with_text"],
        stage_errors=counts["stage_errors"],
    )
