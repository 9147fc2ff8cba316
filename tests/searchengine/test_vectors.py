import errno
import json
import os
import threading
import time

import faiss
import numpy as np
import pytest

from searchengine.models.base import l2_normalize
from searchengine.records import EncoderId
from searchengine.store import vector_file, vector_log
from searchengine.store.db import Store
from searchengine.store.images import ImageWrite
from searchengine.store.vectors import (
    INDEX_NAME,
    STATE_NAME,
    VectorIndex,
    _load_main,
    build_index,
    choose_index_key,
)


@pytest.mark.parametrize(
    ("n", "dim", "key"),
    [
        (0, 384, "Flat"),
        (1, 512, "Flat"),
        (20_000, 512, "Flat"),
        (20_001, 512, "HNSW32,Flat"),
        (100_000, 384, "HNSW32,Flat"),
        (100_001, 384, "IVF1024_HNSW32,SQ8"),
        (1_000_000, 384, "IVF4096_HNSW32,SQ8"),
        (2_500_000, 384, "IVF8192_HNSW32,SQ8"),  # 416 B per vector: just inside 1 GiB
        (2_600_000, 384, "IVF8192_HNSW32,PQ96"),
        (4_000_000, 384, "IVF8192_HNSW32,PQ96"),
        (10_000_000, 384, "IVF16384_HNSW32,PQ48"),
        (100_000_000, 384, "IVF32768_HNSW32,PQ24"),  # past the budget: the smallest codes
    ],
)
def test_choose_index_key_by_size(n, dim, key):
    assert choose_index_key(n, dim) == key


@pytest.mark.parametrize(
    ("n", "budget_mb", "key"),
    [
        (100_000, 1024, "HNSW32,Flat"),
        (100_000, 100, "HNSW32,SQ8"),  # 100k x 1,832 B does not fit 100 MiB; 100k x 680 B does
        (100_000, 50, "IVF1024_HNSW32,SQ8"),  # nor a graph over 8-bit codes; 8-bit codes in lists do
        (1_000_000, 256, "IVF4096_HNSW32,PQ96"),
        (10_000_000, 8192, "IVF16384_HNSW32,SQ8"),
        (10_000_000, 100, "IVF16384_HNSW32,PQ24"),
    ],
)
def test_choose_index_key_by_memory_budget(n, budget_mb, key):
    assert choose_index_key(n, 384, budget_mb << 20) == key


def test_the_memory_budget_comes_from_the_environment():
    from searchengine.config import Settings, vector_memory_bytes

    assert vector_memory_bytes({}) == 1 << 30
    assert vector_memory_bytes({"SE_VECTOR_MEMORY_MB": "512"}) == 512 << 20
    with pytest.raises(ValueError, match="SE_VECTOR_MEMORY_MB must be a positive number"):
        Settings.from_env({"SE_VECTOR_MEMORY_MB": "lots"})


def test_choose_index_key_rejects_nonsense():
    with pytest.raises(ValueError):
        choose_index_key(-1, 3)


@pytest.mark.parametrize("key", ["Flat", "HNSW32,Flat"])
def test_build_index_returns_true_neighbours(key):
    rng = np.random.default_rng(0)
    vecs = l2_normalize(rng.normal(size=(500, 16)))
    ids = np.arange(1000, 1500, dtype=np.int64)
    index = build_index(key, ids, vecs)
    scores, found = index.search(vecs[:5], 3)
    assert list(found[:, 0]) == list(ids[:5])
    np.testing.assert_allclose(scores[:, 0], 1.0, rtol=1e-5)


def _store_with_vectors(tmp_path, n=10, dim=8):
    store = Store(tmp_path)
    store.bind_encoder(EncoderId("test", "t", dim))
    rng = np.random.default_rng(1)
    vecs = l2_normalize(rng.normal(size=(n, dim)))
    rows = [
        {
            "path": f"/x/{i}.png",
            "root": "/x",
            "sha256": str(i),
            "size": 1,
            "mtime_ns": 1,
            "width": 1,
            "height": 1,
            "format": "PNG",
            "status": "ok",
            "error": None,
        }
        for i in range(n)
    ]
    store.images.write_batch(
        [ImageWrite(r["path"], row=r, vector=v.tobytes()) for r, v in zip(rows, vecs, strict=True)]
    )
    return store, vecs


