"""The relevance cutoff: does any image look like the query more than like unrelated things?

A fixed cosine threshold fails both ways: an encoder scores some images high for every
query (hubs), and some queries high against every image. So the evidence is per image
and per query: an image's *null* is the best cosine any query about things photo
collections rarely show (:data:`UNRELATED`) reaches on it, and a text query's evidence
is how far its best hit stands above that hit's null. The query finds something when
its best evidence reaches a share (:data:`EVIDENCE_SHARES`) of the *margin*: the best evidence an
unrelated query itself reaches against the nulls of the other unrelated queries
(leave one out), computed once per vector-index generation over each unrelated query's
nearest images. Then its hits that stand above their null at all are kept, the rest of
the ranking is not (they look more like something unrelated than like the query).

An image query (an upload or "find similar") has no such null: any photo looks like
some photos. Its test is the reverse one: it finds an image when it would be among that
image's nearest neighbours in the collection, closer to it than all but
:data:`NEIGHBOURHOODS` of the collection is (2% or 5%, the encoder's own; among its
:data:`MIN_NEIGHBOURS` nearest
in a small one), measured against a fixed sample of the collection (:class:`Neighbourhood`).
A receipt finds no product photo, a re-encoded copy finds its original, a product finds
the products that have it among their own nearest.

Both are kept on the :class:`~searchengine.store.vectors.VectorIndex` they were
computed from (a swapped-in index never serves another index's values); the margin also
in the store's meta table (a new process does not compute it again).
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from dataclasses import dataclass

import numpy as np

from searchengine.models.adapter import split_spec
from searchengine.models.base import Embedder
from searchengine.store.db import Store
from searchengine.store.vectors import VectorIndex

#: Queries about things photo collections rarely show.
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
CUTOFF_METHOD = "image-null-v2"
#: The share of the unrelated queries' own best evidence a query must reach, per encoder
#: (how well an encoder separates true from absent queries is its own); each chosen by
#: leave-one-set-out over the four dev sets indexed with it (docs/evaluation.md,
#: bench/eval_cutoff.py). Tuned variants (``+adapter-...``) use their base's share.
EVIDENCE_SHARES = {"offline:fast-v1": 0.7, "offline:fast-v2": 0.95}
#: The share for any other encoder (e.g. open_clip): the first one measured.
EVIDENCE_SHARE = 0.7
#: How many nearest images of each unrelated query the margin looks at (as the search
#: looks at its own hits).
CANDIDATES = 100
#: The share of the collection an image query must be among the nearest of to a hit, per
#: encoder; each chosen by the text cutoff's rule (keep 0.9 of true hits, reject 0.7 of
#: absent ones) in bench/eval_image_cutoff.py over indexes made with it (docs/evaluation.md).
NEIGHBOURHOODS = {"offline:fast-v1": 0.02, "offline:fast-v2": 0.05}
#: The share for any other encoder: the first one measured.
NEIGHBOURHOOD = 0.02
#: The fewest neighbours a hit has (in a small collection 2% is one or none).
MIN_NEIGHBOURS = 3
#: How many stored images the neighbourhood of a hit is measured against.
REFERENCE = 2000
#: Evidence this close to 0 counts as 0: the hit's score comes from FAISS, its radius from
#: numpy, so an exact tie (a copy among copies) must not be decided by rounding.
TIE = 1e-5


@dataclass(frozen=True, slots=True)
class Calibration:
    """What a text query's vector hits are measured against.

    :param unrelated: the :data:`UNRELATED` queries' unit vectors (20, dim).
    :param margin: the best leave-one-out evidence of an unrelated query.
    :param share: the share of it a query must reach (:func:`evidence_share`).
    """

    unrelated: np.ndarray
    margin: float
    share: float = EVIDENCE_SHARE

    @property
    def threshold(self) -> float:
        """The evidence a query must reach to find anything."""
        return self.share * self.margin

    def evidence(self, scores: np.ndarray, vectors: np.ndarray) -> np.ndarray:
        """How far each hit (cosine in ``scores``, unit vector in ``vectors``) stands above
        its own null: above 0, the image looks more like the query than like anything
        unrelated."""
        if len(scores) == 0:
            return np.zeros(0, dtype=np.float32)
        return np.asarray(scores, dtype=np.float32) - (vectors @ self.unrelated.T).max(axis=1)


def margin(store: Store, vectors: VectorIndex, unrelated: np.ndarray) -> float:
    """The best evidence any unrelated query reaches against the others' nulls (see the
    module docstring); 1.0 when the index is empty."""
    if vectors.ntotal == 0:
        return 1.0
    scores, ids = vectors.search(unrelated, CANDIDATES, stored=store.embeddings)
    best = -1.0
    for k in range(len(unrelated)):
        found = ids[k] >= 0
        vecs, stored = store.embeddings.of_many(ids[k][found].tolist(), unrelated.shape[1])
        if not stored.any():
            continue
        null = (vecs[stored] @ np.delete(unrelated, k, axis=0).T).max(axis=1)
        best = max(best, float((scores[k][found][stored] - null).max()))
    return best


def _own(table: dict[str, float], spec: str, default: float) -> float:
    """An encoder's entry in one of the per-encoder tables (its base's, when tuned)."""
    return table.get(split_spec(spec)[0], default)


def evidence_share(spec: str) -> float:
    """The :data:`EVIDENCE_SHARES` entry of an encoder spec (its base's, when tuned)."""
    return _own(EVIDENCE_SHARES, spec, EVIDENCE_SHARE)


def calibration(store: Store, embedder: Embedder, vectors: VectorIndex) -> Calibration:
    """Return the calibration of ``vectors`` (the index searched) for ``embedder``, computing
    the margin once per generation."""
    key = {"generation": vectors.generation, "encoder": embedder.id.spec, "method": CUTOFF_METHOD}
    share = evidence_share(embedder.id.spec)

    def compute() -> Calibration:
        unrelated = unrelated_vectors(store, embedder)
        stored = json.loads(store.get_meta("cutoff") or "{}")
        if all(stored.get(k) == v for k, v in key.items()) and "margin" in stored:
            return Calibration(unrelated, float(stored["margin"]), share)
        value = margin(store, vectors, unrelated)
        # best effort: while an index run holds the write lock, keep it in memory only
        store.set_meta("cutoff", json.dumps({**key, "margin": value}), wait=False)
        return Calibration(unrelated, value, share)

    return vectors.memo(("cutoff", embedder.id.spec), compute)


def unrelated_vectors(store: Store, embedder: Embedder) -> np.ndarray:
    """The :data:`UNRELATED` queries' unit vectors for ``embedder``: embedded once and kept
    in the store's meta table, so a new process (each CLI search) does not embed them again."""
    key = {
        "encoder": embedder.id.spec,
        "texts": hashlib.sha256("\n".join(UNRELATED).encode()).hexdigest()[:16],
    }
    stored = json.loads(store.get_meta("cutoff_unrelated") or "{}")
    if stored.get("key") == key:
        try:
            raw = np.frombuffer(base64.b64decode(stored["vectors"]), dtype=np.float32)
            return raw.reshape(len(UNRELATED), -1).copy()
        except (KeyError, ValueError, TypeError):
            pass  # damaged: embed them again
    vectors = np.ascontiguousarray(embedder.embed_texts(list(UNRELATED)), dtype=np.float32)
    value = {"key": key, "vectors": base64.b64encode(vectors.tobytes()).decode()}
    store.set_meta("cutoff_unrelated", json.dumps(value), wait=False)  # best effort, as the margin
    return vectors


@dataclass(frozen=True, slots=True)
class Neighbourhood:
    """What an image query's vector hits are measured against: a fixed sample of the
    collection (ids, sorted, and their unit vectors)."""

    ids: np.ndarray
    vectors: np.ndarray
    share: float = NEIGHBOURHOOD

    def evidence(
        self, ids: list[int], scores: np.ndarray, vectors: np.ndarray, query: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """How far each hit's cosine stands above its *radius*: the cosine of its k-th
        nearest image in the sample (itself and the ``query`` image left out, k =
        ``share`` of the sample, at least :data:`MIN_NEIGHBOURS`; the farthest
        when there are fewer). Returns ``(evidence, radius)``; evidence >= 0 (within
        :data:`TIE`): the query is among the hit's nearest neighbours."""
        scores = np.asarray(scores, dtype=np.float32)
        if len(scores) == 0 or len(self.ids) == 0:
            return np.zeros(len(scores), np.float32), np.full(len(scores), -1.0, np.float32)
        sims = vectors @ self.vectors.T
        column = self._position(ids)  # leave each hit itself out, and the query image
        inside = column >= 0
        sims[np.flatnonzero(inside), column[inside]] = -np.inf
        own = self._position([query])[0] if query is not None else -1
        if own >= 0:
            sims[:, own] = -np.inf
        k = min(max(MIN_NEIGHBOURS, math.ceil(self.share * len(self.ids))), len(self.ids))
        radius = -np.partition(-sims, k - 1, axis=1)[:, k - 1]
        short = ~np.isfinite(radius)  # fewer than k others: the farthest of them
        if short.any():
            finite = np.where(np.isfinite(sims[short]), sims[short], np.inf).min(axis=1)
            radius[short] = np.where(np.isfinite(finite), finite, -1.0)
        return scores - radius, radius.astype(np.float32)

    def _position(self, ids) -> np.ndarray:
        """Each id's column in the sample (ids sorted), -1 where it is not in it."""
        ids = np.asarray(ids, dtype=np.int64)
        at = np.minimum(np.searchsorted(self.ids, ids), len(self.ids) - 1)
        return np.where(self.ids[at] == ids, at, -1)


def neighbourhood(store: Store, vectors: VectorIndex, embedder: Embedder) -> Neighbourhood:
    """Return the sample image queries are measured against: :data:`REFERENCE` images
    spread evenly over the FAISS index searched (so it belongs to that generation), once
    per index."""

    def compute() -> Neighbourhood:
        ids = np.sort(vectors.spread_ids(REFERENCE))
        vecs, found = store.embeddings.of_many(ids.tolist(), embedder.id.dim)
        share = _own(NEIGHBOURHOODS, embedder.id.spec, NEIGHBOURHOOD)
        return Neighbourhood(ids[found], np.ascontiguousarray(vecs[found]), share)

    return vectors.memo(("neighbourhood", embedder.id.spec), compute)
