"""The vector index catches up with the store from the vector log instead of being rebuilt.

Every index type the store can choose (made to appear at small sizes by lowering the size
bounds) is checked against a brute-force reference over the vectors SQLite holds now:
after adds, updates and deletes that were committed but never merged (a crash between the
commit and the save), after a merge, and with filters that pass a few or many images.
"""

from __future__ import annotations

import shutil
import sqlite3
import threading

import numpy as np
import pytest

from searchengine import derived
from searchengine.models.base import l2_normalize
from searchengine.records import EncoderId, Filters
from searchengine.search.legs import vector_leg
from searchengine.store import vector_build, vector_file, vector_log
from searchengine.store.db import Store
from searchengine.store.images import ImageWrite
from searchengine.store.vectors import INDEX_NAME, Delta, PassingIds, VectorCache, VectorIndex, merge_due

DIM, K = 16, 20
# the size bounds and memory budget (MB) that pick each kind for 400 vectors of 16 dimensions
KINDS = {
    "Flat": (10**6, 10**7, 1024),
    "HNSW": (50, 10**7, 1024),
    "HNSW-SQ8": (50, 10**7, 0.13),  # 400 x (16 + 296) B fits, 400 x (64 + 296) does not
    "IVF-SQ8": (50, 60, 1024),
    "IVF-PQ": (50, 60, 0.0127),  # 400 x (1 + 32) B: one byte per vector (k-means of 4 dims is slow)
}
MIN_RECALL = {
    "Flat": 1.0,
    "HNSW32,Flat": 0.95,
    "HNSW32,SQ8": 0.95,  # re-ranked exactly from SQLite
    "IVF64_HNSW32,SQ8": 0.9,
    "IVF64_HNSW32,PQ1": 0.9,
}


