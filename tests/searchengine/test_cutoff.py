"""The relevance cutoff belongs to the vector index it was computed from, under swaps too."""

from __future__ import annotations

import threading
import zlib

import numpy as np

from searchengine.models.base import l2_normalize
from searchengine.records import EncoderId, SearchRequest
from searchengine.search import SearchEngine
from searchengine.search.cutoff import calibrate
from searchengine.store.db import Store
from searchengine.store.images import ImageWrite
from searchengine.store.vectors import VectorCache, VectorIndex

DIM = 8


class HashEmbedder:
    """Texts -> fixed pseudo-random unit vectors (the same text, the same vector)."""

    id = EncoderId("test", "hash", DIM)

    def load(self) -> None:
        pass

    def embed_texts(self, texts):
        rows = [np.random.default_rng(zlib.crc32(t.encode())).normal(size=DIM) for t in texts]
        return l2_normalize(np.array(rows, dtype=np.float32))


def _add(store: Store, start: int, n: int, seed: int) -> None:
    vecs = l2_normalize(np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32))
    writes = []
    for i, v in zip(range(start, start + n), vecs, strict=True):
        row = {"path": f"/x/{i}.png", "root": "/x", "sha256": str(i), "size": 1, "mtime_ns": 1}
        row.update(width=1, height=1, format="PNG", status="ok", error=None)
        writes.append(ImageWrite(row["path"], row=row, vector=v.tobytes()))
    store.images.write_batch(writes)


def test_no_stale_cutoff_while_generations_swap(tmp_path):
    embedder = HashEmbedder()
    writer = Store(tmp_path)
    writer.bind_encoder(embedder.id)
    _add(writer, 0, 3, seed=0)
    expected = {writer.generation(): calibrate(embedder, VectorIndex.open(writer, DIM))}
    cache = VectorCache(DIM)
    request = SearchRequest("a red kite", mode="vector", limit=5)
    seen: list[tuple[str, float]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def search() -> None:
        engine = SearchEngine(Store(tmp_path), embedder, cache)
        try:
            while not stop.is_set():
                page = engine.run(request)
                seen.append((page.generation, page.cutoff))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=search) for _ in range(4)]
    for t in threads:
        t.start()
    for step in range(12):  # each batch adds vectors: a new generation and, mostly, a new cutoff
        _add(writer, 3 + 4 * step, 4, seed=step + 1)
        expected[writer.generation()] = calibrate(embedder, VectorIndex.open(writer, DIM))
    stop.set()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert len(set(expected.values())) > 3  # the swaps really change the cutoff
    served = [(g, c) for g, c in seen if g in expected]
    assert len(served) == len(seen) > 20
    assert all(c == expected[g] for g, c in served), [
        (g, c, expected[g]) for g, c in served if c != expected[g]
    ]
