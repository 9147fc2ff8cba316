"""What a scan cannot see is never taken for deleted; odd names and stale files are handled."""

import os

import pytest

from indexer import scan as scan_module
from indexer.pipeline import Indexer
from searchengine.errors import SearchEngineError
from searchengine.search import SearchEngine
from searchengine.store.db import DB_NAME, Store
from searchengine.store.vectors import STATE_NAME, VectorIndex
from tests.conftest import write_images


def _run(index_dir, folder, embedder):
    store = Store(index_dir)
    return store, Indexer(store, embedder, batch_size=4).run(folder)


def _refuse_listing(monkeypatch, target):
    real = os.scandir

    def scandir(path):
        if os.fspath(path) == os.fspath(target):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(scan_module.os, "scandir", scandir)


def test_unlistable_subfolder_keeps_its_rows(index_dir, image_dir, tiny_embedder, monkeypatch):
    _run(index_dir, image_dir, tiny_embedder)
    _refuse_listing(monkeypatch, image_dir / "sub")
    store, report = _run(index_dir, image_dir, tiny_embedder)
    assert report.deleted == 0
    assert store.images.counts().ok == 9


def test_unlistable_root_is_an_error_not_an_empty_folder(index_dir, image_dir, tiny_embedder, monkeypatch):
    _run(index_dir, image_dir, tiny_embedder)
    _refuse_listing(monkeypatch, image_dir.resolve())
    with pytest.raises(SearchEngineError, match="cannot list folder"):
        _run(index_dir, image_dir, tiny_embedder)
    assert Store(index_dir).images.counts().ok == 9


def test_hidden_folder_indexed_directly_survives_parent_run(index_dir, tmp_path, tiny_embedder):
    root = tmp_path / "a"
    write_images(root, 2)
    write_images(root / ".hid", 2, prefix="h", start=10)
    _run(index_dir, root / ".hid", tiny_embedder)
    store, report = _run(index_dir, root, tiny_embedder)
    assert report.deleted == 0 and store.images.counts().ok == 4


def test_undecodable_file_name_is_reported_not_fatal(index_dir, tmp_path, tiny_embedder):
    folder = tmp_path / "names"
    write_images(folder, 2)
    os.rename(folder / "img000.png", os.path.join(os.fsencode(folder), b"bad\xff.png"))
    store, report = _run(index_dir, folder, tiny_embedder)
    assert store.images.counts().ok == 1
    assert any("not valid UTF-8" in reason for _, reason in report.failures)


def test_recreated_database_never_reuses_old_vectors(index_dir, tmp_path, tiny_embedder):
    a, b = tmp_path / "a", tmp_path / "b"
    write_images(a, 3)
    write_images(b, 3, start=20)
    _run(index_dir, a, tiny_embedder)
    for name in os.listdir(index_dir):
        if name.startswith(DB_NAME):
            os.remove(index_dir / name)
    store, _ = _run(index_dir, b, tiny_embedder)
    hits = (
        SearchEngine(store, tiny_embedder)
        .query("x", limit=10, mode="vector", min_score=-1, explain=True)
        .hits
    )
    assert {h.path.rsplit("/", 2)[1] for h in hits} == {"b"}
    q = tiny_embedder.embed_texts(["x"])[0]
    _, vecs = store.embeddings.all(tiny_embedder.id.dim)
    assert hits[0].legs["vector"]["score"] == pytest.approx(float((vecs @ q).max()), abs=1e-5)


def test_state_file_of_the_wrong_shape_means_rebuild(index_dir, image_dir, tiny_embedder):
    store, _ = _run(index_dir, image_dir, tiny_embedder)
    (index_dir / STATE_NAME).write_text('["not", "a", "dict"]')
    assert VectorIndex.open(store, tiny_embedder.id.dim).ntotal == 9
    (index_dir / STATE_NAME).write_text('{"generation": 3}')
    assert VectorIndex.open(store, tiny_embedder.id.dim).ntotal == 9
