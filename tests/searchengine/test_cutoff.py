"""The relevance cutoff: per-image evidence, and it belongs to the vector index it was computed from."""

from __future__ import annotations

import json
import threading
import zlib

import numpy as np
import pytest
from PIL import Image

from searchengine.models.base import l2_normalize
from searchengine.records import EncoderId, SearchRequest
from searchengine.search import SearchEngine
from searchengine.search.cutoff import Calibration, Neighbourhood, calibration
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


def test_evidence_is_measured_against_each_image_null():
    unrelated = l2_normalize(np.eye(DIM, dtype=np.float32)[:2])  # two "unrelated" directions
    cal = Calibration(unrelated, margin=0.5)
    hub = l2_normalize(np.array([[1, 0, 1, 0, 0, 0, 0, 0]], dtype=np.float32))  # looks like everything
    plain = l2_normalize(np.array([[0, 0, 1, 0, 0, 0, 0, 0]], dtype=np.float32))
    # the same cosine is evidence on a plain image, not on one every unrelated query finds too
    assert cal.evidence(np.array([0.8]), plain) == pytest.approx([0.8])
    assert cal.evidence(np.array([0.8]), hub) == pytest.approx([0.8 - 2**-0.5])
    # the best evidence may come from a hit with a lower cosine
    assert cal.evidence(np.array([0.8, 0.3]), np.vstack([hub, plain])) == pytest.approx([0.8 - 2**-0.5, 0.3])
    assert len(cal.evidence(np.zeros(0), plain[:0])) == 0
    assert 0 < cal.threshold < cal.margin


