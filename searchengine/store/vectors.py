"""FAISS: the derived, rebuildable search structure over SQLite's embeddings.

A :class:`VectorIndex` is a *main* FAISS index, saved in the index folder with the last
vector-log seq it reflects (:mod:`.vector_log`) and a checksum (:mod:`.vector_file`), plus a
*delta*: the images whose vector changed after that seq, their outdated rows masked in the
main index and their current vectors searched exactly beside it. So an index run that adds
a thousand images to a million costs no rebuild: the next search reads the thousand from
SQLite. A writer merges the delta into the main index once it grows past a bound
(:func:`merge_due`), and rebuilds it when its kind no longer fits its size or masked rows
pile up; a saved file that cannot catch up (missing, damaged, from another log) is rebuilt
from SQLite. Readers never fail for want of saving: when a rebuilt index cannot be written
(disk full, read-only folder) they search it from memory and say so.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import faiss
import numpy as np

from searchengine.config import vector_memory_bytes
from searchengine.store import vector_file, vector_log
from searchengine.store.db import Store
from searchengine.store.vector_build import (
    EXACT_MAX,
    HNSW_MAX,
    build_from_chunks,
    build_index,
    choose_index_key,
    tune,
)
from searchengine.store.vector_file import INDEX_NAME, STATE_NAME

__all__ = [
    "EXACT_MAX",
    "HNSW_MAX",
    "INDEX_NAME",
    "STATE_NAME",
    "Delta",
    "Main",
    "Passing",
    "PassingIds",
    "StoredVectors",
    "VectorCache",
    "VectorIndex",
    "build_from_chunks",
    "build_index",
    "choose_index_key",
    "merge_due",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

SCORE_CHUNK = 16_384  # vectors scored at once in an exact search among given ids
OVERFETCH_MARGIN = 2.0
"""A broadly filtered search fetches this many times the candidates it expects to need."""
DELTA_MAX = 10_000
"""The most changed images searched exactly beside the main index before a writer merges them
in (10,000 x 384 float32 = 15 MB scanned per query, ~2 ms)."""
DELTA_SHARE = 0.02
"""... or this share of the main index, if smaller: a small collection merges at once."""
READER_DELTA_MAX = 5 * DELTA_MAX
"""A reader that finds more log entries than this after its index keeps searching the index it
has (stale) until a writer merges them, rather than read them all beside it."""
MASKED_MAX_SHARE = 0.2
"""A merge rebuilds instead when more than this share of the main index's rows would be masked."""
ID_LIMIT = 2**62  # ids are SQLite rowids: positive; a masked row's id is -1
RERANK = {"SQ": 2, "PQ": 8}
"""A compressed main index is asked for this many times the results wanted, and those candidates
are scored again exactly with the float vectors SQLite keeps (the only float copy: the index
holds codes): twice for 8-bit scalar codes, whose order is nearly exact already (IVF4096 over
8-bit codes at 1M, recall@10 0.980 unranked, 0.988 re-ranked from 5x), eight times for
product-quantised codes (PQ48 at 100k: 0.845 unranked, 0.993 from 5x)."""


class StoredVectors(Protocol):
    """Where the exact float vectors are read from (``store.embeddings``)."""

    def of_many(self, image_ids: list[int], dim: int) -> tuple[np.ndarray, np.ndarray]: ...


