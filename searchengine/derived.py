"""The one refresh of everything derived from the stored vectors, after they change.

SQLite is the source of truth; the FAISS index and the near-duplicate groups are
derived from it. Whoever changes vectors (an index run, ``tune``) calls
:func:`refresh` once, after committing; readers (the service's
:class:`~searchengine.store.vectors.VectorCache`) notice the new generation and load
the saved index.

Writers save strictly: a FAISS file that cannot be written (disk full) fails the
refresh with the OSError, where readers would search an unsaved in-memory copy.
"""

from __future__ import annotations

from searchengine.duplicates import DuplicateRule, regroup
from searchengine.store.db import Store
from searchengine.store.vectors import VectorIndex


def refresh(store: Store, dim: int, rule: DuplicateRule | None = None) -> VectorIndex:
    """Bring the saved FAISS index in step with the store (rebuilt only when stale) and,
    with a ``rule``, find the near-duplicate groups again; returns the index.

    :raises OSError: the rebuilt index could not be saved (nothing half-written is left).
    """
    vectors = VectorIndex.open(store, dim, strict=True)
    if rule is not None:
        regroup(store, rule)
    return vectors
