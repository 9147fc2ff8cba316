"""The review endpoints the page uses: "not duplicates" (remembered, undoable) and the XMP
sidecars as a zip, named as ``searchengine export --format xmp --out`` names them."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from indexer.pipeline import Indexer
from searchengine.cli import cli
from searchengine.store.db import Store
from tests.conftest import make_image, write_images
from tests.web.conftest import make_client

KEY = {"X-API-Key": "k"}


@pytest.fixture
def review(tmp_path, tiny_embedder):
    """``(root, index, client)``: a photo and its copy, two images sharing a stem, a subfolder."""
    root, index = tmp_path / "photos", tmp_path / "index"
    write_images(root / "sub", 2)
    photo = make_image(seed=7, size=(200, 160))
    photo.save(root / "orig.png")
    photo.resize((120, 96)).save(root / "copy.jpg", quality=70)
    make_image(seed=11, size=(64, 64)).save(root / "shoe.png")
    make_image(seed=12, size=(64, 64)).save(root / "shoe.jpg")
    Indexer(Store(index), tiny_embedder).run(root)
    client = make_client(index, api_key="k", public_reads=True)  # the key guards changes only
    yield root, index, client
    client.app.state.service.close()


def _group_names(client) -> list[list[str]]:
    return [sorted(i["name"] for i in g["images"]) for g in client.get("/api/duplicates").json()]


def test_not_duplicates_is_remembered_and_can_be_undone(review):
    root, _, client = review
    groups = client.get("/api/duplicates").json()
    assert _group_names(client) == [["copy.jpg", "orig.png"]]
    members = {m["name"]: m for m in groups[0]["images"]}
    assert (members["orig.png"]["width"], members["orig.png"]["height"]) == (200, 160)
    assert members["copy.jpg"]["size"] == (root / "copy.jpg").stat().st_size
    ids = [m["id"] for m in groups[0]["images"]]

    assert client.post("/api/duplicates/dismiss", json={"ids": ids}).status_code == 401  # behind the key
    assert _group_names(client) == [["copy.jpg", "orig.png"]]
    r = client.post("/api/duplicates/dismiss", json={"ids": ids}, headers=KEY)
    assert r.status_code == 200 and r.json() == []
    assert _group_names(client) == []
    assert client.get(f"/api/images/{ids[0]}").json()["duplicates"] == []  # the detail panel
    hits = client.get("/api/search", params={"like": ids[0]}).json()["results"]
    assert all(h["duplicates"] == 0 for h in hits)  # the cards' "N copies"

    r = client.request("DELETE", "/api/duplicates/dismiss", json={"ids": ids}, headers=KEY)
    assert r.status_code == 200 and [len(g["images"]) for g in r.json()] == [2]
    assert _group_names(client) == [["copy.jpg", "orig.png"]]
    r = client.request("DELETE", "/api/duplicates/dismiss", json={"ids": ids}, headers=KEY)
    assert r.status_code == 404 and "not marked" in r.json()["detail"]


def test_bad_marks_are_4xx_with_a_message(review):
    _, _, client = review
    ids = [m["id"] for m in client.get("/api/duplicates").json()[0]["images"]]
    post = lambda body: client.post("/api/duplicates/dismiss", json=body, headers=KEY)  # noqa: E731
    assert post({"ids": [ids[0]]}).status_code == 400
    assert "two different images" in post({"ids": [ids[0], ids[0]]}).json()["detail"]
    r = post({"ids": [ids[0], 987654]})
    assert r.status_code == 404 and "987654" in r.json()["detail"]
    assert post({"ids": [ids[0]], "image": ids[0]}).status_code == 400
    assert post({"ids": []}).status_code == 422
    assert post({"ids": ids, "extra": 1}).status_code == 422
    assert post({"ids": [0, 1]}).status_code == 422
    assert _group_names(client) == [["copy.jpg", "orig.png"]]  # nothing changed


def test_one_image_can_be_marked_apart_from_its_group(review):
    _, _, client = review
    ids = [m["id"] for m in client.get("/api/duplicates").json()[0]["images"]]
    r = client.post("/api/duplicates/dismiss", json={"ids": [ids[0]], "image": ids[1]}, headers=KEY)
    assert r.status_code == 200 and r.json() == []


def test_the_xmp_export_is_a_zip_of_the_sidecars_the_cli_writes(review, tmp_path):
    root, index, client = review
    r = client.get("/api/export", params={"format": "xmp"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    assert 'filename="images-xmp.zip"' in r.headers["content-disposition"]
    zipped = zipfile.ZipFile(io.BytesIO(r.content))
    out = tmp_path / "sidecars"
    done = CliRunner().invoke(cli, ["export", "--index", str(index), "--format", "xmp", "--out", str(out)])
    assert done.exit_code == 0, done.output
    written = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*.xmp")}
    assert sorted(zipped.namelist()) == sorted(written)
    assert {"photos/shoe.png.xmp", "photos/shoe.jpg.xmp", "photos/orig.xmp"} <= set(written)
    assert any(n.startswith("photos/sub/") for n in written)
    assert all(zipped.read(n) == written[n] for n in written)  # the same bytes

    client.post(
        "/api/collections/Hero",
        json={"ids": [client.get("/api/duplicates").json()[0]["images"][0]["id"]]},
        headers=KEY,
    )
    one = zipfile.ZipFile(
        io.BytesIO(client.get("/api/export", params={"format": "xmp", "collection": "Hero"}).content)
    )
    assert len(one.namelist()) == 1
    missing = client.get("/api/export", params={"format": "xmp", "collection": "nosuch"})
    assert missing.status_code == 404 and "Hero" in missing.json()["detail"]
    assert client.get("/api/export", params={"format": "zip"}).status_code == 422
    assert Path(root / "orig.png").exists() and not list(root.rglob("*.xmp"))  # nothing written beside


def test_indexed_folders_of_one_name_keep_apart_in_the_xmp_zip_and_out_dir(tmp_path, tiny_embedder):
    """Two indexed folders both named photos, holding shoe.png and shoe-2.png: every sidecar
    has its own name (``photos/``, ``photos (2)/``), in the zip and under --out alike."""
    index = tmp_path / "index"
    store = Store(index)
    for n, place in enumerate(("x", "y")):
        root = tmp_path / place / "photos"
        root.mkdir(parents=True)
        make_image(seed=20 + n).save(root / "shoe.png")
        make_image(seed=30 + n).save(root / "shoe-2.png")
        Indexer(store, tiny_embedder).run(root)
    store.close()
    client = make_client(index)
    zipped = zipfile.ZipFile(io.BytesIO(client.get("/api/export", params={"format": "xmp"}).content))
    names = zipped.namelist()
    assert sorted(names) == [
        "photos (2)/shoe-2.xmp",
        "photos (2)/shoe.xmp",
        "photos/shoe-2.xmp",
        "photos/shoe.xmp",
    ]
    out = tmp_path / "sidecars"
    done = CliRunner().invoke(cli, ["export", "--index", str(index), "--format", "xmp", "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.xmp")) == sorted(names)
    client.app.state.service.close()