def _rescored(
    x: np.ndarray, found: tuple[np.ndarray, np.ndarray], k: int, stored: StoredVectors
) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` of each query row's candidates (``found``) by the exact cosine of their
    stored vectors; a candidate whose vector is gone meanwhile is dropped."""
    ids = found[1]
    live = np.unique(ids[ids >= 0])
    vecs, have = stored.of_many(live.tolist(), x.shape[1])
    out_s = np.zeros((len(x), k), np.float32)
    out_i = np.full((len(x), k), -1, np.int64)
    for row in range(len(x)):
        cand = ids[row][ids[row] >= 0]
        at = np.searchsorted(live, cand)
        cand, at = cand[have[at]], at[have[at]]
        scores = vecs[at] @ x[row]
        top = np.argsort(-scores, kind="stable")[:k]
        out_s[row, : len(top)], out_i[row, : len(top)] = scores[top], cand[top]
    return out_s, out_i


def merge_due(changed: int, main_rows: int) -> bool:
    """Whether a delta of ``changed`` images is due to be merged into a main index of
    ``main_rows`` rows: past :data:`DELTA_MAX`, or past :data:`DELTA_SHARE` of the index."""
    return changed > min(DELTA_MAX, DELTA_SHARE * main_rows)


@dataclass
class Main:
    """The main FAISS index: as saved (``sha256``; None when it is not saved), reflecting the
    vector log of ``epoch`` up to entry ``seq`` (whose random ``tag`` it records); built for a
    memory ``budget`` (None: unknown, an older file); ``masked`` rows (id -1) no longer count.

    Never changed while readers may search it: a reader catching up builds a new
    :class:`Delta` beside it; only a writer's own copy is merged into (:meth:`VectorIndex.merged`).
    """

    index: faiss.Index
    key: str
    seq: int
    epoch: str | None
    tag: int | None = None
    budget: int | None = None
    sha256: str | None = None
    masked: int = 0
    _rows: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def at(cls, index: faiss.Index, key: str, pos: vector_log.LogPosition, budget: int | None) -> Main:
        """A main index built at log position ``pos``."""
        return cls(index, key, pos.seq, pos.epoch, pos.tag, budget)

    @property
    def compressed(self) -> bool:
        """Whether it holds codes (scalar or product quantised), not the float vectors."""
        return self.rerank > 1

    @property
    def rerank(self) -> int:
        """How many times the results wanted its search fetches for an exact re-rank (1: none)."""
        return next((times for code, times in RERANK.items() if code in self.key), 1)

    def continues_in(self, conn, pos: vector_log.LogPosition) -> bool:
        """Whether the log at ``pos`` continues the history this index reflects."""
        return vector_log.continues(conn, pos, self.epoch, self.seq, self.tag)

    def id_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """The index's ids, sorted (a masked row's -1 first), and the row of each (kept)."""
        with self._lock:
            if self._rows is None:
                id_map = faiss.vector_to_array(self.index.id_map).astype(np.int64)
                order = np.argsort(id_map, kind="stable")
                self._rows = (id_map[order], order.astype(np.int64))
            return self._rows

    def present(self, ids: np.ndarray) -> np.ndarray:
        """Which of ``ids`` (sorted) have a live row here (bool)."""
        have = self.id_rows()[0]
        if not len(have) or not len(ids):
            return np.zeros(len(ids), dtype=bool)
        where = np.searchsorted(have, ids).clip(max=len(have) - 1)
        return have[where] == ids


@dataclass(frozen=True)
class Delta:
    """What changed after the main index's seq, up to ``seq`` (the log entry tagged ``tag``):
    ``dead`` ids (sorted) whose rows in the main index are outdated, and the current vectors
    of those that still have one (``ids`` sorted, ``vecs`` in that order)."""

    seq: int
    tag: int | None
    dead: np.ndarray
    ids: np.ndarray
    vecs: np.ndarray

    @classmethod
    def empty(cls, seq: int, tag: int | None, dim: int) -> Delta:
        none = np.zeros(0, dtype=np.int64)
        return cls(seq, tag, none, none, np.zeros((0, dim), dtype=np.float32))

    def advanced(self, store: Store, pos: vector_log.LogPosition, dim: int) -> Delta:
        """This delta caught up to the log at ``pos``: the images changed after :attr:`seq`
        read again from SQLite (call it in the snapshot ``pos`` was read in)."""
        changed = vector_log.changed_since(store.db.conn, self.seq, pos.seq)
        if not len(changed):
            return Delta(pos.seq, pos.tag, self.dead, self.ids, self.vecs)
        vecs, found = store.embeddings.of_many(changed.tolist(), dim)
        keep = ~np.isin(self.ids, changed)
        ids = np.concatenate([self.ids[keep], changed[found]])
        order = np.argsort(ids, kind="stable")
        vecs = np.concatenate([self.vecs[keep], vecs[found]])[order]
        dead = np.union1d(self.dead, changed)
        return Delta(pos.seq, pos.tag, dead, ids[order], np.ascontiguousarray(vecs))


def _merge_top(parts: list[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` of several ``(scores, ids)`` results per query row (id -1: no result)."""
    scores = np.concatenate([s for s, _ in parts], axis=1).astype(np.float32)
    ids = np.concatenate([i for _, i in parts], axis=1)
    scores = np.where(ids >= 0, scores, -np.inf)
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    scores, ids = np.take_along_axis(scores, top, 1), np.take_along_axis(ids, top, 1)
    return np.where(ids >= 0, scores, 0).astype(np.float32), np.where(np.isfinite(scores), ids, -1)


def _live_selector(dead: np.ndarray, masked: bool) -> tuple[faiss.IDSelector | None, list]:
    """A selector of the main index's live rows: not masked (id -1), not outdated (``dead``);
    with the sub-selectors it refers to, which must outlive the search (FAISS does not own them)."""
    keep: list = []
    sel = None
    if masked:
        sel = faiss.IDSelectorRange(0, ID_LIMIT)
        keep.append(sel)
    if len(dead):
        batch = faiss.IDSelectorBatch(np.ascontiguousarray(dead))
        nots = faiss.IDSelectorNot(batch)
        keep += [batch, nots]
        sel = nots if sel is None else faiss.IDSelectorAnd(sel, nots)
        keep.append(sel)
    return sel, keep


def _load_main(index_dir, dim: int, base: Main | None) -> tuple[Main, dict] | None:
    """Return the saved main index and its state when its bytes match the checksum (``base``
    itself, unread, when the file is the one it holds); None (the reason logged) when it must
    be rebuilt.

    :raises vector_file.Damaged: the file (or the state file) is damaged.
    """
    for _ in range(3):
        try:
            state = vector_file.read_state(index_dir)
        except OSError as exc:
            log.warning("vector index state unreadable (%s); rebuilding from SQLite", exc)
            return None
        stale = _why_unusable(state, dim)
        if stale:
            log.info("%s; building it from SQLite", stale)
            return None
        if base is not None and base.sha256 == state["sha256"]:
            return base, state
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
        if index.ntotal == state.get("count") and index.d == dim:
            tune(index)
            seq = state.get("seq")
            seq = seq if isinstance(seq, int) else -1  # saved by a version without the log
            budget = state.get("budget") if isinstance(state.get("budget"), int) else None
            main = Main(
                index, state["key"], seq, state.get("epoch"), state.get("tag"), budget, state["sha256"]
            )
            main.masked = int(state.get("masked") or 0)
            return main, state
        log.warning("the saved vector index does not match its state; rebuilding from SQLite")
        return None
    log.info("the vector index is being saved by another process (or its save stopped); rebuilding")
    return None


def _why_unusable(state: dict | None, dim: int) -> str | None:
    """Why a saved index with ``state`` cannot be used at all, or None when it can (whether it
    can catch up with the store is asked of the log)."""
    if state is None:
        return "no vector index yet"
    if state.get("dim") != dim or not isinstance(state.get("key"), str):
        return "the vector index is stale"
    if "sha256" not in state:
        return "the vector index was saved without a checksum (by an older version)"
    return None


def _saved_later(index_dir, pos: vector_log.LogPosition) -> bool:
    """Whether the saved index reflects a later point of the same log than ``pos``."""
    try:
        state = vector_file.read_state(index_dir) or {}
    except (OSError, vector_file.Damaged):
        return False
    seq = state.get("seq")
    return state.get("epoch") == pos.epoch and isinstance(seq, int) and seq > pos.seq


def _prune(store: Store, seq: int) -> None:
    """Drop the log entries a saved index now reflects (a writer's, after saving it)."""
    with store.writing():
        vector_log.prune(store.db.conn, seq)


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())


