"""FAISS: the derived, rebuildable search structure over SQLite's embeddings.

The saved index carries the SQLite ``generation`` it was built from and a checksum
(:mod:`.vector_file`); when the generations disagree, or the file is missing, damaged
or unreadable, it is rebuilt from SQLite. Readers never fail for want of saving it:
when the rebuilt index cannot be written (disk full, read-only folder) they search it
from memory and say so.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import faiss
import numpy as np

from searchengine.store import vector_file
from searchengine.store.db import Store
from searchengine.store.vector_file import INDEX_NAME, STATE_NAME

__all__ = ["INDEX_NAME", "STATE_NAME", "VectorCache", "VectorIndex", "build_index", "choose_index_key"]

log = logging.getLogger(__name__)
T = TypeVar("T")

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


def _load_saved(index_dir: Path, gen: str, dim: int) -> tuple[faiss.Index, dict] | None:
    """Return the saved index and its state when they are the store's current ones and its
    bytes match the checksum; None (the reason logged) when it must be rebuilt.

    :raises vector_file.Damaged: the file (or the state file) is damaged.
    """
    for _ in range(3):
        try:
            state = vector_file.read_state(index_dir)
        except OSError as exc:
            log.warning("vector index state unreadable (%s); rebuilding from SQLite", exc)
            return None
        stale = _why_stale(state, gen, dim)
        if stale:
            log.info("%s; building it from SQLite", stale)
            return None
        try:
            index = vector_file.load(index_dir, state)
        except FileNotFoundError:
            log.info("no vector index yet; building it from SQLite")
            return None
        except vector_file.Replacing:
            time.sleep(0.05)  # another process is saving: look again
            continue
        except vector_file.Damaged:
            if vector_file.read_state(index_dir) != state:
                continue  # a save replaced both files meanwhile: look again
            raise
        except (OSError, RuntimeError) as exc:
            log.warning("vector index unreadable (%s); rebuilding from SQLite", exc)
            return None
        if index.ntotal == state.get("count") and index.d == dim and isinstance(state.get("key"), str):
            _tune(index)
            return index, state
        log.warning("the saved vector index does not match its state; rebuilding from SQLite")
        return None
    log.info("the vector index is being saved by another process (or its save stopped); rebuilding")
    return None


def _why_stale(state: dict | None, gen: str, dim: int) -> str | None:
    """Why a saved index with ``state`` is not the one to load, or None when it is."""
    if state is None:
        return "no vector index yet"
    if state.get("generation") != gen or state.get("dim") != dim:
        return "the vector index is stale"
    if "sha256" not in state:
        return "the vector index was saved without a checksum (by an older version)"
    return None


class VectorIndex:
    """The FAISS index of one store, kept in step with it.

    ``repaired`` is the last time its saved file was found damaged and rebuilt
    (``{"at": ..., "reason": ...}``, kept in the state file); ``unsaved`` says why this
    index, rebuilt from SQLite, could not be saved (None when it is the saved one).
    """

    def __init__(self, index: faiss.Index, key: str, generation: str, repaired: dict | None = None) -> None:
        self.index = index
        self.key = key
        self.generation = generation
        self.repaired = repaired
        self.unsaved: str | None = None
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

    def condition(self) -> dict:
        """How the saved file stands, for ``info``: ``state`` ("ok" or "not saved"), the
        save ``problem``, the last ``repaired`` record and a ``message`` in words."""
        repair = self.repaired
        if self.unsaved:
            message = f"could not be saved ({self.unsaved}): searching an in-memory copy rebuilt from SQLite"
        else:
            message = "ok"
        if repair:
            message += (
                f"; rebuilt from SQLite at {repair.get('at')} because the saved file was damaged "
                f"({repair.get('reason')})"
            )
        state = "not saved" if self.unsaved else "ok"
        return {"state": state, "problem": self.unsaved, "repaired": repair, "message": message}

    @classmethod
    def open(cls, store: Store, dim: int, strict: bool = False) -> VectorIndex:
        """Load the saved index if it matches the store and its checksum, else rebuild it
        from SQLite and save it.

        :param strict: True for writers (index runs, ``tune``): a failed save raises.
            False for readers: a failed save (disk full, read-only folder) is logged and
            the rebuilt index is searched from memory (see :attr:`unsaved`).
        :raises OSError: ``strict`` and the rebuilt index could not be saved.
        """
        gen = store.generation()
        try:
            loaded = _load_saved(store.dir, gen, dim)
        except vector_file.Damaged as exc:
            log.warning("the saved vector index is damaged (%s); rebuilding it from SQLite", exc)
            repaired = {"at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "reason": str(exc)}
            return cls.rebuild(store, dim, strict, repaired)
        if loaded is None:
            return cls.rebuild(store, dim, strict)
        index, state = loaded
        return cls(index, state["key"], gen, state.get("repaired"))

    @classmethod
    def rebuild(
        cls, store: Store, dim: int, strict: bool = False, repaired: dict | None = None
    ) -> VectorIndex:
        """Build from every embedding in SQLite and save atomically (see :meth:`open` for
        ``strict``).

        The generation and the vectors are read in one snapshot, so an index run
        committing meanwhile can never label newer vectors with an older generation.
        """
        with store.snapshot():
            gen = store.generation()
            ids, vecs = store.embeddings.all(dim)
        key = choose_index_key(len(ids), dim)
        vi = cls(build_index(key, ids, vecs), key, gen, repaired)
        try:
            vi.save(store.dir)
        except OSError as exc:
            if strict:
                raise
            vi.unsaved = vector_file.save_problem(exc)
            log.warning(
                "the vector index could not be saved (%s): searching an in-memory copy rebuilt from SQLite",
                vi.unsaved,
            )
        return vi

    def save(self, index_dir: Path) -> None:
        """Write the index and its state file (with the checksum), each by atomic rename.

        :raises OSError: they could not be written; nothing is left behind.
        """
        state = {
            "generation": self.generation,
            "count": self.ntotal,
            "key": self.key,
            "dim": int(self.index.d),
            "repaired": self.repaired,
        }
        self.repaired = vector_file.save(index_dir, self.index, state).get("repaired")
        self.unsaved = None

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
