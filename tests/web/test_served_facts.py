"""What the service tells of a file follows the file rule (its real path inside one of the
index's folders), image decodes are bounded server-wide, and thumbnails never fail for want
of a writable disk."""

from __future__ import annotations

import errno
import io
import logging
import os
import shutil
import threading

from PIL import Image

from indexer.pipeline import Indexer
from searchengine.store.db import Store
from tests.conftest import make_image, write_images
from tests.web.conftest import LabelOcr, TagCaptioner, make_client


def _index(root, index, embedder) -> None:
    store = Store(index)
    Indexer(store, embedder, captioner=TagCaptioner(), ocr=LabelOcr()).run(root)
    store.close()


def _id(store_dir, path) -> int:
    store = Store(store_dir)
    try:
        return store.images.by_path(str(path)).id
    finally:
        store.close()


def test_symlink_leading_out_serves_no_facts_nor_text(tmp_path, tiny_embedder):
    root, index, outside = tmp_path / "photos", tmp_path / "index", tmp_path / "elsewhere"
    write_images(root, 2)
    write_images(outside, 1, prefix="private")
    link = root / "pic.png"
    os.symlink(root / "img000.png", link)
    _index(root, index, tiny_embedder)
    image_id = _id(index, link)
    client = make_client(index)
    assert client.get(f"/api/images/{image_id}").json()["caption"]  # inside the root: served
    os.remove(link)
    os.symlink(outside / "private000.png", link)  # leads out since it was indexed
    for r in (client.get(f"/api/images/{image_id}"), client.get("/api/images/lookup", params={"path": link})):
        assert r.status_code == 403 and "outside its indexed folder" in r.json()["detail"]
        assert "sha256" not in r.text and "caption" not in r.text and "LABEL" not in r.text
    assert client.get(f"/api/images/{image_id}/file").status_code == 403
    assert client.get(f"/api/images/{_id(index, root / 'img000.png')}").status_code == 200  # the target


def test_symlink_to_a_secret_exposes_neither_size_nor_hash(tmp_path, tiny_embedder):
    import hashlib

    root, index = tmp_path / "photos", tmp_path / "index"
    write_images(root, 2)
    secret = tmp_path / "passwd"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n" * 7)
    os.symlink(secret, root / "x.jpg")
    _index(root, index, tiny_embedder)
    client = make_client(index)
    r = client.get(f"/api/images/{_id(index, root / 'x.jpg')}")
    assert r.status_code == 403
    assert hashlib.sha256(secret.read_bytes()).hexdigest() not in r.text
    assert str(secret.stat().st_size) not in r.text
    failures = client.get("/api/stats").json()
    assert failures["failed"] == 1


def test_decodes_are_bounded_and_a_full_queue_is_a_503(gallery):
    client = make_client(gallery[1])
    service = client.app.state.service
    service.decode_wait = 0.2
    buf = io.BytesIO()
    make_image((20, 20, 220), size=(64, 48)).save(buf, "PNG")
    upload = {"image": ("q.png", buf.getvalue(), "image/png")}
    taken = [service._decodes.acquire(timeout=1) for _ in range(service.decode_slots)]
    assert all(taken)
    try:
        r = client.post("/api/search", files=upload)
        assert r.status_code == 503 and "busy" in r.json()["detail"]
    finally:
        for _ in taken:
            service._decodes.release()
    assert client.post("/api/search", files=upload).status_code == 200


