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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol, TypeVar

import faiss
import numpy as np

from searchengine.store import vector_file
from searchengine.store.db import Store
from searchengine.store.vector_file import INDEX_NAME, STATE_NAME

__all__ = [
    "INDEX_NAME",
    "STATE_NAME",
    "Passing",
    "PassingIds",
    "VectorCache",
    "VectorIndex",
    "build_from_chunks",
    "build_index",
    "choose_index_key",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

EXACT_MAX = 20_000
HNSW_MAX = 1_000_000
SCORE_CHUNK = 16_384  # vectors scored at once in an exact search among given ids
OVERFETCH_MARGIN = 2.0
"""A broadly filtered search fetches this many times the candidates it expects to need."""


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
    return build_from_chunks(key, vectors.shape[1], len(ids), lambda: iter([(ids, vectors)]))


def build_from_chunks(
    key: str, dim: int, n: int, chunks: Callable[[], Iterator[tuple[np.ndarray, np.ndarray]]]
) -> faiss.Index:
    """Build an ID-mapped inner-product index of type ``key`` over ``n`` vectors that
    ``chunks()`` yields as ``(ids, vectors)`` pieces, added piece by piece: the peak memory is
    the index plus one piece, never a second copy of every vector.

    An index that must be trained (IVF) is trained first on an even sample, read in a first
    pass of ``chunks()``: no more rows than FAISS's k-means would keep anyway
    (``max_points_per_centroid`` per centroid), so the sample costs no quality.
    """
    index = faiss.index_factory(dim, f"IDMap2,{key}", faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        index.train(_training_sample(index, dim, n, chunks()))
    _reserve(index, n)
    for ids, vecs in chunks():
        if len(ids):
            index.add_with_ids(np.ascontiguousarray(vecs, dtype=np.float32), ids)
    _tune(index)
    return index


def _reserve(index: faiss.Index, n: int) -> None:
    """Make room for ``n`` vectors in a flat store (flat, HNSW) before adding them, so that
    adding chunk by chunk never grows it by copying (a copy of all the vectors, at the end)."""
    inner = faiss.downcast_index(index.index)
    if isinstance(inner, faiss.IndexHNSW):
        inner = faiss.downcast_index(inner.storage)
    if isinstance(inner, faiss.IndexFlatCodes) and inner.ntotal == 0:
        try:
            inner.codes.resize(n * inner.code_size)
            inner.codes.resize(0)  # the room stays: a vector keeps its capacity when it shrinks
        except AttributeError:  # another FAISS's storage type: it grows as it must
            pass


def _training_sample(index: faiss.Index, dim: int, n: int, chunks) -> np.ndarray:
    """Rows spread evenly over the ``n`` that ``chunks`` yields, as many as the k-means of
    ``index`` uses: ``max_points_per_centroid`` times its lists (IVF) or times the 256
    centroids of a code book (scalar and product quantisers)."""
    inner = faiss.downcast_index(index.index)
    centroids = inner.nlist if isinstance(inner, faiss.IndexIVF) else 256
    size = min(n, faiss.ClusteringParameters().max_points_per_centroid * centroids)
    picks = np.unique(np.linspace(0, n - 1, size).astype(np.int64)) if size else np.zeros(0, np.int64)
    sample = np.empty((len(picks), dim), dtype=np.float32)
    at = got = 0
    for _, vecs in chunks:
        mine = picks[(picks >= at) & (picks < at + len(vecs))]
        sample[got : got + len(mine)] = vecs[mine - at]
        at, got = at + len(vecs), got + len(mine)
    return sample[:got]


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
        committing meanwhile can never label newer vectors with an older generation; they
        stream from SQLite into the index chunk by chunk (see :func:`build_from_chunks`).
        """
        with store.snapshot():
            gen = store.generation()
            n = store.embeddings.count()
            key = choose_index_key(n, dim)
            index = build_from_chunks(key, dim, n, lambda: store.embeddings.chunks(dim))
        vi = cls(index, key, gen, repaired)
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

        :param allowed: int64 ids; when given, only these are searched, so a filtered
            search still fills ``k`` when it can: a flat or IVF index through a bitmap
            selector (an IVF index that finds too few in the lists it probes searches them
            all), an HNSW one exactly, over the stored vectors of those ids.
        """
        if self.ntotal == 0:
            q = len(queries)
            return np.zeros((q, 0), np.float32), np.zeros((q, 0), np.int64)
        k = max(1, min(k, self.ntotal))
        x = np.ascontiguousarray(queries, dtype=np.float32)
        if allowed is None:
            return self.index.search(x, k, params=self._params(None, k))
        inner = faiss.downcast_index(self.index.index)
        if isinstance(inner, faiss.IndexHNSW):  # a graph walk through a selector can stop short
            return self._exact_among(x, k, allowed)
        sel = _bitmap_selector(allowed)
        scores, ids = self.index.search(x, k, params=self._params(sel, k))
        if isinstance(inner, faiss.IndexIVF) and (ids[:, : min(k, len(allowed))] < 0).any():
            # (also when some allowed ids have no vector in the index: a full scan, still right)
            scores, ids = self.index.search(x, k, params=self._params(sel, k, nprobe=inner.nlist))
        return scores, ids

    def _exact_among(self, x: np.ndarray, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The exact top ``k`` among the ``allowed`` ids in the index: their stored vectors
        scored in chunks (memory: one chunk), as :meth:`search` returns them."""
        ids, rows = self.memo(("id rows",), self._id_rows)
        where = np.searchsorted(ids, allowed).clip(max=max(len(ids) - 1, 0))
        present = np.unique(where[ids[where] == allowed]) if len(ids) else where[:0]
        k = min(k, len(present))
        best_s = np.full((len(x), 0), -np.inf, np.float32)
        best_i = np.zeros((len(x), 0), np.int64)
        storage = faiss.downcast_index(self.index.index)
        for start in range(0, len(present), SCORE_CHUNK):
            part = present[start : start + SCORE_CHUNK]
            scores = x @ storage.reconstruct_batch(rows[part]).T
            best_s = np.concatenate([best_s, scores], axis=1)
            best_i = np.concatenate([best_i, np.broadcast_to(ids[part], scores.shape)], axis=1)
            top = np.argsort(-best_s, axis=1, kind="stable")[:, :k]
            best_s, best_i = np.take_along_axis(best_s, top, 1), np.take_along_axis(best_i, top, 1)
        return best_s.astype(np.float32), best_i

    def _id_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """The index's ids, sorted, and the row of each in the inner index (kept per index)."""
        id_map = faiss.vector_to_array(self.index.id_map).astype(np.int64)
        order = np.argsort(id_map, kind="stable")
        return id_map[order], order.astype(np.int64)

    def _params(self, sel, k: int, nprobe: int | None = None) -> faiss.SearchParameters:
        """Search parameters for ``k`` results through the selector ``sel`` (None: every id)."""
        inner = faiss.downcast_index(self.index.index)
        if isinstance(inner, faiss.IndexHNSW):
            return faiss.SearchParametersHNSW(sel=sel, efSearch=max(inner.hnsw.efSearch, k))
        if isinstance(inner, faiss.IndexIVF):
            params = faiss.SearchParametersIVF(sel=sel, nprobe=nprobe or inner.nprobe)
            quantizer = faiss.downcast_index(inner.quantizer)
            if nprobe and isinstance(quantizer, faiss.IndexHNSW):  # else it finds only ~a third of them
                ef = max(nprobe, quantizer.hnsw.efSearch)
                params.quantizer_params = faiss.SearchParametersHNSW(efSearch=ef)
            return params
        return faiss.SearchParameters(sel=sel)

    def search_passing(self, queries: np.ndarray, k: int, passing: Passing) -> tuple[np.ndarray, np.ndarray]:
        """Like :meth:`search`, over only the images that ``passing`` lets through, chosen by
        how many pass (see :func:`selector_limit`): a few are searched among their ids alone
        (:meth:`search` with ``allowed``); many by an unfiltered search of ``k * margin /
        share`` candidates, the ones that pass kept. When too few of those pass while more
        exist (a filter that avoids what the query looks like), the search among every
        passing id answers after all, so a filtered search fills ``k`` whenever that many
        pass, whichever way it runs.
        """
        q = len(queries)
        if self.ntotal == 0:
            return np.zeros((q, 0), np.float32), np.zeros((q, 0), np.int64)
        k = max(1, min(k, self.ntotal))
        limit = selector_limit(self.ntotal, k)
        first, estimate = passing.first(limit + 1, self.ntotal)
        if len(first) <= limit:  # selective: every passing id is known
            if not len(first):
                return np.zeros((q, 0), np.float32), np.zeros((q, 0), np.int64)
            return self.search(queries, min(k, len(first)), allowed=first)
        # the estimate comes from the first ids in id order, which a filter may follow (a
        # folder indexed first): when too few pass, once more with the share the candidates
        # showed, up to ``margin`` times the limit, before listing every passing id
        cap = min(self.ntotal, math.ceil(OVERFETCH_MARGIN * limit))
        fetch = min(overfetch(self.ntotal, k, estimate), cap)
        while True:
            scores, ids = self.search(queries, fetch)
            kept = np.zeros(ids.shape, dtype=bool)
            found = ids >= 0
            kept[found] = passing.keep(ids[found])
            if (kept.sum(axis=1) >= k).all():
                break
            seen = kept.sum() / max(found.sum(), 1) * self.ntotal
            more = min(overfetch(self.ntotal, k, seen), cap)
            if more <= fetch:  # more than ``limit >= k`` pass: look through them all
                return self.search(queries, k, allowed=passing.ids())
            fetch = more
        out_scores = np.empty((q, k), np.float32)
        out_ids = np.empty((q, k), np.int64)
        for row in range(q):
            out_scores[row] = scores[row][kept[row]][:k]
            out_ids[row] = ids[row][kept[row]][:k]
        return out_scores, out_ids


class Passing(Protocol):
    """The images a search may return (a filter), asked only as far as the search needs."""

    def first(self, limit: int, among: int) -> tuple[np.ndarray, float]:
        """Return up to ``limit`` passing ids (every one when fewer pass) and an estimate of
        how many of ``among`` searchable images pass in all."""

    def keep(self, ids: np.ndarray) -> np.ndarray:
        """Return which of ``ids`` pass (bool, same shape)."""

    def ids(self) -> np.ndarray:
        """Return every passing id (int64)."""


class PassingIds:
    """A filter given as the list of ids that pass (e.g. the images holding a quoted phrase)."""

    def __init__(self, ids: np.ndarray) -> None:
        self._ids = np.unique(np.asarray(ids, dtype=np.int64))

    def first(self, limit: int, among: int) -> tuple[np.ndarray, float]:
        return self._ids[:limit], float(len(self._ids))

    def keep(self, ids: np.ndarray) -> np.ndarray:
        return np.isin(ids, self._ids)

    def ids(self) -> np.ndarray:
        return self._ids


def selector_limit(n: int, k: int, margin: float = OVERFETCH_MARGIN) -> int:
    """The most passing ids a filtered search of ``k`` among ``n`` lists for a selector.

    Searching through a selector costs in proportion to the ``m`` passing ids (SQLite lists
    them, the selector is made of them); searching unfiltered and filtering after costs in
    proportion to the ``k * margin * n / m`` candidates it fetches and checks. The two meet
    at ``m = sqrt(k * margin * n)``: fewer pass, the selector; more, the over-fetch (which is
    then never more than this many candidates).
    """
    return max(k, math.ceil(math.sqrt(k * margin * n)))


def overfetch(n: int, k: int, passing: float, margin: float = OVERFETCH_MARGIN) -> int:
    """How many unfiltered candidates to fetch for ``k`` that pass when about ``passing`` of
    ``n`` do: ``k / share``, times the margin (the share is an estimate, and a filter may
    lean away from what the query looks like), at most ``n``."""
    return min(n, math.ceil(k * margin * n / max(passing, 1.0)))


def _bitmap_selector(ids: np.ndarray) -> faiss.IDSelector:
    """A selector of ``ids`` (non-negative int64): a bitmap over ids, one bit per id up to the
    largest, faster to make and to ask than a hash set of them; the hash set when the ids are
    so sparse that the bitmap would be the larger (a bit per id against 64 per listed id)."""
    ids = np.asarray(ids, dtype=np.int64)
    if len(ids) and int(ids.max()) > 64 * len(ids):
        return faiss.IDSelectorBatch(np.ascontiguousarray(ids))
    mask = np.zeros(int(ids.max()) + 1 if len(ids) else 1, dtype=bool)
    mask[ids] = True
    return faiss.IDSelectorBitmap(np.packbits(mask, bitorder="little"))


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
