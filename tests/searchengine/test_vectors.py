import faiss
import numpy as np
import pytest

from searchengine.models.base import l2_normalize
from searchengine.records import EncoderId
from searchengine.store.db import Store
from searchengine.store.images import ImageWrite
from searchengine.store.vectors import INDEX_NAME, VectorIndex, build_index, choose_index_key


@pytest.mark.parametrize(
    ("n", "dim", "key"),
    [
        (0, 384, "Flat"),
        (1, 512, "Flat"),
        (20_000, 512, "Flat"),
        (20_001, 512, "HNSW32,Flat"),
        (1_000_000, 384, "HNSW32,Flat"),
        (4_000_000, 384, "IVF8192_HNSW32,Flat"),
    ],
)
def test_choose_index_key_by_size(n, dim, key):
    assert choose_index_key(n, dim) == key


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