def test_concurrent_decodes_never_exceed_the_slots(gallery, monkeypatch):
    import web.service as service_module

    client = make_client(gallery[1])
    service = client.app.state.service
    active, peak, lock = [0], [0], threading.Lock()
    real = service_module.load_image

    def counting(*args, **kwargs):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        try:
            threading.Event().wait(0.05)
            return real(*args, **kwargs)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(service_module, "load_image", counting)
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buf, "PNG")
    codes = []

    def upload() -> None:
        codes.append(client.post("/api/search", files={"image": ("q.png", buf.getvalue(), "image/png")}))

    threads = [threading.Thread(target=upload) for _ in range(3 * service.decode_slots + 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in codes] == [200] * len(threads)
    assert 1 <= peak[0] <= service.decode_slots


def test_uploads_honour_the_lower_of_the_two_pixel_limits(gallery):
    buf = io.BytesIO()
    Image.new("RGB", (200, 100), (200, 30, 30)).save(buf, "PNG")
    upload = {"image": ("q.png", buf.getvalue(), "image/png")}
    assert make_client(gallery[1], max_pixels=30_000).post("/api/search", files=upload).status_code == 200
    r = make_client(gallery[1], max_pixels=10_000).post("/api/search", files=upload)
    assert r.status_code == 413 and "limit of 10,000" in r.json()["detail"]
    r = make_client(gallery[1], max_upload_pixels=10_000).post("/api/search", files=upload)
    assert r.status_code == 413


def test_a_link_into_another_indexed_folder_is_served(tmp_path, tiny_embedder):
    pictures, album, index = tmp_path / "Pictures", tmp_path / "album", tmp_path / "index"
    write_images(pictures, 2)
    album.mkdir()
    os.symlink(pictures / "img000.png", album / "best.png")  # an album of links into Pictures
    _index(pictures, index, tiny_embedder)
    _index(album, index, tiny_embedder)
    client = make_client(index)
    image_id = _id(index, album / "best.png")
    assert client.get(f"/api/images/{image_id}").json()["caption"]
    for what in ("/file", "/thumbnail"):
        assert client.get(f"/api/images/{image_id}{what}").status_code == 200


def _fresh_copy(gallery, tmp_path):
    copy = tmp_path / "index"
    shutil.copytree(gallery[1], copy, ignore=shutil.ignore_patterns("thumbs"))
    return copy


def _any_id(client) -> int:
    return client.get("/api/search", params={"q": "QX-220", "mode": "keyword"}).json()["results"][0]["id"]


def test_a_full_disk_serves_thumbnails_from_memory(gallery, tmp_path, monkeypatch, caplog):
    index = _fresh_copy(gallery, tmp_path)
    real_save = Image.Image.save

    def full_disk(self, fp, *args, **kwargs):
        if isinstance(fp, str | os.PathLike):  # a file on the index's disk: half written, then full
            with open(fp, "wb") as fh:
                fh.write(b"RIFF\x00\x00")
            raise OSError(errno.ENOSPC, "No space left on device", os.fspath(fp))
        return real_save(self, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", full_disk)
    client = make_client(index)
    rid = _any_id(client)
    with caplog.at_level(logging.WARNING, logger="web.service"):
        answers = [client.get(f"/api/images/{rid}/thumbnail", params={"size": s}) for s in (64, 300)]
    for r in answers:
        assert r.status_code == 200 and r.headers["content-type"] == "image/webp"
        assert Image.open(io.BytesIO(r.content)).format == "WEBP"
    assert [p.name for p in (index / "thumbs").rglob("*") if p.is_file()] == []  # no half-written file
    assert len([r for r in caplog.records if "not cached" in r.getMessage()]) == 1  # said once


def test_thumbnails_behind_a_key_are_private(gallery, tmp_path):
    index = _fresh_copy(gallery, tmp_path)
    key = {"X-API-Key": "k"}
    for fields, expected in (
        ({}, "public"),
        ({"api_key": "k"}, "private"),
        ({"api_key": "k", "public_reads": True}, "public"),
    ):
        client = make_client(index, **fields)
        rid = client.get("/api/search", params={"q": "QX-220", "mode": "keyword"}, headers=key).json()
        r = client.get(f"/api/images/{rid['results'][0]['id']}/thumbnail", headers=key)
        assert r.status_code == 200
        assert r.headers["cache-control"].split(",")[0] == expected, fields


def test_a_closed_service_leaves_no_decode_threads(gallery, tmp_path):
    client = make_client(_fresh_copy(gallery, tmp_path))
    service = client.app.state.service
    assert client.get(f"/api/images/{_any_id(client)}/thumbnail").status_code == 200
    workers = list(service._decoder._threads)
    assert workers and all(t.is_alive() for t in workers)
    service.close()
    for t in workers:
        t.join(timeout=5)
    assert not any(t.is_alive() for t in workers)