def test_vector_index_saved_then_reused(tmp_path):
    store, _ = _store_with_vectors(tmp_path)
    first = VectorIndex.open(store, 8)
    assert first.ntotal == 10 and (tmp_path / INDEX_NAME).is_file()
    mtime = (tmp_path / INDEX_NAME).stat().st_mtime_ns
    again = VectorIndex.open(store, 8)
    assert again.ntotal == 10
    assert (tmp_path / INDEX_NAME).stat().st_mtime_ns == mtime  # loaded, not rebuilt


def test_vector_index_rebuilt_when_stale_or_missing_or_corrupt(tmp_path):
    store, _ = _store_with_vectors(tmp_path)
    VectorIndex.open(store, 8)
    store.images.delete_paths(["/x/0.png", "/x/1.png"])
    assert VectorIndex.open(store, 8).ntotal == 8  # stale: generation moved on
    (tmp_path / INDEX_NAME).unlink()
    assert VectorIndex.open(store, 8).ntotal == 8  # missing
    (tmp_path / INDEX_NAME).write_bytes(b"garbage")
    assert VectorIndex.open(store, 8).ntotal == 8  # corrupt
    assert faiss.read_index(str(tmp_path / INDEX_NAME)).ntotal == 8


# -- the saved file: checksum, failed saves, temporaries ---------------------------------


def _search(vi, queries, k=10):
    scores, ids = vi.search(queries, k)
    return ids.tolist(), np.round(scores, 5).tolist()


def _temps(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_damaged_bytes_are_detected_and_rebuilt_with_a_record(tmp_path):
    store, vecs = _store_with_vectors(tmp_path, n=400, dim=32)
    expected = _search(VectorIndex.open(store, 32), vecs[:8])
    path = tmp_path / INDEX_NAME
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle - 2048 : middle + 2048] = b"\x7e" * 4096  # floats near 8e37, as a disk error left them
    path.write_bytes(bytes(data))
    assert faiss.read_index(str(path)).ntotal == 400  # FAISS alone would load and search it

    repaired = VectorIndex.open(store, 32)
    assert _search(repaired, vecs[:8]) == expected
    assert repaired.repaired["reason"] == "checksum mismatch" and repaired.unsaved is None
    message = repaired.condition()["message"]
    assert message.startswith("ok; rebuilt from SQLite at ") and "damaged (checksum mismatch)" in message
    mtime = path.stat().st_mtime_ns
    again = VectorIndex.open(store, 32)  # the repaired file is saved and verified now
    assert path.stat().st_mtime_ns == mtime and _search(again, vecs[:8]) == expected
    assert again.repaired == repaired.repaired  # the record stays in the state file


def test_state_of_an_older_version_without_checksum_is_rebuilt_once(tmp_path):
    store, _ = _store_with_vectors(tmp_path)
    VectorIndex.open(store, 8)
    state = json.loads((tmp_path / STATE_NAME).read_text())
    del state["sha256"]
    (tmp_path / STATE_NAME).write_text(json.dumps(state))
    os.utime(tmp_path / INDEX_NAME, ns=(1, 1))
    assert VectorIndex.open(store, 8).repaired is None  # stale, not damaged
    rebuilt = (tmp_path / INDEX_NAME).stat().st_mtime_ns
    assert rebuilt != 1 and "sha256" in json.loads((tmp_path / STATE_NAME).read_text())
    VectorIndex.open(store, 8)
    assert (tmp_path / INDEX_NAME).stat().st_mtime_ns == rebuilt


def _full_disk(monkeypatch, after: int = 100):
    """Make every FAISS save fail with ENOSPC after ``after`` bytes have reached the file."""
    real = faiss.PyCallbackIOWriter

    def writer(callback, bs=1 << 20):
        def write(chunk):
            callback(chunk[:after])
            raise OSError(errno.ENOSPC, "No space left on device")

        return real(write, bs)

    monkeypatch.setattr(faiss, "PyCallbackIOWriter", writer)


