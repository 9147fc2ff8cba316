import shutil

import numpy as np
import pytest

from indexer.pipeline import Indexer
from searchengine.errors import IndexMismatch, SearchEngineError, SystemicFailure
from searchengine.models.registry import create_embedder
from searchengine.search import SearchEngine
from searchengine.store.db import Store
from tests.conftest import make_image, write_images
from tests.hostile import make_hostile


class CountingEmbedder:
    """Wraps an embedder and counts the images it was asked to embed."""

    def __init__(self, inner):
        self.inner, self.calls = inner, 0

    @property
    def id(self):
        return self.inner.id

    def load(self):
        self.inner.load()

    def embed_images(self, images):
        self.calls += len(images)
        return self.inner.embed_images(images)

    def embed_texts(self, texts):
        return self.inner.embed_texts(texts)


@pytest.fixture
def counting(tiny_embedder):
    return CountingEmbedder(tiny_embedder)


def run(index_dir, folder, embedder, **kw):
    store = Store(index_dir)
    report = Indexer(store, embedder, batch_size=4).run(folder, **kw)
    return store, report


def test_round_trip_scores_are_true_cosines(index_dir, image_dir, tiny_embedder):
    store, report = run(index_dir, image_dir, tiny_embedder)
    assert (report.scanned, report.embedded, report.failed) == (9, 9, 0)
    engine = SearchEngine(store, tiny_embedder)
    hits = engine.query("a red square", limit=20, mode="vector", min_score=-1, explain=True).hits
    assert len(hits) == 9
    assert [h.rank for h in hits] == list(range(1, 10))
    paths = sorted(str(p) for p in image_dir.rglob("*.png"))
    assert sorted(h.path for h in hits) == paths
    from searchengine.imaging import load_image

    q = tiny_embedder.embed_texts(["a red square"])[0]
    for h in hits:
        v = tiny_embedder.embed_images([load_image(h.path)[0]])[0]
        assert h.legs["vector"]["score"] == pytest.approx(float(q @ v), abs=1e-4)
    scores = [h.legs["vector"]["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert len(engine.query("a red square", limit=3, mode="vector", min_score=-1).hits) == 3


def test_reindex_unchanged_embeds_nothing(index_dir, image_dir, counting):
    run(index_dir, image_dir, counting)
    assert counting.calls == 9
    _, report = run(index_dir, image_dir, counting)
    assert counting.calls == 9
    assert (report.unchanged, report.processed) == (9, 0)


def test_adding_one_file_embeds_one(index_dir, image_dir, counting):
    run(index_dir, image_dir, counting)
    write_images(image_dir, 1, prefix="new", start=100)
    _, report = run(index_dir, image_dir, counting)
    assert counting.calls == 10 and report.embedded == 1


def test_deleted_file_leaves_results(index_dir, image_dir, tiny_embedder):
    store, _ = run(index_dir, image_dir, tiny_embedder)
    victim = image_dir / "img002.png"
    victim.unlink()
    store, report = run(index_dir, image_dir, tiny_embedder)
    assert report.deleted == 1
    hits = SearchEngine(store, tiny_embedder).query("anything", limit=50, mode="vector", min_score=-1).hits
    assert str(victim) not in {h.path for h in hits} and len(hits) == 8


def test_changed_content_is_re_embedded_and_touch_is_not(index_dir, image_dir, counting):
    run(index_dir, image_dir, counting)
    make_image((0, 0, 255), size=(30, 30)).save(image_dir / "img001.png")  # new bytes
    (image_dir / "img003.png").touch()  # same bytes, new mtime
    _, report = run(index_dir, image_dir, counting)
    assert (report.embedded, report.touched) == (1, 1)
    assert counting.calls == 10


def test_moved_file_reuses_its_vector(index_dir, image_dir, counting):
    run(index_dir, image_dir, counting)
    shutil.move(image_dir / "img004.png", image_dir / "sub" / "moved.png")
    _, report = run(index_dir, image_dir, counting)
    assert (report.reused, report.deleted, report.embedded) == (1, 1, 0)
    assert counting.calls == 9


def test_index_refuses_another_encoder(index_dir, image_dir, tiny_embedder, tiny_spec_other):
    store, _ = run(index_dir, image_dir, tiny_embedder)
    other = create_embedder(tiny_spec_other)
    with pytest.raises(IndexMismatch, match="--index NEW_FOLDER"):
        Indexer(store, other).run(image_dir)
    with pytest.raises(IndexMismatch, match="se-tiny:random"):
        SearchEngine(store, other)


def test_hostile_corpus_indexes_without_crash(tmp_path, index_dir, tiny_embedder):
    folder = tmp_path / "hostile"
    expected = make_hostile(folder)
    store, report = run(index_dir, folder, tiny_embedder)
    failures = {p.rsplit("/", 1)[1]: reason for p, reason in report.failures}
    for name, fragment in expected.items():
        if fragment is None:
            assert name not in failures
        else:
            assert fragment in failures[name], (name, failures.get(name))
    stored = {f.path.rsplit("/", 1)[1]: f.error for f in store.images.failures()}
    assert stored == failures
    hits = SearchEngine(store, tiny_embedder).query("x", limit=100, mode="vector", min_score=-1).hits
    good = {n for n, f in expected.items() if f is None}
    assert {h.path.rsplit("/", 1)[1] for h in hits} == good
    _, again = run(index_dir, folder, tiny_embedder)  # failures are remembered, not retried
    assert again.processed == 0
    _, retried = run(index_dir, folder, tiny_embedder, retry_failed=True)
    assert retried.failed == len(expected) - len(good)


def test_batch_error_isolates_the_bad_image(index_dir, image_dir, tiny_embedder):
    class Flaky(CountingEmbedder):
        def embed_images(self, images):
            if any(im.size == (48, 40) and im.getpixel((0, 0)) == (1, 2, 3) for im in images):
                raise RuntimeError("backend exploded")
            return super().embed_images(images)

    make_image((1, 2, 3)).save(image_dir / "poison.png")
    store, report = run(index_dir, image_dir, Flaky(tiny_embedder))
    assert report.failed == 1 and report.embedded == 9
    assert "backend exploded" in store.images.failures()[0].error


def test_not_a_folder(index_dir, tmp_path, tiny_embedder):
    with pytest.raises(SearchEngineError, match="not a folder"):
        run(index_dir, tmp_path / "nope", tiny_embedder)


def test_vectors_stored_in_sqlite_are_unit_norm(index_dir, image_dir, tiny_embedder):
    store, _ = run(index_dir, image_dir, tiny_embedder)
    ids, vecs = store.embeddings.all(tiny_embedder.id.dim)
    assert len(ids) == 9 and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, rtol=1e-5)


class BrokenEmbedder(CountingEmbedder):
    """A backend that fails on everything, as a broken install or a full disk would."""

    def __init__(self, inner, exc):
        super().__init__(inner)
        self.exc = exc

    def embed_images(self, images):
        raise self.exc


@pytest.mark.parametrize("exc", [RuntimeError("model weights corrupt"), MemoryError()])
def test_systemic_failure_stops_the_run_and_marks_no_file_failed(index_dir, image_dir, tiny_embedder, exc):
    with pytest.raises(SystemicFailure, match="run stopped"):
        run(index_dir, image_dir, BrokenEmbedder(tiny_embedder, exc))
    store = Store(index_dir)
    assert store.images.failures() == [] and store.images.counts().ok == 0
    _, report = run(index_dir, image_dir, tiny_embedder)  # fixed: everything is indexed, no --retry-failed
    assert (report.embedded, report.failed) == (9, 0)


def test_ocr_crashing_on_every_image_stops_the_run(index_dir, image_dir, tiny_embedder):
    class DeadOcr:
        id = "dead-ocr:1"

        def read(self, image, scale=1.0):
            raise RuntimeError("onnxruntime session failed")

    store = Store(index_dir)
    with pytest.raises(SystemicFailure, match="OCR failed on every image"):
        Indexer(store, tiny_embedder, ocr=DeadOcr(), batch_size=4).run(image_dir)
    assert store.text.of(1).stages == {} and store.images.counts().stage_errors == 0


def test_a_batch_of_only_bad_images_is_recorded_per_file(index_dir, image_dir, tiny_embedder):
    """Two images the model refuses, alone in a batch: the backend works on a plain image,
    so they are failed files, not a broken backend, and later runs go on."""

    class Picky(CountingEmbedder):
        def embed_images(self, images):
            if any(min(im.size) < 8 for im in images):
                raise ValueError("image too small for the model")
            return super().embed_images(images)

    for name in ("aa_tiny1.png", "aa_tiny2.png"):
        make_image(size=(4, 4)).save(image_dir / name)
    store = Store(index_dir)
    report = Indexer(store, Picky(tiny_embedder), batch_size=2).run(image_dir)
    assert (report.failed, report.embedded) == (2, 9)
    assert {f.path.rsplit("/", 1)[1] for f in store.images.failures()} == {"aa_tiny1.png", "aa_tiny2.png"}
    again = Indexer(store, Picky(tiny_embedder), batch_size=2).run(image_dir)
    assert again.processed == 0


def test_a_search_writing_its_cache_mid_batch_does_not_fail_the_run(tmp_path, tiny_embedder):
    """Searches commit meanwhile (the cached relevance cutoff, ``set_meta(wait=False)``);
    a batch that had read before writing used to fail with "database is locked"."""
    folder = tmp_path / "photos"
    write_images(folder, 6)
    store, searcher = Store(tmp_path / "idx"), Store(tmp_path / "idx")
    indexer = Indexer(store, tiny_embedder, batch_size=3)
    real, wrote = store.images.write_batch, []

    def racing(writes):
        store.db.execute("SELECT count(*) FROM images").fetchall()  # the batch has read ...
        wrote.append(searcher.set_meta("cutoff", "{}", wait=False))  # ... a search commits
        real(writes)

    store.images.write_batch = racing
    report = indexer.run(folder)
    assert report.embedded == 6 and wrote[:2] == [False, False]  # the batches held the lock: it waits
