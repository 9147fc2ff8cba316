"""The one refresh of everything derived from the stored vectors, after they change.

SQLite is the source of truth; the FAISS index and the near-duplicate groups are
derived from it. Whoever changes vectors (an index run, ``tune``) calls
:func:`refresh` once, after committing; readers (the service's
:class:`~searchengine.store.vectors.VectorCache`) notice the new generation and load
the saved index.
"""

from __future__ import annotations

from searchengine.duplicates import DuplicateRule, regroup
from searchengine.store.db import Store
from searchengine.store.vectors import VectorIndex


def refresh(store: Store, dim: int, rule: DuplicateRule | None = None) -> VectorIndex:
    """Bring the saved FAISS index in step with the store (rebuilt only when stale) and,
    with a ``rule``, find the near-duplicate groups again; returns the index."""
    vectors = VectorIndex.open(store, dim)
    if rule is not None:
        regroup(store, rule)
    return vectors