def test_reader_searches_in_memory_when_the_disk_is_full(tmp_path, monkeypatch, caplog):
    store, vecs = _store_with_vectors(tmp_path, n=50)
    expected = _search(VectorIndex.open(store, 8), vecs[:4])
    saved = {n: (tmp_path / n).read_bytes() for n in (INDEX_NAME, STATE_NAME)}
    with store.db.atomic():  # stale (another vector log): the next open rebuilds and tries to save
        store.bump_generation()
        vector_log.restart(store.db.conn)
    _full_disk(monkeypatch)
    vi = VectorIndex.open(store, 8)
    assert _search(vi, vecs[:4]) == expected
    assert vi.unsaved == "disk full" and vi.condition()["state"] == "not saved"
    assert "could not be saved (disk full): searching an in-memory copy" in vi.condition()["message"]
    assert "could not be saved (disk full)" in caplog.text
    assert _temps(tmp_path) == []
    assert {n: (tmp_path / n).read_bytes() for n in (INDEX_NAME, STATE_NAME)} == saved  # untouched


def test_writer_refresh_fails_on_a_full_disk_and_leaves_nothing(tmp_path, monkeypatch):
    from searchengine import derived

    store, _ = _store_with_vectors(tmp_path)
    _full_disk(monkeypatch)
    with pytest.raises(OSError) as err:
        derived.refresh(store, 8)
    assert err.value.errno == errno.ENOSPC
    assert _temps(tmp_path) == [] and not (tmp_path / INDEX_NAME).exists()


def test_failed_rename_leaves_no_temporaries_and_says_why(tmp_path, monkeypatch):
    store, vecs = _store_with_vectors(tmp_path)

    def refuse(src, dst):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(vector_file.os, "replace", refuse)
    vi = VectorIndex.open(store, 8)
    assert vi.unsaved == "no permission to write the index folder" and vi.ntotal == 10
    assert _temps(tmp_path) == []


def test_save_sweeps_temporaries_of_dead_writers_only(tmp_path):
    store, _ = _store_with_vectors(tmp_path)
    dead = tmp_path / f".{INDEX_NAME}.999999999-deadbeef.tmp"
    old = tmp_path / f".{STATE_NAME}.{os.getpid()}-0000aaaa.tmp"
    live = tmp_path / f".{INDEX_NAME}.{os.getpid()}-1111bbbb.tmp"  # a thread of ours, saving now
    for p in (dead, old, live):
        p.write_bytes(b"x")
    os.utime(old, (time.time() - 2 * vector_file.STALE_TEMP_S,) * 2)
    assert vector_file.stray_temps(tmp_path) == sorted([dead, old])
    VectorIndex.open(store, 8)
    assert _temps(tmp_path) == [live.name]


def test_readers_never_take_a_save_in_progress_for_damage(tmp_path):
    """Saves of different bytes keep replacing the file while a reader loads it: the
    reader gets one of them whole (or rebuilds), never a false alarm."""
    dim, gen = 8, "g"
    rng = np.random.default_rng(3)
    indexes = [build_index("Flat", np.arange(20), l2_normalize(rng.normal(size=(20, dim)))) for _ in range(3)]
    known = {faiss.serialize_index(i).tobytes() for i in indexes}
    state = {"generation": gen, "count": 20, "key": "Flat", "dim": dim}
    vector_file.save(tmp_path, indexes[0], state)
    stop = threading.Event()

    def keep_saving():
        n = 0
        while not stop.is_set():
            n += 1
            vector_file.save(tmp_path, indexes[n % 3], state)

    writer = threading.Thread(target=keep_saving)
    writer.start()
    try:
        loaded = [_load_main(tmp_path, dim, None) for _ in range(150)]
    finally:
        stop.set()
        writer.join()
    whole = [faiss.serialize_index(x[0].index).tobytes() for x in loaded if x is not None]
    assert whole and all(b in known for b in whole)
    assert _temps(tmp_path) == []