def _vectors(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(0).normal(size=(20, DIM))
    return l2_normalize(centres[rng.integers(0, 20, n)] + 0.6 * rng.normal(size=(n, DIM))).astype(np.float32)


def _write(store: Store, start: int, vecs: np.ndarray, fmt: str = "PNG") -> None:
    writes = []
    for i, vec in enumerate(vecs, start):
        row = {
            "path": f"/x/{i}.png",
            "root": "/x",
            "sha256": f"{i:064x}",
            "size": 1,
            "mtime_ns": 1,
            "width": 1,
            "height": 1,
            "format": fmt if i % 10 else "GIF",  # 10% GIF: a selective filter
            "status": "ok",
            "error": None,
        }
        writes.append(ImageWrite(row["path"], row=row, vector=vec.tobytes()))
    store.images.write_batch(writes)


@pytest.fixture(params=list(KINDS))
def key(request, monkeypatch):
    exact_max, hnsw_max, budget_mb = KINDS[request.param]
    monkeypatch.setattr(vector_build, "EXACT_MAX", exact_max)
    monkeypatch.setattr(vector_build, "HNSW_MAX", hnsw_max)
    monkeypatch.setenv("SE_VECTOR_MEMORY_MB", str(budget_mb))
    return vector_build.choose_index_key(400, DIM, int(budget_mb * 2**20))


def _store(tmp_path, n: int = 400) -> Store:
    store = Store(tmp_path / "index")
    store.bind_encoder(EncoderId("test", "t", DIM))
    _write(store, 0, _vectors(n, seed=1))
    return store


def _change(store: Store) -> None:
    """Add 30 images, give 10 a new vector, delete 20: committed, never merged."""
    _write(store, 10_000, _vectors(30, seed=2))
    _write(store, 5, _vectors(10, seed=3))  # ids of /x/5.png ... /x/14.png: new vectors
    store.images.delete_paths([f"/x/{i}.png" for i in range(100, 120)])


def _reference(store: Store, q: np.ndarray, k: int, fmt: str | None = None) -> list[int]:
    ids, vecs = store.embeddings.all(DIM)
    if fmt:
        keep = np.isin(ids, store.images.filtered_ids(Filters(formats=(fmt,))))
        ids, vecs = ids[keep], vecs[keep]
    return ids[np.argsort(-(vecs @ q), kind="stable")[:k]].tolist()


def _recall(got: list[int], want: list[int]) -> float:
    return len(set(got) & set(want)) / max(len(want), 1)


def _check(store: Store, vi: VectorIndex, key: str) -> None:
    assert vi.ntotal == store.embeddings.count()
    for q in _vectors(6, seed=9):
        for fmt in (None, "PNG", "GIF"):  # no filter, ~90% pass, ~10% pass
            filters = Filters(formats=(fmt,)) if fmt else None
            got = [i for i, _ in vector_leg(store, vi, q[None, :], K, filters, None)]
            want = _reference(store, q, K, fmt)
            assert len(got) == len(want) == len(set(got))
            assert _recall(got, want) >= MIN_RECALL[key], (fmt, got, want)


def test_changes_committed_but_never_merged_are_searched(tmp_path, key):
    store = _store(tmp_path)
    first = VectorIndex.open(store, DIM)
    assert first.key == key and not first.condition()["pending"]
    saved = (store.dir / INDEX_NAME).read_bytes()
    _change(store)  # the process "crashes" here: no refresh, the file is the old one
    vi = VectorIndex.open(store, DIM)
    assert (store.dir / INDEX_NAME).read_bytes() == saved  # caught up, not rebuilt
    assert vi.condition()["pending"] == 60 and "60 image(s) changed" in vi.condition()["message"]
    _check(store, vi, key)
    gone = store.db.execute("SELECT 1 FROM images WHERE path = '/x/100.png'").fetchone()
    assert gone is None and 101 not in vi.search(_vectors(3, seed=4), 400)[1]  # deleted ids never come back


def test_a_merge_folds_the_changes_in_and_prunes_the_log(tmp_path, key, monkeypatch):
    store = _store(tmp_path)
    assert derived.refresh(store, DIM) == "rebuilt"  # the first save (nothing saved before)
    assert store.db.execute("SELECT count(*) FROM vector_log").fetchone()[0] == 0  # the 400 adds: in it
    _write(store, 20_000, _vectors(3, seed=5))
    assert derived.refresh(store, DIM) == "caught up"  # 3 changes: not past 2% of 400
    _change(store)
    done = derived.refresh(store, DIM)
    assert done == "merged"
    state = vector_file.read_state(store.dir)
    pos = vector_log.position(store.db.conn)
    assert state["seq"] == pos.seq == pos.floor and state["masked"] == 10 + 20
    assert store.db.execute("SELECT count(*) FROM vector_log").fetchone()[0] == 0
    vi = VectorIndex.open(store, DIM)
    assert not vi.condition()["pending"] and vi.key == key
    _check(store, vi, key)


def test_small_changes_leave_the_saved_file_alone(tmp_path, monkeypatch):
    store = _store(tmp_path, n=400)
    monkeypatch.setattr("searchengine.store.vectors.DELTA_SHARE", 0.5)
    derived.refresh(store, DIM)
    saved = (store.dir / INDEX_NAME).read_bytes()
    _write(store, 20_000, _vectors(30, seed=5))
    assert derived.refresh(store, DIM) == "caught up"
    assert (store.dir / INDEX_NAME).read_bytes() == saved
    assert VectorIndex.open(store, DIM).ntotal == 430


def test_merge_due_bounds():
    assert merge_due(1, 10) and not merge_due(1, 100)  # 2% of the main index
    assert not merge_due(9_999, 10**6) and merge_due(10_001, 10**6)  # at most 10,000
    assert not merge_due(0, 0)


def test_too_many_masked_rows_or_another_kind_rebuild(tmp_path, monkeypatch):
    store = _store(tmp_path, n=400)
    derived.refresh(store, DIM)
    store.images.delete_paths([f"/x/{i}.png" for i in range(0, 100)])  # 25% masked: past 20%
    assert derived.refresh(store, DIM) == "rebuilt"
    assert vector_file.read_state(store.dir)["masked"] == 0
    monkeypatch.setattr(vector_build, "EXACT_MAX", 310)  # 300 now
    _write(store, 20_000, _vectors(30, seed=5))  # 330: past the bound, but within 10% of it
    assert derived.refresh(store, DIM) == "merged"
    assert vector_file.read_state(store.dir)["key"] == "Flat"
    _write(store, 30_000, _vectors(70, seed=6))  # 400: another kind
    assert derived.refresh(store, DIM) == "rebuilt"
    assert vector_file.read_state(store.dir)["key"] == "HNSW32,Flat"


def test_a_repaired_database_log_rebuilds(tmp_path):
    store = _store(tmp_path)
    VectorIndex.open(store, DIM)
    with store.db.atomic():
        store.db.execute("DELETE FROM embeddings WHERE image_id <= 5")  # lost with a damaged page
        vector_log.restart(store.db.conn)  # what a repair does
        store.bump_generation()
    saved = (store.dir / INDEX_NAME).read_bytes()
    vi = VectorIndex.open(store, DIM)
    assert (store.dir / INDEX_NAME).read_bytes() != saved and vi.ntotal == 395


def test_an_index_saved_before_the_log_is_used_then_saved_with_it(tmp_path):
    store = _store(tmp_path)
    vi = VectorIndex.open(store, DIM)
    state = vector_file.read_state(store.dir)
    for k in ("seq", "epoch", "masked"):
        state.pop(k)
    vector_file.save(store.dir, vi.index, state)  # as an older version saved it
    assert not VectorIndex.open(store, DIM).condition()["pending"]
    assert derived.refresh(store, DIM) == "saved"
    assert vector_file.read_state(store.dir)["seq"] == vector_log.position(store.db.conn).seq


def test_the_service_catches_up_without_reloading(tmp_path):
    store = _store(tmp_path)
    cache = VectorCache(DIM)
    before = cache.get(store)
    _write(store, 20_000, _vectors(5, seed=5))
    after = cache.get(store)
    assert after is not before and after.main is before.main  # the same main index, not read again
    assert after.ntotal == 405 and before.ntotal == 400
    q = _vectors(5, seed=5)[:1]  # the first new vector itself
    assert (
        after.search(q, 1)[1][0, 0]
        == store.db.execute("SELECT id FROM images WHERE path = '/x/20000.png'").fetchone()[0]
    )
    store.images.delete_paths(["/x/20000.png"])
    again = cache.get(store)
    assert again.main is before.main and again.ntotal == 404


def test_the_service_reads_a_merged_file_when_the_log_was_pruned(tmp_path, monkeypatch):
    store = _store(tmp_path)
    cache = VectorCache(DIM)
    before = cache.get(store)
    _change(store)
    assert derived.refresh(store, DIM) == "merged"  # in another process, say
    after = cache.get(store)
    assert after.main is not before.main and not after.condition()["pending"]
    _check(store, after, "Flat")


def test_searches_keep_answering_while_changes_land(tmp_path):
    store = _store(tmp_path)
    cache = VectorCache(DIM)
    cache.get(store)
    errors: list[BaseException] = []
    stop = threading.Event()
    reader = Store(store.dir)

    def search() -> None:
        try:
            while not stop.is_set():
                vi = cache.get(reader)
                found = vi.search(_vectors(2, seed=7), K)[1]
                assert (found >= 0).all() and found.shape == (2, K)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=search) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for step in range(8):
            _write(store, 30_000 + 10 * step, _vectors(10, seed=20 + step))
            derived.refresh(store, DIM)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors, errors[0]
    assert cache.get(reader).ntotal == 480


