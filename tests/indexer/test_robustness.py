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


def _failures(store) -> dict[str, str]:
    return {f.path: f.error for f in store.images.failures()}


def test_skipped_files_are_recorded_with_their_reason(index_dir, tmp_path, tiny_embedder):
    folder = tmp_path / "odd"
    write_images(folder, 2)
    os.mkfifo(folder / "pipe.jpg")
    os.symlink("loop_b.png", folder / "loop_a.png")
    os.symlink("loop_a.png", folder / "loop_b.png")
    os.symlink(folder / "gone.png", folder / "broken.png")
    os.symlink("/dev/zero", folder / "zero.jpg")
    os.symlink("/dev/urandom", folder / "random.png")
    os.rename(folder / "img001.png", os.path.join(os.fsencode(folder), b"bad\xff.png"))
    store, report = _run(index_dir, folder, tiny_embedder)
    expected = {
        "pipe.jpg": "not a regular file: a named pipe (FIFO)",
        "loop_a.png": "symlink loop",
        "loop_b.png": "symlink loop",
        "broken.png": "broken symlink",
        "zero.jpg": "not a regular file: a character device",
        "random.png": "not a regular file: a character device",
        "bad\\xff.png": "file name is not valid UTF-8",
    }
    recorded = {os.path.basename(p): e for p, e in _failures(store).items()}
    assert set(recorded) == set(expected)
    for name, reason in expected.items():
        assert recorded[name].startswith(reason)
    assert {os.path.basename(p) for p, _ in report.failures} == set(expected)
    assert report.failed == len(expected) and store.images.counts().ok == 1
    # a second run finds them recorded: nothing to do, nothing removed
    store, again = _run(index_dir, folder, tiny_embedder)
    assert (again.failed, again.deleted, again.unchanged) == (0, 0, 8)
    assert {os.path.basename(p) for p in _failures(store)} == set(expected)
    # a renamed bad name and a repaired loop: the old records go, the file is indexed
    os.rename(os.path.join(os.fsencode(folder), b"bad\xff.png"), folder / "good.png")
    os.remove(folder / "loop_b.png")
    write_images(folder, 1, prefix="loop_b", start=7)
    os.rename(folder / "loop_b007.png", folder / "loop_b.png")
    store, third = _run(index_dir, folder, tiny_embedder)
    assert store.images.counts().ok == 4 and third.deleted == 1
    assert set(_failures(store)) == {
        str(folder / n) for n in expected if n not in ("bad\\xff.png", "loop_b.png", "loop_a.png")
    }


def test_symlink_out_of_the_root_is_failed_not_indexed(index_dir, tmp_path, tiny_embedder):
    outside = tmp_path / "elsewhere"
    write_images(outside, 1, prefix="private")
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0\n")
    folder = tmp_path / "photos"
    write_images(folder, 2)
    os.symlink(outside / "private000.png", folder / "pic.png")
    os.symlink(secret, folder / "x.jpg")
    os.symlink(folder / "img000.png", folder / "inside.png")  # inside the root: indexed
    store, report = _run(index_dir, folder, tiny_embedder)
    failures = _failures(store)
    assert set(failures) == {str(folder / "pic.png"), str(folder / "x.jpg")}
    assert all("outside the indexed folder" in e for e in failures.values())
    for name in ("pic.png", "x.jpg"):
        rec = store.images.by_path(str(folder / name))
        assert rec.sha256 is None and rec.size != os.stat(folder / name).st_size
    assert store.images.counts().ok == 3


def test_symlink_to_a_hidden_file_inside_the_root_is_failed_not_indexed(index_dir, tmp_path, tiny_embedder):
    folder = tmp_path / "home"
    write_images(folder, 1)
    (folder / ".ssh").mkdir()
    (folder / ".ssh" / "id_rsa").write_text("-----BEGIN PRIVATE KEY-----\n")
    os.symlink(folder / ".ssh" / "id_rsa", folder / "key.jpg")
    store, _ = _run(index_dir, folder, tiny_embedder)
    rec = store.images.by_path(str(folder / "key.jpg"))
    assert rec.status == "failed" and "hidden" in rec.error
    assert rec.sha256 is None and rec.size != os.stat(folder / "key.jpg").st_size


