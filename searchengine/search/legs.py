"""The two legs of a search: nearest vectors (meaning) and FTS5 matches (words).

Each returns ``[(image_id, score)]`` best first, with the request's filters applied
inside the leg, so a filtered query still fills its page when that many images pass.
"""

from __future__ import annotations

import numpy as np

from searchengine.errors import NotFound
from searchengine.models.base import Embedder
from searchengine.query import NEGATIVE_STRENGTH, ParsedQuery
from searchengine.records import Filters
from searchengine.store.db import Store
from searchengine.store.filters import FilterPassing
from searchengine.store.fts import KeywordQuery
from searchengine.store.vectors import PassingIds, VectorIndex
from searchengine.text import WORD, fold

Ranked = list[tuple[int, float]]


def query_vector(
    embedder: Embedder, store: Store, parsed: ParsedQuery | None, image, like: int | None
) -> np.ndarray:
    """Combine text (with weights and negatives) and image evidence into one unit vector (1, dim).

    :raises NotFound: ``like`` names no image with a vector.
    """
    parts = []
    if like is not None:
        vec = store.embeddings.of(like, embedder.id.dim)
        if vec is None:
            raise NotFound(f"no indexed image with id {like}")
        parts.append(vec)
    if image is not None:
        parts.append(embedder.embed_images([image.convert("RGB")])[0])
    if parsed is not None:
        weighted_terms = [t for t in parsed.positive if t.weight != 1.0]
        texts = [parsed.semantic_text] + [t.text for t in weighted_terms] + [t.text for t in parsed.negative]
        vecs = embedder.embed_texts(texts)
        q = vecs[0].copy()
        for t, v in zip(weighted_terms, vecs[1 : 1 + len(weighted_terms)], strict=True):
            q += (t.weight - 1.0) * v
        for v in vecs[1 + len(weighted_terms) :]:
            q -= NEGATIVE_STRENGTH * v
        parts.append(q / max(float(np.linalg.norm(q)), 1e-12))
    q = np.sum(parts, axis=0)
    return (q / max(float(np.linalg.norm(q)), 1e-12)).astype(np.float32)[None, :]


def vector_leg(
    store: Store,
    vectors: VectorIndex,
    qvec: np.ndarray,
    depth: int,
    filters: Filters | None,
    parsed: ParsedQuery | None,
) -> Ranked:
    """The ``depth`` nearest images to ``qvec`` that pass the filters and hold every quoted phrase."""
    if vectors.ntotal == 0:
        return []
    required = parsed.required_match() if parsed is not None else None
    if required:  # quoted phrases must match: only images whose text has them (and pass the filters)
        passing = PassingIds(store.text.match_ids(required, filters))
    elif filters is not None and filters.active:
        passing = FilterPassing(store.db, filters)
    else:
        passing = None
    if passing is None:
        scores, ids = vectors.search(qvec, depth, stored=store.embeddings)
    else:  # a few pass: through a selector; many: unfiltered with over-fetch, filtered after
        scores, ids = vectors.search_passing(qvec, depth, passing, stored=store.embeddings)
    return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]


def keyword_leg(store: Store, parsed: ParsedQuery, depth: int, filters: Filters | None) -> Ranked:
    """The ``depth`` best BM25 matches of the query's words that pass the filters: from the
    rows that can reach them (:meth:`~searchengine.store.text.Texts.keyword_top`) when the
    query is plain words, else by scoring every match."""
    query = KeywordQuery.of(parsed)
    if query is not None:
        return store.text.keyword_top(query, depth, filters)
    match = parsed.fts_match()
    return store.text.keyword_search(match, depth, filters) if match else []


def coverage(store: Store, parsed: ParsedQuery, ids: list[int]) -> dict[int, float]:
    """Share of the query's content terms each image's keyword document contains.

    A long description matching one of its words in a caption is weak evidence; a
    code, a name or a phrase found whole is strong (see :mod:`.plan`).
    """
    terms = [t for t in parsed.positive if t.content] or parsed.positive
    docs = store.text.documents(ids)
    out = {}
    for image_id in ids:
        words = f" {' '.join(WORD.findall(fold(docs.get(image_id, ''))))} "
        found = sum(f" {fold(' '.join(t.tokens))} " in words for t in terms)
        out[image_id] = found / len(terms)
    return out
