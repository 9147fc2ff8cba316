"""The one refresh of everything derived from the stored vectors, after they change.

SQLite is the source of truth; the FAISS index and the near-duplicate groups are
derived from it. Whoever changes vectors (an index run, ``tune``, ``forget``) calls
:func:`refresh` once, after committing; readers (the service's
:class:`~searchengine.store.vectors.VectorCache`) notice the new generation and catch
up: the saved index plus the changes the vector log lists after it. The saved index is
rewritten only when those changes grow past a bound (merged into it) or its kind no
longer fits (rebuilt), see :meth:`VectorIndex.keep_up`.

Writers save strictly: a FAISS file that cannot be written (disk full) fails the
refresh with the OSError, where readers would search an unsaved in-memory copy.
"""

from __future__ import annotations

import logging

from searchengine.duplicates import DuplicateRule, regroup
from searchengine.store.db import Store
from searchengine.store.vectors import DELTA_MAX, VectorIndex

log = logging.getLogger(__name__)


def refresh(store: Store, dim: int, rule: DuplicateRule | None = None) -> str:
    """Keep the saved FAISS index able to catch up with the store (merged or rebuilt only
    when due) and, with a ``rule``, find the near-duplicate groups again; returns what was
    done to the index ("caught up", "merged", "rebuilt", "saved").

    :raises OSError: the index could not be saved (nothing half-written is left).
    """
    done = VectorIndex.keep_up(store, dim)
    if rule is not None:
        regroup(store, rule)
    return done


def keep_up_midway(store: Store, dim: int) -> str:
    """Called by an index run after each batch it commits: merge the changes into the saved
    FAISS index once they pass :data:`~searchengine.store.vectors.DELTA_MAX` (else nothing but
    a look at the log), so that during a long run every reader's changes beside it stay few.
    A save that fails (disk full) is only logged here: the run goes on, and its final
    :func:`refresh` says so."""
    try:
        return VectorIndex.keep_up(store, dim, least=DELTA_MAX)
    except OSError as exc:
        log.warning("the vector index could not be saved midway (%s); the run goes on", exc)
        return "not saved"
