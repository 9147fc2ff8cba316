"""FAISS: the derived, rebuildable search structure over SQLite's embeddings.

The index file carries the SQLite ``generation`` it was built from; when the two
disagree (or the file is missing or unreadable) it is rebuilt from SQLite.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import faiss
import numpy as np

from searchengine.store.db import Store

log = logging.getLogger(__name__)
T = TypeVar("T")

INDEX_NAME = "vectors.faiss"
STATE_NAME = "vectors.json"

EXACT_MAX = 20_000
HNSW_MAX = 1_000_000


def choose_index_key(n: int, dim: int) -> str:
    """Pick the FAISS factory string for ``n`` vectors of dimension ``dim``.

    Exact inner product for small collections (every score is the true cosine),
    HNSW graphs for medium ones, IVF with an HNSW quantiser beyond a million.
    """
    if n < 0 or dim <= 0:
        raise ValueError(f"bad index size n={n} dim={dim}")
    if n <= EXACT_MAX:
        return "Flat"
    if n <= HNSW_MAX:
        return "HNSW32,Flat"
    nlist = 2 ** round(math.log2(4 * math.sqrt(n)))
    return f"IVF{nlist}_HNSW32,Flat"


def build_index(key: str, ids: np.ndarray, vectors: np.ndarray) -> faiss.Index:
    """Build an ID-mapped inner-product index of type ``key`` over ``vectors``."""
    dim = vectors.shape[1]
    index = faiss.index_factory(dim, f"IDMap2,{key}", faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        index.train(vectors)
    if len(ids):
        index.add_with_ids(vectors, ids)
    _tune(index)
    return index


def _tune(index: faiss.Index) -> None:
    inner = faiss.downcast_index(index.index) if hasattr(index, "index") else index
    if isinstance(inner, faiss.IndexHNSW):
        inner.hnsw.efSearch = 128
    elif isinstance(inner, faiss.IndexIVF):
        inner.nprobe = 32


class VectorIndex:
    """The FAISS index of one store, kept in step with it."""

    def __init__(self, index: faiss.Index, key: str, generation: str) -> None:
        self.index = index
        self.key = key
        self.generation = generation
        self._memo: dict[tuple, object] = {}
        self._memo_lock = threading.Lock()

    def memo(self, key: tuple, compute: Callable[[], T]) -> T:
        """Return ``compute()`` once per key for this index (e.g. its relevance cutoff).

        Kept on the index itself, so a value always belongs to the generation it was
        computed from, however indexes are swapped meanwhile; threads asking at once
        compute it once.
        """
        with self._memo_lock:
            if key not in self._memo:
                self._memo[key] = compute()
            return self._memo[key]

    def spread_ids(self, n: int) -> np.ndarray:
        """Return the ids of at most ``n`` vectors spread evenly over the index (the same
        ones each time), without copying its id map."""
        ids = self.index.id_map
        picks = np.unique(np.linspace(0, self.ntotal - 1, min(n, self.ntotal)).astype(np.int64))
        return np.array([ids.at(int(i)) for i in picks], dtype=np.int64) if self.ntotal else picks

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @classmethod
    def open(cls, store: Store, dim: int) -> VectorIndex:
        """Load the saved index if it matches the store, else rebuild and save it."""
        gen = store.generation()
        state_path = store.dir / STATE_NAME
        index_path = store.dir / INDEX_NAME
        try:
            state = json.loads(state_path.read_text())
            if state.get("generation") == gen and state.get("dim") == dim:
                index = faiss.read_index(str(index_path))
                if index.ntotal == state.get("count") and index.d == dim:
                    _tune(index)
                    return cls(index, state["key"], gen)
            log.info("vector index is stale; rebuilding from SQLite")
        except FileNotFoundError:
            log.info("no vector index yet; building from SQLite")
        except (OSError, ValueError, RuntimeError, KeyError, TypeError, AttributeError) as exc:
            log.warning("vector index unreadable (%s); rebuilding from SQLite", exc)
        return cls.rebuild(store, dim)

    @classmethod
    def rebuild(cls, store: Store, dim: int) -> VectorIndex:
        """Build from every embedding in SQLite and save atomically.

        The generation and the vectors are read in one snapshot, so an index run
        committing meanwhile can never label newer vectors with an older generation.
        """
        with store.snapshot():
            gen = store.generation()
            ids, vecs = store.embeddings.all(dim)
        key = choose_index_key(len(ids), dim)
        vi = cls(build_index(key, ids, vecs), key, gen)
        vi.save(store.dir)
        return vi

    def save(self, index_dir: Path) -> None:
        """Write the index and its state file, each by atomic rename."""
        token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"  # unique per writer, threads included
        tmp_index = index_dir / f".{INDEX_NAME}.{token}.tmp"
        faiss.write_index(self.index, str(tmp_index))
        os.replace(tmp_index, index_dir / INDEX_NAME)
        state = {
            "generation": self.generation,
            "count": self.ntotal,
            "key": self.key,
            "dim": int(self.index.d),
        }
        tmp_state = index_dir / f".{STATE_NAME}.{token}.tmp"
        tmp_state.write_text(json.dumps(state))
        os.replace(tmp_state, index_dir / STATE_NAME)

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(scores (Q, k) float32, ids (Q, k) int64)``; missing slots have id -1.

        :param allowed: int64 ids; when given, only these are searched (FAISS ID
            selector), so a filtered search still fills ``k`` when it can.
        """
        if self.ntotal == 0:
            q = len(queries)
            return np.zeros((q, 0), np.float32), np.zeros((q, 0), np.int64)
        k = max(1, min(k, self.ntotal))
        x = np.ascontiguousarray(queries, dtype=np.float32)
        if allowed is None:
            return self.index.search(x, k)
        sel = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
        inner = faiss.downcast_index(self.index.index)
        if isinstance(inner, faiss.IndexHNSW):
            params = faiss.SearchParametersHNSW(sel=sel, efSearch=max(128, k))
        elif isinstance(inner, faiss.IndexIVF):
            params = faiss.SearchParametersIVF(sel=sel, nprobe=inner.nprobe)
        else:
            params = faiss.SearchParameters(sel=sel)
        return self.index.search(x, k, params=params)


class VectorCache:
    """The current FAISS index of one index folder, shared by threads and swapped atomically.

    Readers get whichever index is current; when the store's generation moves on,
    one thread reloads (or rebuilds) it while the others keep searching the old one.
    ``min_interval`` bounds how often that happens while an index run keeps changing
    the store (0: reload at once, as the CLI needs).
    """

    def __init__(self, dim: int, min_interval: float = 0.0) -> None:
        self.dim, self.min_interval = dim, min_interval
        self._current: VectorIndex | None = None
        self._loaded_at = 0.0
        self._lock = threading.Lock()

    @property
    def current(self) -> VectorIndex | None:
        """The index last loaded, if any (no reload)."""
        return self._current

    def get(self, store: Store) -> VectorIndex:
        """Return an index no staler than ``min_interval`` seconds (exact when it is 0)."""
        current = self._current
        if current is not None:
            if current.generation == store.generation():
                return current
            if time.monotonic() - self._loaded_at < self.min_interval:
                return current
            if not self._lock.acquire(blocking=False):
                return current  # another thread is reloading: search the old one meanwhile
        else:
            self._lock.acquire()
        try:
            if self._current is None or self._current.generation != store.generation():
                self._current = VectorIndex.open(store, self.dim)
            self._loaded_at = time.monotonic()
            return self._current
        finally:
            self._lock.release()