def test_no_stale_cutoff_while_generations_swap(tmp_path):
    embedder = HashEmbedder()
    writer = Store(tmp_path)
    writer.bind_encoder(embedder.id)
    _add(writer, 0, 3, seed=0)
    expected = {writer.generation(): calibration(writer, embedder, VectorIndex.open(writer, DIM)).threshold}
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

    threads = [threading.Thread(target=search, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for step in range(12):  # each batch adds vectors: a new generation and, mostly, a new cutoff
            _add(writer, 3 + 4 * step, 4, seed=step + 1)
            expected[writer.generation()] = calibration(
                writer, embedder, VectorIndex.open(writer, DIM)
            ).threshold
    finally:  # a failing writer must not leave the searchers spinning (the run would never end)
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


class TableEmbedder(HashEmbedder):
    """Chosen texts -> chosen unit vectors; any other text as :class:`HashEmbedder`."""

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table

    def embed_texts(self, texts):
        rows = [self.table[t] if t in self.table else HashEmbedder.embed_texts(self, [t])[0] for t in texts]
        return l2_normalize(np.array(rows, dtype=np.float32))


def _gallery(tmp_path, with_vectors: bool = True):
    """Four images along four axes (kite, boat, tree, lamp); the query 'kite' is the kite's vector."""
    axes = np.eye(DIM, dtype=np.float32)
    embedder = TableEmbedder({"kite": axes[0], "a kite flying high": axes[0], "zebra": -axes.sum(0)[:DIM]})
    store = Store(tmp_path)
    store.bind_encoder(embedder.id)
    writes = []
    for n, name in enumerate(("kite", "boat", "tree", "lamp")):
        row = {"path": f"/x/{name}.png", "root": "/x", "sha256": name, "size": 1, "mtime_ns": 1}
        row.update(width=1, height=1, format="PNG", status="ok", error=None)
        vec = l2_normalize(axes[n : n + 1] + 0.05)[0] if with_vectors else None
        writes.append(ImageWrite(row["path"], row=row, vector=None if vec is None else vec.tobytes()))
    store.images.write_batch(writes)
    return store, embedder


def test_a_query_nothing_looks_like_finds_nothing_and_a_present_one_finds_its_image(tmp_path):
    store, embedder = _gallery(tmp_path)
    engine = SearchEngine(store, embedder)
    assert [h.name for h in engine.query("kite", mode="vector").hits][:1] == ["kite.png"]
    assert engine.query("zebra", mode="vector").total == 0  # opposite of every image
    assert engine.query("zebra", mode="vector", min_score=-1).total == 4  # the override keeps all
    # hybrid: one word of four in a file name is not evidence when nothing looks like it
    assert engine.query("zebra kite boat lamp tree", min_score=-1).total >= 1
    assert engine.query("zebra", limit=5).total == 0


def test_an_image_whose_vector_is_gone_gives_no_evidence(tmp_path):
    store, embedder = _gallery(tmp_path)
    engine = SearchEngine(store, embedder)
    assert engine.vectors.ntotal == 4  # the FAISS index is loaded, then the kite's embedding row goes
    kite = store.images.by_path("/x/kite.png").id
    store.db.execute("DELETE FROM embeddings WHERE image_id = ?", [kite])
    assert "kite.png" not in [h.name for h in engine.query("a kite flying high", mode="vector").hits]


def test_keyword_hits_stay_when_the_index_has_no_vectors(tmp_path):
    store, embedder = _gallery(tmp_path, with_vectors=False)
    engine = SearchEngine(store, embedder)
    page = engine.query("kite boat and a lamp on a hill")  # one word of several: still found by words
    assert {h.name for h in page.hits} >= {"kite.png"}


def test_an_image_hit_is_measured_by_its_own_neighbourhood():
    sample = l2_normalize(
        np.array([[1, 0.1, 0], [1, 0.2, 0], [1, 0.3, 0], [1, 0.4, 0], [0, 0, 1]], np.float32)
    )
    near = Neighbourhood(np.arange(5), sample)
    hit = sample[:1]  # image 0: its 3rd nearest other is image 3
    evidence, radius = near.evidence([0], np.array([0.99]), hit)
    assert radius == pytest.approx([float(hit[0] @ sample[3])])
    assert evidence == pytest.approx([0.99 - radius[0]])
    # an image outside the sample measures every sample image, the lone one has no close neighbours
    _, lone = near.evidence([99], np.array([0.5]), sample[4:5])
    assert lone[0] < radius[0]
    assert len(near.evidence([], np.zeros(0), sample[:0])[0]) == 0


class PictureEmbedder(TableEmbedder):
    """Query pictures carry their vector in ``info['vec']``."""

    def embed_images(self, images):
        return l2_normalize(np.array([im.info["vec"] for im in images], dtype=np.float32))


def _clusters(tmp_path):
    """Three kinds of image, ten of each, around axes 0, 1 and 2."""
    rng = np.random.default_rng(0)
    store = Store(tmp_path)
    embedder = PictureEmbedder({})
    store.bind_encoder(embedder.id)
    writes = []
    for kind in range(3):
        vecs = l2_normalize(
            np.eye(DIM, dtype=np.float32)[kind] + 0.15 * rng.normal(size=(10, DIM)).astype(np.float32)
        )
        for n, v in enumerate(vecs):
            path = f"/x/{kind}_{n}.png"
            row = {"path": path, "root": "/x", "sha256": path, "size": 1, "mtime_ns": 1}
            row.update(width=1, height=1, format="PNG", status="ok", error=None)
            writes.append(ImageWrite(path, row=row, vector=v.tobytes()))
    store.images.write_batch(writes)
    return store, embedder


def _picture(vec) -> Image.Image:
    im = Image.new("RGB", (4, 4))
    im.info["vec"] = np.asarray(vec, dtype=np.float32)
    return im


def test_image_queries_find_their_kind_and_nothing_for_an_absent_kind(tmp_path):
    store, embedder = _clusters(tmp_path)
    engine = SearchEngine(store, embedder)
    kind0 = store.images.by_path("/x/0_0.png")
    copy = engine.query(image=_picture(store.embeddings.of(kind0.id, DIM)), limit=30)
    assert copy.hits[0].id == kind0.id and copy.hits[0].relevance > 0.9  # the same picture
    assert {h.name[0] for h in copy.hits} == {"0"}  # its kind, not the others
    absent = _picture(np.eye(DIM)[5])  # a kind of picture the collection lacks
    assert engine.query(image=absent, limit=30).total == 0
    assert engine.query(image=absent, limit=30, min_score=-1).total == 30  # the override keeps all
    similar = engine.query(like=kind0.id, limit=30)
    assert similar.hits and kind0.id not in {h.id for h in similar.hits}
    assert {h.name[0] for h in similar.hits} == {"0"}
    assert all(0 <= h.relevance <= 1 for h in similar.hits)


def test_a_complete_match_of_the_words_outranks_images_that_only_look_alike(tmp_path):
    rng = np.random.default_rng(1)
    axes = np.eye(DIM, dtype=np.float32)
    embedder = TableEmbedder({"laptop computer": axes[0]})
    store = Store(tmp_path)
    store.bind_encoder(embedder.id)
    writes = []
    for n in range(30):  # 29 look like the query, the bag does not
        vec = axes[3] if n == 29 else axes[0] + 0.3 * rng.normal(size=DIM).astype(np.float32)
        path = f"/x/{n}.png"
        row = {"path": path, "root": "/x", "sha256": path, "size": 1, "mtime_ns": 1}
        row.update(width=1, height=1, format="PNG", status="ok", error=None)
        writes.append(ImageWrite(path, row=row, vector=l2_normalize(vec[None, :])[0].tobytes()))
    store.images.write_batch(writes)
    ids = {r.path: r.id for r in store.images.by_id(list(range(1, 31))).values()}
    store.library.set_metadata(
        [(ids["/x/29.png"], {"title": "Black laptop bag with a computer sleeve"})]
        + [(ids[f"/x/{n}.png"], {"title": f"Laptop stand {n}"}) for n in range(5, 10)],
        source="test",
    )
    page = SearchEngine(store, embedder).query("laptop computer", limit=10)
    assert page.hits[0].name == "29.png", [(h.name, h.reasons) for h in page.hits]
    assert page.hits[0].relevance == 1.0  # every word of the query is in its title


def test_copies_are_each_others_neighbours_and_a_pair_finds_its_other(tmp_path):
    store, embedder = _clusters(tmp_path)
    copy = l2_normalize(np.eye(DIM, dtype=np.float32)[6:7] + 0.3)[0]
    writes = []
    for n in range(5):  # five identical pictures: a copy's radius is the copies' own cosine
        path = f"/x/copy_{n}.png"
        row = {"path": path, "root": "/x", "sha256": path, "size": 1, "mtime_ns": 1}
        row.update(width=1, height=1, format="PNG", status="ok", error=None)
        writes.append(ImageWrite(path, row=row, vector=copy.tobytes()))
    store.images.write_batch(writes)
    first = store.images.by_path("/x/copy_0.png").id
    names = {h.name for h in SearchEngine(store, embedder).query(like=first, limit=40).hits}
    assert {f"copy_{n}.png" for n in range(1, 5)} <= names

    pair = Store(tmp_path / "pair")
    pair.bind_encoder(embedder.id)
    for name, vec in (("a", np.eye(DIM)[0]), ("b", np.eye(DIM)[1])):
        row = {"path": f"/p/{name}.png", "root": "/p", "sha256": name, "size": 1, "mtime_ns": 1}
        row.update(width=1, height=1, format="PNG", status="ok", error=None)
        pair.images.write_batch([ImageWrite(row["path"], row=row, vector=vec.astype(np.float32).tobytes())])
    a = pair.images.by_path("/p/a.png").id
    assert [h.name for h in SearchEngine(pair, embedder).query(like=a).hits] == ["b.png"]


def test_the_sample_spreads_over_sparse_ids(tmp_path):
    store = Store(tmp_path)
    store.bind_encoder(HashEmbedder.id)
    _add(store, 0, 300, seed=3)
    gone = [f"/x/{i}.png" for i in range(250)]  # the first folder's images removed: ids start at 251
    store.images.delete_paths(gone)
    vectors = VectorIndex.open(store, DIM)
    ids = vectors.spread_ids(20)
    left = sorted(r.id for r in store.images.by_id(list(range(1, 400))).values())
    assert len(ids) == 20 and set(ids) <= set(left)
    assert min(ids) == left[0] and max(ids) == left[-1]  # from the first to the last


def test_the_unrelated_queries_are_embedded_once_per_encoder_not_per_process(tmp_path):
    """A CLI search is a new process: the 20 unrelated queries come from the store after the
    first one, the same vectors; another encoder, or a damaged entry, embeds them again."""
    from searchengine.search.cutoff import UNRELATED, unrelated_vectors

    class Counting(HashEmbedder):
        calls = 0

        def embed_texts(self, texts):
            Counting.calls += 1
            return super().embed_texts(texts)

    store = Store(tmp_path / "index")
    first = unrelated_vectors(store, Counting())
    store.close()
    store = Store(tmp_path / "index")  # as the next process
    again = unrelated_vectors(store, Counting())
    assert Counting.calls == 1 and again.shape == (len(UNRELATED), DIM)
    np.testing.assert_array_equal(first, again)

    class Other(Counting):
        id = EncoderId("test", "other", DIM)

    first_other = unrelated_vectors(store, Other())
    assert Counting.calls == 2
    entry = json.loads(store.get_meta("cutoff_unrelated"))
    store.set_meta("cutoff_unrelated", json.dumps({**entry, "vectors": entry["vectors"][:-8]}))  # cut short
    np.testing.assert_array_equal(unrelated_vectors(store, Other()), first_other)
    assert Counting.calls == 3
    store.close()