def test_symlink_that_leaves_the_root_later_loses_its_text(index_dir, tmp_path, tiny_embedder):
    outside = tmp_path / "elsewhere"
    write_images(outside, 1, prefix="private")
    folder = tmp_path / "photos"
    write_images(folder, 2)
    os.symlink(folder / "img000.png", folder / "pic.png")
    store, _ = _run(index_dir, folder, tiny_embedder)
    assert store.images.by_path(str(folder / "pic.png")).status == "ok"
    os.remove(folder / "pic.png")
    os.symlink(outside / "private000.png", folder / "pic.png")
    store, report = _run(index_dir, folder, tiny_embedder)
    rec = store.images.by_path(str(folder / "pic.png"))
    assert rec.status == "failed" and "outside the indexed folder" in rec.error
    assert report.failed == 1 and store.images.counts().ok == 2


class _CountingOcr:
    """Reads one word per image and counts its calls (paid work must not run again)."""

    id = "count-ocr:1"

    def __init__(self):
        self.calls = 0

    def read(self, image, scale=1.0):
        from searchengine.records import OcrLine, OcrResult

        self.calls += 1
        return OcrResult((OcrLine(f"WORD{self.calls}", 0.9, ((0, 0), (9, 0), (9, 9), (0, 9))),))


def test_album_of_links_into_another_indexed_root_is_indexed(index_dir, tmp_path, tiny_embedder):
    pictures, album = tmp_path / "Pictures", tmp_path / "album"
    write_images(pictures, 2)
    album.mkdir()
    os.symlink(pictures / "img000.png", album / "best.png")
    _run(index_dir, pictures, tiny_embedder)
    store, report = _run(index_dir, album, tiny_embedder)
    rec = store.images.by_path(str(album / "best.png"))
    assert rec.status == "ok" and report.failed == 0 and report.skipped == 0


def test_link_to_an_unmounted_disk_comes_back_with_its_text(index_dir, tmp_path, tiny_embedder):
    nas, album = tmp_path / "nas", tmp_path / "album"
    write_images(nas, 1)
    album.mkdir()
    os.symlink(nas / "img000.png", album / "pic.png")
    ocr = _CountingOcr()
    store = Store(index_dir)
    Indexer(store, tiny_embedder, ocr=ocr).run(nas)
    Indexer(store, tiny_embedder, ocr=ocr).run(album)
    link = str(album / "pic.png")
    before = store.text.ocr_texts([link])[link]
    sha = store.images.by_path(link).sha256
    os.rename(nas, tmp_path / "unmounted")  # the NAS goes away: the link is broken
    report = Indexer(store, tiny_embedder, ocr=ocr).run(album)
    rec = store.images.by_path(link)
    assert rec.status == "failed" and rec.error.startswith("broken symlink")
    assert report.skipped == 1 and report.failed == 1
    assert store.text.ocr_texts([link]) == {link: before} and rec.sha256 == sha
    assert store.images.failures()[0].path == link
    os.rename(tmp_path / "unmounted", nas)  # mounted again
    calls = ocr.calls
    Indexer(store, tiny_embedder, ocr=ocr).run(album)
    rec = store.images.by_path(link)
    assert rec.status == "ok" and rec.sha256 == sha and (rec.width, rec.height) != (None, None)
    assert store.text.ocr_texts([link]) == {link: before} and ocr.calls == calls
    assert store.embeddings.of(rec.id, tiny_embedder.id.dim) is not None


def test_unreadable_indexed_file_keeps_its_text(index_dir, tmp_path, tiny_embedder, monkeypatch):
    from indexer import prepare

    folder = tmp_path / "photos"
    (path,) = write_images(folder, 1)
    store = Store(index_dir)
    Indexer(store, tiny_embedder, ocr=_CountingOcr()).run(folder)
    text = store.text.ocr_texts([str(path)])
    assert text == {str(path): "WORD1"}
    os.utime(path, ns=(1, 1))  # changed, and now unreadable (EACCES)

    def refuse(p):
        raise PermissionError(13, "Permission denied", p)

    monkeypatch.setattr(prepare, "sha256_of", refuse)
    Indexer(store, tiny_embedder, ocr=_CountingOcr()).run(folder)
    rec = store.images.by_path(str(path))
    assert rec.status == "failed" and rec.error.startswith("unreadable")
    assert store.text.ocr_texts([str(path)]) == text and rec.sha256 is not None
