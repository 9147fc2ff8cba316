"""Vectors stream out of SQLite chunk by chunk: one copy in memory at most, never two.

``Embeddings.all`` fills arrays allocated once; an index rebuild adds chunk by chunk to
FAISS and never holds the vectors itself (an IVF index trains on an even sample first).
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from searchengine.models.base import l2_normalize
from searchengine.store import embeddings as embeddings_module
from searchengine.store.db import Store
from searchengine.store.images import ImageWrite
from searchengine.store.vector_build import (
    TRAIN_PER_CENTROID,
    _training_sample,
    build_from_chunks,
    build_index,
)
from searchengine.store.vectors import VectorIndex

DIM, N = 64, 12_000


def _fill(store: Store, n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    vecs = l2_normalize(np.random.default_rng(seed).normal(size=(n, dim))).astype(np.float32)
    writes = []
    for i, vec in enumerate(vecs):
        path = f"/synthetic/{i}.jpg"
        row = {
            "path": path,
            "root": "/synthetic",
            "sha256": f"{i:064x}",
            "size": i,
            "mtime_ns": i,
            "width": 1,
            "height": 1,
            "format": "JPEG",
            "status": "ok",
            "error": None,
        }
        writes.append(ImageWrite(path, row=row, vector=vec.tobytes()))
    store.images.write_batch(writes)
    return vecs


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("stream") / "index")
    return store, _fill(store, N)


def _reference(store: Store, dim: int) -> tuple[np.ndarray, np.ndarray]:
    rows = store.db.execute("SELECT image_id, vector FROM embeddings ORDER BY image_id").fetchall()
    return np.array([r[0] for r in rows], np.int64), np.stack([np.frombuffer(r[1], np.float32) for r in rows])


def test_all_is_every_vector_by_id_across_chunks(filled, monkeypatch):
    store, _ = filled
    monkeypatch.setattr(embeddings_module, "CHUNK_ROWS", 997)  # chunks that do not divide N
    ids, vecs = store.embeddings.all(DIM)
    want_ids, want_vecs = _reference(store, DIM)
    assert ids.dtype == np.int64 and vecs.dtype == np.float32 and vecs.flags.c_contiguous
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_array_equal(vecs, want_vecs)
    pieces = list(store.embeddings.chunks(DIM, rows=997))
    assert [len(i) for i, _ in pieces][:2] == [997, 997] and sum(len(i) for i, _ in pieces) == N
    np.testing.assert_array_equal(np.concatenate([v for _, v in pieces]), want_vecs)
    assert store.embeddings.count() == N


def test_all_holds_one_copy_plus_a_chunk(filled, monkeypatch):
    """The peak of Python-side memory while loading is the result plus a chunk, not the
    fetched rows and their joined bytes on top of it (two copies)."""
    store, _ = filled
    monkeypatch.setattr(embeddings_module, "CHUNK_ROWS", 500)  # a chunk as small a share as at scale
    size = N * DIM * 4
    tracemalloc.start()
    try:
        ids, vecs = store.embeddings.all(DIM)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert vecs.nbytes == size
    assert peak < 1.5 * size, f"peak {peak / size:.2f} copies"


def test_rebuild_streams_into_the_index(filled, monkeypatch):
    store, vecs = filled

    def whole(*_args, **_kw):
        raise AssertionError("a rebuild must not load every vector at once")

    monkeypatch.setattr(type(store.embeddings), "all", whole)
    monkeypatch.setattr(embeddings_module, "CHUNK_ROWS", 500)
    tracemalloc.start()
    try:
        vi = VectorIndex.rebuild(store, DIM)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 0.5 * vecs.nbytes, f"peak {peak / vecs.nbytes:.2f} copies held in Python"
    assert vi.ntotal == N and vi.key == "Flat"
    ids, _ = _reference(store, DIM)
    scores, found = vi.search(vecs[:5], 3)
    np.testing.assert_array_equal(found[:, 0], ids[:5])  # each vector finds itself
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)


def test_ivf_trains_on_an_even_sample_read_in_chunks():
    rng = np.random.default_rng(1)
    vecs = l2_normalize(rng.normal(size=(5000, 16))).astype(np.float32)
    ids = np.arange(5000, dtype=np.int64) + 10

    def chunks():
        return ((ids[s : s + 777], vecs[s : s + 777]) for s in range(0, 5000, 777))

    index = build_from_chunks("IVF4_HNSW32,Flat", 16, 5000, chunks)
    sample = _training_sample(index, 16, 5000, chunks())
    assert len(sample) == min(5000, TRAIN_PER_CENTROID * 4)  # rows per centroid of 4 lists
    picks = np.unique(np.linspace(0, 4999, len(sample)).astype(np.int64))
    np.testing.assert_array_equal(sample, vecs[picks])
    assert index.ntotal == 5000
    same = build_index("IVF4_HNSW32,Flat", ids, vecs)
    assert same.ntotal == 5000
    _, found = index.search(vecs[:20], 1)
    np.testing.assert_array_equal(found[:, 0], ids[:20])


def test_a_short_blob_fails_rather_than_broadcasts(tmp_path):
    store = Store(tmp_path / "index")
    _fill(store, 3)
    store.db.execute("UPDATE embeddings SET vector = ? WHERE image_id = 2", [np.float32(0.5).tobytes()])
    store.db.conn.commit()
    with pytest.raises(ValueError):
        store.embeddings.all(DIM)