class VectorIndex:
    """The vectors of one store as searched: the :class:`Main` FAISS index and the
    :class:`Delta` of changes after it, as of the store's ``generation``.

    ``repaired`` is the last time its saved file was found damaged and rebuilt
    (``{"at": ..., "reason": ...}``, kept in the state file); ``unsaved`` says why this
    index, rebuilt from SQLite, could not be saved (None when it is the saved one).
    """

    def __init__(self, main: Main, delta: Delta, generation: str, repaired: dict | None = None) -> None:
        self.main, self.delta = main, delta
        self.generation = generation
        self.repaired = repaired
        self.unsaved: str | None = None
        self._memo: dict[tuple, object] = {}
        self._memo_lock = threading.Lock()
        outdated = int(main.present(delta.dead).sum()) if len(delta.dead) else 0
        self._ntotal = int(main.index.ntotal) - main.masked - outdated + len(delta.ids)

    @classmethod
    def of(cls, index: faiss.Index, key: str, generation: str) -> VectorIndex:
        """A FAISS index built apart from any store (benchmarks, tests), with nothing beside it."""
        return cls(Main(index, key, 0, None), Delta.empty(0, None, int(index.d)), generation)

    @property
    def index(self) -> faiss.Index:
        """The main FAISS index (without the delta)."""
        return self.main.index

    @property
    def key(self) -> str:
        return self.main.key

    @property
    def ntotal(self) -> int:
        """How many images are searched: the main index's live rows and the delta's."""
        return self._ntotal

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
        """Return the ids of at most ``n`` searched images spread evenly over them by id (the
        same ones each time for the same images)."""
        have = self.main.id_rows()[0]
        have = have[have >= 0]
        if len(self.delta.dead):
            have = have[~np.isin(have, self.delta.dead)]
        live = np.union1d(have, self.delta.ids)
        picks = np.unique(np.linspace(0, len(live) - 1, min(n, len(live))).astype(np.int64))
        return live[picks] if len(live) else picks

    def condition(self) -> dict:
        """How the saved file stands, for ``info``: ``state`` ("ok" or "not saved"), the
        save ``problem``, the last ``repaired`` record, ``pending`` (images changed since it
        was saved, searched beside it) and a ``message`` in words."""
        repair = self.repaired
        if self.unsaved:
            message = f"could not be saved ({self.unsaved}): searching an in-memory copy rebuilt from SQLite"
        else:
            message = "ok"
        pending = len(self.delta.dead)
        if pending:
            message += (
                f"; {pending} image(s) changed since it was saved, searched beside it until the next merge"
            )
        if repair:
            message += (
                f"; rebuilt from SQLite at {repair.get('at')} because the saved file was damaged "
                f"({repair.get('reason')})"
            )
        state = "not saved" if self.unsaved else "ok"
        return {
            "state": state,
            "problem": self.unsaved,
            "repaired": repair,
            "pending": pending,
            "message": message,
        }

    @classmethod
    def open(
        cls, store: Store, dim: int, strict: bool = False, base: VectorIndex | None = None
    ) -> VectorIndex:
        """The store's vectors as they are now: the saved main index (``base``'s, when the
        file is still the one it holds, without reading it again) caught up with the log;
        rebuilt from SQLite and saved when it cannot be (missing, damaged, another log).

        :param strict: True for writers (index runs, ``tune``): a failed save raises.
            False for readers: a failed save (disk full, read-only folder) is logged and
            the rebuilt index is searched from memory (see :attr:`unsaved`).
        :param base: the index searched so far (the service's), whose main index and delta
            are reused when they still hold.
        :raises OSError: ``strict`` and the rebuilt index could not be saved.
        """
        seen: Main | None = None
        for _ in range(3):
            try:
                found = _load_main(store.dir, dim, seen or (base.main if base is not None else None))
            except vector_file.Damaged as exc:
                log.warning("the saved vector index is damaged (%s); rebuilding it from SQLite", exc)
                return cls.rebuild(store, dim, strict, {"at": _now(), "reason": str(exc)})
            if found is None or found[0] is seen:  # (the same stale file again: rebuild)
                break
            main, state = found
            with store.snapshot():
                gen = store.generation()
                pos = vector_log.position(store.db.conn)
                if main.continues_in(store.db.conn, pos):
                    start = base.delta if base is not None and base.main is main else None
                    if start is None or not main.seq <= start.seq <= pos.seq:
                        start = Delta.empty(main.seq, main.tag, dim)
                    if pos.seq - start.seq <= READER_DELTA_MAX:
                        return cls(main, start.advanced(store, pos, dim), gen, state.get("repaired"))
                    if base is not None:  # too many changes to read beside it: a writer merges them
                        return base
                    break
                if state.get("generation") == gen:  # saved before the log (or with it): it is now
                    main.seq, main.epoch, main.tag = pos.seq, pos.epoch, pos.tag
                    return cls(main, Delta.empty(pos.seq, pos.tag, dim), gen, state.get("repaired"))
            if not (main.epoch == pos.epoch and 0 <= main.seq < pos.floor):
                log.info("the vector index is stale; building it from SQLite")
                break
            seen = main  # a writer merged and pruned the log meanwhile: read its file
        return cls.rebuild(store, dim, strict)

    @classmethod
    def rebuild(
        cls, store: Store, dim: int, strict: bool = False, repaired: dict | None = None
    ) -> VectorIndex:
        """Build from every embedding in SQLite and save atomically (see :meth:`open` for
        ``strict``); a reader leaves a saved index of a later point of the same log as it is.

        The generation, the log position and the vectors are read in one snapshot, so an
        index run committing meanwhile can never label newer vectors with an older
        generation; they stream from SQLite into the index chunk by chunk (see
        :func:`build_from_chunks`).
        """
        budget = vector_memory_bytes()
        with store.snapshot():
            gen = store.generation()
            pos = vector_log.position(store.db.conn)
            n = store.embeddings.count()
            key = choose_index_key(n, dim, budget)
            index = build_from_chunks(key, dim, n, lambda: store.embeddings.chunks(dim))
        vi = cls(Main.at(index, key, pos, budget), Delta.empty(pos.seq, pos.tag, dim), gen, repaired)
        if not strict and repaired is None and _saved_later(store.dir, pos):
            return vi  # a writer saved a newer one while this was built: keep it
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

    @classmethod
    def keep_up(cls, store: Store, dim: int, least: int = 0) -> str:
        """For writers, after committing vectors: leave the saved index as it is when it can
        catch up from the log and the changes since it are few (:func:`merge_due`, and more
        than ``least``: an index run calls it after each batch with :data:`DELTA_MAX`, at the
        end with 0), else merge them into it (or rebuild it: a bulk change, another kind) and
        save, then drop the log entries the saved index reflects; returns what was done
        ("caught up", "merged", "rebuilt", "saved").

        :raises OSError: the index could not be saved (nothing half-written is left).
        """
        try:
            state = vector_file.read_state(store.dir)
        except (OSError, vector_file.Damaged):
            state = None
        bulk = False
        usable = state is not None and not _why_unusable(state, dim) and isinstance(state.get("count"), int)
        if usable and (store.dir / INDEX_NAME).is_file():
            with store.snapshot():
                if vector_log.state_continues(store.db.conn, state):
                    changed = vector_log.count_since(store.db.conn, state["seq"])
                    if changed <= least or not merge_due(
                        changed, state["count"] - int(state.get("masked") or 0)
                    ):
                        return "caught up"
                    bulk = changed > MASKED_MAX_SHARE * state["count"]  # (e.g. every vector again)
        if bulk:
            vi = cls.rebuild(store, dim, strict=True)
        else:
            vi = cls.open(store, dim, strict=True)
            if len(vi.delta.dead):
                return vi.merged(store, dim)
        old = state or {}
        if vi.main.sha256 != old.get("sha256"):
            done = "rebuilt"
        elif vi.main.seq == old.get("seq"):
            return "caught up"
        else:
            vi.save(store.dir)  # saved by a version without the log: now with its position
            done = "saved"
        _prune(store, vi.main.seq)
        return done

    def merged(self, store: Store, dim: int) -> str:
        """Merge the delta into the main index (in place: a writer's own copy, never one that
        readers search) and save it, then prune the log up to it; rebuild instead when the
        main index's kind no longer fits the collection's size (within 10%, so a collection
        at a bound does not flip between kinds) or too many of its rows would be masked.
        Returns "merged" or "rebuilt".

        :raises OSError: the index could not be saved.
        """
        main, delta = self.main, self.delta
        have, rows = main.id_rows()
        outdated = rows[np.isin(have, delta.dead)] if len(have) else rows[:0]
        masked = main.masked + len(outdated)
        too_many_masked = masked > MASKED_MAX_SHARE * max(main.index.ntotal, 1)
        budget = main.budget or vector_memory_bytes()
        kinds = {choose_index_key(int(self.ntotal * f), dim, budget) for f in (0.9, 1.0, 1.1)}
        if main.key not in kinds or too_many_masked:
            _prune(store, VectorIndex.rebuild(store, dim, strict=True).main.seq)
            return "rebuilt"
        faiss.rev_swig_ptr(main.index.id_map.data(), main.index.id_map.size())[outdated] = -1
        if len(delta.ids):
            main.index.add_with_ids(delta.vecs, delta.ids)
        if isinstance(main.index, faiss.IndexIDMap2):  # (files saved before IDMap)
            main.index.construct_rev_map()
        merged = Main(main.index, main.key, delta.seq, main.epoch, delta.tag, main.budget, masked=masked)
        VectorIndex(merged, Delta.empty(delta.seq, delta.tag, dim), self.generation, self.repaired).save(
            store.dir
        )
        _prune(store, delta.seq)
        return "merged"

    def save(self, index_dir) -> None:
        """Write the main index and its state file (with the checksum), each by atomic rename.

        :raises ValueError: there is a delta (the main index alone is not the store's state).
        :raises OSError: they could not be written; nothing is left behind.
        """
        if len(self.delta.dead):
            raise ValueError("an index with changes beside it is saved by merging them (merged)")
        main = self.main
        state = {
            "generation": self.generation,
            "seq": main.seq,
            "epoch": main.epoch,
            "tag": main.tag,
            "count": int(main.index.ntotal),
            "masked": main.masked,
            "key": main.key,
            "budget": main.budget,
            "dim": int(main.index.d),
            "repaired": self.repaired,
        }
        written = vector_file.save(index_dir, main.index, state)
        self.repaired = written.get("repaired")
        main.sha256 = written["sha256"]
        self.unsaved = None

    def search(
        self,
        queries: np.ndarray,
        k: int,
        allowed: np.ndarray | None = None,
        stored: StoredVectors | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(scores (Q, k) float32, ids (Q, k) int64)``; missing slots have id -1.

        The main index's best and the delta's (scored exactly) are merged. A compressed main
        index gives :data:`RERANK` times ``k`` candidates, scored again exactly from
        ``stored`` (without it, its scores are the codes' approximations).

        :param allowed: int64 ids; when given, only these are searched, exactly, so a
            filtered search fills ``k`` when it can: a flat or IVF index through a bitmap
            selector (an IVF index in all its lists: a scan of ids, scoring only those
            allowed), an HNSW one over the stored vectors of those ids.
        """
        q = len(queries)
        if self.ntotal == 0:
            return np.zeros((q, 0), np.float32), np.zeros((q, 0), np.int64)
        k = max(1, min(k, self.ntotal))
        x = np.ascontiguousarray(queries, dtype=np.float32)
        if stored is not None and self.main.compressed:
            found = _rescored(x, self._search_main(x, k * self.main.rerank, allowed), k, stored)
        else:
            found = self._search_main(x, k, allowed)
        if not len(self.delta.ids):
            return found
        return _merge_top([found, self._search_delta(x, k, allowed)], k)

    def _search_main(
        self, x: np.ndarray, k: int, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`search` in the main index alone, its masked and outdated rows left out."""
        main, dead = self.main, self.delta.dead
        if main.index.ntotal - main.masked <= 0:
            return np.zeros((len(x), 0), np.float32), np.zeros((len(x), 0), np.int64)
        k = min(k, int(main.index.ntotal))
        if allowed is None:
            sel, _keep = _live_selector(dead, main.masked > 0)  # (_keep: alive through the search)
            return main.index.search(x, k, params=self._params(sel, k))
        allowed = np.unique(np.asarray(allowed, dtype=np.int64))
        allowed = allowed[main.present(allowed) & ~np.isin(allowed, dead)]
        if not len(allowed):
            return np.zeros((len(x), 0), np.float32), np.zeros((len(x), 0), np.int64)
        k = min(k, len(allowed))
        inner = faiss.downcast_index(main.index.index)
        if isinstance(inner, faiss.IndexHNSW):  # a graph walk through a selector can stop short
            return self._exact_among(x, k, allowed)
        sel = _bitmap_selector(allowed)  # an IVF index: every list, so none of them is missed
        nprobe = inner.nlist if isinstance(inner, faiss.IndexIVF) else None
        return main.index.search(x, k, params=self._params(sel, k, nprobe=nprobe))

    def _search_delta(
        self, x: np.ndarray, k: int, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """The exact top ``k`` of the delta's vectors (among ``allowed`` ids, when given)."""
        ids, vecs = self.delta.ids, self.delta.vecs
        if allowed is not None:
            keep = np.isin(ids, allowed)
            ids, vecs = ids[keep], vecs[keep]
        if not len(ids):
            return np.zeros((len(x), 0), np.float32), np.zeros((len(x), 0), np.int64)
        scores = x @ vecs.T
        top = np.argsort(-scores, axis=1, kind="stable")[:, : min(k, len(ids))]
        return np.take_along_axis(scores, top, 1).astype(np.float32), ids[top]

    def _exact_among(self, x: np.ndarray, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The exact top ``k`` among the ``allowed`` ids (sorted, each live in the main index):
        their stored vectors scored in chunks (memory: one chunk), as :meth:`search` returns them."""
        ids, rows = self.main.id_rows()
        present = np.searchsorted(ids, allowed)
        best_s = np.full((len(x), 0), -np.inf, np.float32)
        best_i = np.zeros((len(x), 0), np.int64)
        storage = faiss.downcast_index(self.main.index.index)
        for start in range(0, len(present), SCORE_CHUNK):
            part = present[start : start + SCORE_CHUNK]
            scores = x @ storage.reconstruct_batch(rows[part]).T
            best_s = np.concatenate([best_s, scores], axis=1)
            best_i = np.concatenate([best_i, np.broadcast_to(ids[part], scores.shape)], axis=1)
            top = np.argsort(-best_s, axis=1, kind="stable")[:, :k]
            best_s, best_i = np.take_along_axis(best_s, top, 1), np.take_along_axis(best_i, top, 1)
        return best_s.astype(np.float32), best_i

    def _params(self, sel, k: int, nprobe: int | None = None) -> faiss.SearchParameters:
        """Search parameters for ``k`` results through the selector ``sel`` (None: every id)."""
        inner = faiss.downcast_index(self.main.index.index)
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

    def search_passing(
        self, queries: np.ndarray, k: int, passing: Passing, stored: StoredVectors | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
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
            return self.search(queries, min(k, len(first)), allowed=first, stored=stored)
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
                return self.search(queries, k, allowed=passing.ids(), stored=stored)
            fetch = more
        rescore = stored is not None and self.main.compressed
        want = k * self.main.rerank if rescore else k  # (the candidates' scores are approximate)
        out_scores = np.zeros((q, want), np.float32)
        out_ids = np.full((q, want), -1, np.int64)
        for row in range(q):
            got = ids[row][kept[row]][:want]
            out_scores[row, : len(got)], out_ids[row, : len(got)] = scores[row][kept[row]][:want], got
        if rescore:
            x = np.ascontiguousarray(queries, dtype=np.float32)
            return _rescored(x, (out_scores, out_ids), k, stored)
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

    Readers get whichever index is current; when the store's generation moves on, one
    thread catches it up (the changes read from the log beside the same main index, which
    is read again only when a writer saved a merged one) while the others keep searching
    the old one.
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
                self._current = VectorIndex.open(store, self.dim, base=self._current)
            self._loaded_at = time.monotonic()
            return self._current
        finally:
            self._lock.release()