def test_passing_ids_see_the_delta(tmp_path):
    store = _store(tmp_path)
    VectorIndex.open(store, DIM)
    _write(store, 20_000, _vectors(5, seed=5))
    vi = VectorIndex.open(store, DIM)
    new = [r[0] for r in store.db.execute("SELECT id FROM images WHERE path LIKE '/x/2000_.png'")]
    scores, found = vi.search_passing(_vectors(2, seed=8), 3, PassingIds(np.array(new)))
    assert set(found.ravel().tolist()) <= set(new) and (found >= 0).all()


def _restore(store: Store, backup) -> Store:
    """Put a backup of index.db back in place (the FAISS file stays as it is)."""
    folder = store.dir
    store.close()
    shutil.copy(backup, folder / "index.db")
    for suffix in ("-wal", "-shm"):
        (folder / f"index.db{suffix}").unlink(missing_ok=True)
    return Store(folder)


def test_a_restored_database_is_never_caught_up_from_a_later_file(tmp_path):
    """A backup of index.db put back (or commits a crash rolled back): its next log entries take
    the seqs the FAISS file already reflects, with other vectors: it must be rebuilt."""
    store = _store(tmp_path)
    derived.refresh(store, DIM)
    backup = sqlite3.connect(tmp_path / "backup.db")
    store.db.conn.backup(backup)
    backup.close()
    _write(store, 50_000, _vectors(60, seed=11))
    assert derived.refresh(store, DIM) == "merged"  # the file now reflects 60 more entries
    store = _restore(store, tmp_path / "backup.db")
    new = _vectors(70, seed=12)
    _write(store, 70_000, new)  # the same image ids and seqs again, other vectors
    assert derived.refresh(store, DIM) == "rebuilt"
    vi = VectorIndex.open(store, DIM)
    ids, vecs = store.embeddings.all(DIM)
    assert vi.ntotal == len(ids)
    found = vi.search(new[:20], 1)[1][:, 0]
    assert (found == ids[np.argmax(new[:20] @ vecs.T, axis=1)]).all()


