"""The relevance cutoff: what "nothing relevant" scores in one index with one encoder.

The top-1 cosine of queries about things photo collections rarely show
(:data:`UNRELATED`) is what an irrelevant best match scores in this index; a vector
hit must reach the best of those. It is computed once per vector-index generation:
kept on the :class:`~searchengine.store.vectors.VectorIndex` it was computed from (so a
swapped-in index can never serve another index's cutoff) and in the store's meta
table (so a new process does not compute it again).
"""

from __future__ import annotations

import json

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
CUTOFF_METHOD = "max-unrelated-v1"


def calibrate(embedder: Embedder, vectors: VectorIndex) -> float:
    """Return the best cosine any :data:`UNRELATED` query reaches in ``vectors`` (1.0 when empty)."""
    if vectors.ntotal == 0:
        return 1.0
    scores, _ = vectors.search(embedder.embed_texts(list(UNRELATED)), 1)
    return float(scores[:, 0].max())


def cutoff(store: Store, embedder: Embedder, vectors: VectorIndex) -> float:
    """Return the cutoff of ``vectors`` (the index searched) for ``embedder``, computing it once."""
    key = {"generation": vectors.generation, "encoder": embedder.id.spec, "method": CUTOFF_METHOD}

    def compute() -> float:
        stored = json.loads(store.get_meta("cutoff") or "{}")
        if all(stored.get(k) == v for k, v in key.items()) and "threshold" in stored:
            return float(stored["threshold"])
        value = calibrate(embedder, vectors)
        # best effort: while an index run holds the write lock, keep it in memory only
        store.set_meta("cutoff", json.dumps({**key, "threshold": value}), wait=False)
        return value

    return vectors.memo(("cutoff", embedder.id.spec), compute)