def test_a_bulk_change_is_rebuilt_without_reading_it_beside_the_index(tmp_path, monkeypatch):
    store = _store(tmp_path)
    derived.refresh(store, DIM)
    read: list[int] = []
    advanced = Delta.advanced

    def spy(self, *args):
        delta = advanced(self, *args)
        read.append(len(delta.ids))
        return delta

    monkeypatch.setattr(Delta, "advanced", spy)
    ids, vecs = store.embeddings.all(DIM)
    swapped = [(int(i), v.tobytes()) for i, v in zip(ids, vecs[::-1], strict=True)]
    store.embeddings.replace(EncoderId("test", "t", DIM), swapped)
    assert derived.refresh(store, DIM) == "rebuilt" and not read
    found = VectorIndex.open(store, DIM).search(vecs[:1], 1)[1][0, 0]
    assert found == ids[-1]  # the vectors moved with the swap


def test_a_reader_keeps_its_index_rather_than_read_a_huge_change(tmp_path, monkeypatch):
    monkeypatch.setattr("searchengine.store.vectors.READER_DELTA_MAX", 10)
    store = _store(tmp_path)
    cache = VectorCache(DIM)
    before = cache.get(store)
    _write(store, 20_000, _vectors(30, seed=5))  # 30 log entries: past the reader's bound
    assert cache.get(store) is before  # stale until a writer merges
    derived.refresh(store, DIM)
    assert cache.get(store).ntotal == 430


def test_a_missing_index_file_is_rebuilt_by_the_writer(tmp_path):
    store = _store(tmp_path)
    derived.refresh(store, DIM)
    (store.dir / INDEX_NAME).unlink()
    _write(store, 20_000, _vectors(2, seed=5))
    assert derived.refresh(store, DIM) == "rebuilt" and (store.dir / INDEX_NAME).is_file()


def test_the_log_floor_never_moves_back(tmp_path):
    store = _store(tmp_path)
    derived.refresh(store, DIM)
    _write(store, 20_000, _vectors(30, seed=5))
    derived.refresh(store, DIM)
    floor = vector_log.position(store.db.conn).floor
    with store.writing():
        assert vector_log.prune(store.db.conn, floor - 10) == 0
    assert vector_log.position(store.db.conn).floor == floor


def test_masked_rows_and_a_new_delta_together(tmp_path, key):
    store = _store(tmp_path)
    derived.refresh(store, DIM)
    _change(store)
    assert derived.refresh(store, DIM) == "merged"
    _write(store, 10_000, _vectors(10, seed=31))  # images added by the merge change again
    _write(store, 5, _vectors(5, seed=32))  # rows masked once change again
    store.images.delete_paths([f"/x/{i}.png" for i in range(200, 205)])
    vi = VectorIndex.open(store, DIM)
    assert vi.main.masked > 0 and len(vi.delta.dead)
    _check(store, vi, key)
    for row in vi.search(_vectors(8, seed=40), 400)[1]:
        assert len(row[row >= 0]) == len(set(row[row >= 0].tolist()))
