"""``searchengine forget FOLDER...`` and ``POST /api/forget``: a folder's images leave the index,
on disk or not; everything else (other images, their tags, collections, metadata) stays."""

from __future__ import annotations

import fcntl
import json
import shutil

import pytest
from click.testing import CliRunner

from searchengine.cli import cli
from searchengine.doctor import examine
from searchengine.store.db import Store
from tests.conftest import write_images


def run(*args, input: str | None = None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input, catch_exceptions=False)


@pytest.fixture
def library(tmp_path, tiny_spec):
    """``(keep, drop, index)``: two indexed folders (keep: 4 images, drop: 3 + 2 in drop/sub), and
    one image of ``keep`` tagged, in a collection and with metadata."""
    keep, drop, index = tmp_path / "keep", tmp_path / "drop", tmp_path / "index"
    write_images(keep, 4, prefix="k")
    write_images(drop, 3, prefix="d", start=10)
    write_images(drop / "sub", 2, prefix="s", start=20)
    r = run("index", keep, drop, "--index", index, "--model", tiny_spec, "-q")
    assert r.exit_code == 0, r.output
    with_data(index, keep / "k000.png", tag="hero", collection="spring", meta={"sku": "K-1"})
    return keep, drop, index


def with_data(index, path, tag=None, collection=None, meta=None) -> int:
    store = Store(index)
    try:
        image_id = store.images.by_path(str(path.resolve())).id
        if tag:
            store.library.add_tags(image_id, [tag])
        if collection:
            store.library.add_to_collection(collection, [image_id])
        if meta:
            store.library.set_metadata([(image_id, meta)], source="test.csv")
        return image_id
    finally:
        store.close()


def paths_in(index) -> set[str]:
    store = Store(index)
    try:
        return {p for _, p in store.images.searchable_paths()}
    finally:
        store.close()


def search_paths(index, query="square") -> set[str]:
    r = run("search", query, "--index", index, "--json", "-k", "50", "--min-score", "-1")
    assert r.exit_code == 0, r.output
    return {x["path"] for x in json.loads(r.stdout)["results"]}


def assert_consistent(index, images: int) -> None:
    """Rows, vectors and the saved FAISS file agree (doctor's checks, first: a search would
    rebuild a stale FAISS file), with ``images`` left."""
    checkup = examine(index)
    assert checkup.healthy, checkup.findings
    info = json.loads(run("info", "--index", index, "--json").stdout)
    assert (info["images"], info["ok"], info["vectors"]) == (images, images, images)
    store = Store(index)
    assert not store.duplicates.pending()  # the near-duplicate groups were found again
    store.close()


# -- the CLI -------------------------------------------------------------------------------
def test_forget_removes_only_that_folders_images(library):
    keep, drop, index = library
    assert len(search_paths(index)) == 9
    r = run("forget", drop, "--index", index)
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == f"forgot 5 images under {drop} (no tags, collections or metadata)"
    assert_consistent(index, 4)
    kept = {str(p) for p in sorted(keep.iterdir())}
    assert paths_in(index) == kept
    assert search_paths(index) == kept  # searched by meaning: FAISS no longer has them
    assert all(p.is_file() for p in drop.rglob("*.png"))  # the files are never touched
    store = Store(index)
    image_id = store.images.by_path(str(keep / "k000.png")).id
    assert store.library.user_tags(image_id) == ["hero"]
    assert store.library.metadata_of([image_id]) == {image_id: {"sku": "K-1"}}
    assert [(n, c) for n, c, _ in store.library.collections()] == [("spring", 1)]
    assert store.images.roots() == [str(keep)]
    store.close()


def test_forgetting_every_image_asks_first_even_without_user_data(tmp_path, tiny_spec):
    """A stray '/' (or the one indexed folder) would empty the index and its OCR work: asked,
    even when nothing is tagged."""
    photos, index = tmp_path / "photos", tmp_path / "index"
    write_images(photos, 3)
    assert run("index", photos, "--index", index, "--model", tiny_spec, "-q").exit_code == 0
    r = run("forget", "/", "--index", index)
    assert r.exit_code == 1 and "every image in the index" in r.stderr and "--yes" in r.stderr
    assert len(paths_in(index)) == 3  # nothing changed
    r = run("forget", photos, "--index", index, "--yes")
    assert r.exit_code == 0, r.output
    assert paths_in(index) == set()


def test_forget_a_subfolder_and_several_folders(library, tmp_path):
    keep, drop, index = library
    r = run("forget", drop / "sub", "--index", index)
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith(f"forgot 2 images under {drop / 'sub'} ")
    # still on disk inside an indexed folder: it says the next index run of that folder adds it back
    assert f"the next 'searchengine index {drop}' adds it back" in r.stderr
    assert len(paths_in(index)) == 7
    r = run("forget", keep, drop, "--index", index, "--yes")
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == (
        f"forgot 7 images under {keep}, {drop} (1 tagged, 1 in collections, 1 with imported metadata)"
    )
    assert paths_in(index) == set()
    assert_consistent(index, 0)


def test_forget_works_when_the_folder_is_gone_and_index_names_it(library, tmp_path):
    keep, drop, index = library
    shutil.rmtree(drop)
    r = run("index", drop, "--index", index)
    assert r.exit_code == 1
    assert f"not a folder: {drop}; the index still holds 5 images under it" in r.stderr
    assert f"'searchengine forget {drop} --index {index}'" in r.stderr
    assert "if the folder moved, index its new place first" in r.stderr  # forgetting first loses its OCR
    # a missing folder the index knows nothing of: the plain error
    r = run("index", tmp_path / "nosuch", "--index", index)
    assert r.exit_code == 1
    assert r.stderr.strip() == f"Error: not a folder: {tmp_path / 'nosuch'}"
    r = run("forget", drop, "--index", index)
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith(f"forgot 5 images under {drop} ")
    assert "adds it back" not in r.stderr
    assert_consistent(index, 4)
    assert run("index", drop, "--index", index).stderr.strip() == f"Error: not a folder: {drop}"


def test_a_folder_with_nothing_indexed_is_an_error_listing_the_indexed_folders(library, tmp_path):
    keep, drop, index = library
    r = run("forget", tmp_path / "nosuch", drop, "--index", index)
    assert r.exit_code == 1
    assert f"nothing is indexed under {tmp_path / 'nosuch'}; the indexed folders are: {drop}, {keep}" in (
        r.stderr
    )
    r = run("forget", keep / "k001.png", "--index", index)
    assert r.exit_code == 1 and "that is an image: forget takes folders" in r.stderr
    undecodable = str(tmp_path) + "/\udcff"  # a name of bytes that are not UTF-8: an error, no traceback
    r = CliRunner().invoke(cli, ["forget", undecodable, "--index", str(index)])
    assert r.exit_code == 1 and "not a folder name" in r.stderr
    r = CliRunner().invoke(cli, ["index", undecodable, "--index", str(index)])
    assert r.exit_code == 1 and "not a folder" in r.stderr
    assert len(paths_in(index)) == 9  # nothing was done, not even for the folder that matched


def test_user_data_needs_confirmation(library, monkeypatch):
    keep, drop, index = library
    with_data(index, drop / "d010.png", tag="bestseller", collection="spring")
    with_data(index, drop / "sub" / "s020.png", meta={"price": "9.50"})
    r = run("forget", drop, "--index", index)  # not a terminal, no --yes: refused
    assert r.exit_code == 1
    assert (
        f"would forget 5 images under {drop} (1 tagged, 1 in collections, 1 with imported metadata)"
        in r.stderr
    )
    assert "nothing was changed: run again with --yes" in r.stderr
    assert len(paths_in(index)) == 9
    r = run("forget", drop, "--index", index, "--dry-run")
    assert r.exit_code == 0 and r.stdout.startswith("would forget 5 images") and len(paths_in(index)) == 9
    monkeypatch.setattr("searchengine.cli._can_ask", lambda: True)
    r = run("forget", drop, "--index", index, input="n\n")
    assert r.exit_code == 1 and "nothing was forgotten" in r.stderr
    assert len(paths_in(index)) == 9
    r = run("forget", drop, "--index", index, input="y\n")
    assert r.exit_code == 0, r.output
    assert r.stdout.strip().endswith("(1 tagged, 1 in collections, 1 with imported metadata)")
    store = Store(index)
    assert [(n, c) for n, c, _ in store.library.collections()] == [("spring", 1)]  # keep's image
    assert store.db.execute("SELECT count(*) FROM user_tags").fetchone()[0] == 1
    assert store.db.execute("SELECT count(*) FROM metadata").fetchone()[0] == 1
    store.close()
    assert_consistent(index, 4)


def test_user_data_of_an_image_also_indexed_elsewhere_moves_to_that_copy(library):
    keep, drop, index = library
    shutil.copy(drop / "d011.png", keep / "copy.png")
    assert run("index", keep, "--index", index, "-q").exit_code == 0
    with_data(index, drop / "d011.png", tag="moved-along")
    store = Store(index)
    assert len(store.duplicates.groups()) == 1  # the copy and its original
    store.close()
    r = run("forget", drop, "--index", index)  # nothing is lost: no question asked
    assert r.exit_code == 0, r.output
    assert r.stdout.strip() == (
        f"forgot 5 images under {drop} (user data of 1 kept on its copy indexed elsewhere)"
    )
    store = Store(index)
    assert store.library.user_tags(store.images.by_path(str(keep / "copy.png")).id) == ["moved-along"]
    assert store.duplicates.groups() == []  # its original is gone
    store.close()
    assert_consistent(index, 5)


def test_a_moved_folder_keeps_its_tags_when_its_new_place_is_indexed_first(library, tmp_path):
    keep, drop, index = library
    with_data(index, drop / "d012.png", tag="bestseller")
    drop.rename(tmp_path / "moved")
    r = run("index", drop, "--index", index)
    assert r.exit_code == 1
    assert "(1 carry tags, collections or metadata: if the folder moved, index its new place" in r.stderr
    r = run("forget", drop, "--index", index)  # asked first: the refusal says how to keep the tag
    assert r.exit_code == 1 and "if the folder moved, index its new place first" in r.stderr
    assert run("index", tmp_path / "moved", "--index", index, "-q").exit_code == 0
    r = run("forget", drop, "--index", index)
    assert r.exit_code == 0, r.output
    assert r.stdout.strip().endswith("(user data of 1 kept on its copy indexed elsewhere)")
    store = Store(index)
    assert store.library.user_tags(store.images.by_path(str(tmp_path / "moved" / "d012.png")).id) == [
        "bestseller"
    ]
    store.close()
    assert_consistent(index, 9)


def test_a_forgotten_folder_indexed_again_comes_back(library):
    keep, drop, index = library
    assert run("forget", drop, "--index", index).exit_code == 0
    assert len(search_paths(index)) == 4
    r = run("index", drop, "--index", index, "-q")
    assert r.exit_code == 0, r.output
    assert "5 embedded" in r.stderr
    assert search_paths(index) == {str(p) for p in [*keep.iterdir(), *drop.rglob("*.png")] if p.is_file()}
    assert_consistent(index, 9)


def test_forget_waits_for_no_index_run(library):
    keep, drop, index = library
    with open(index / "index.lock", "a+") as held:  # another writer holds the index
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        r = run("forget", drop, "--index", index)
        fcntl.flock(held, fcntl.LOCK_UN)
    assert r.exit_code == 1 and "--wait" in r.stderr
    assert len(paths_in(index)) == 9


# -- the API -------------------------------------------------------------------------------
@pytest.fixture
def api(library):
    from tests.web.conftest import make_client

    keep, drop, index = library
    client = make_client(index, api_key="k", public_reads=True)
    yield client, keep, drop, index
    client.app.state.service.close()


def test_api_forget_happy_path_and_key(api):
    client, keep, drop, index = api
    body = {"folders": [str(drop / "sub")]}
    assert client.post("/api/forget", json=body).status_code == 401  # the key guards it
    r = client.post("/api/forget", json=body, headers={"X-API-Key": "k"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["images"], out["folders"], out["with_user_data"]) == (
        2,
        [{"folder": str(drop / "sub"), "images": 2}],
        0,
    )
    assert out["comes_back"] == [{"folder": str(drop / "sub"), "root": str(drop)}]
    found = client.get("/api/search", params={"q": "square", "limit": 50, "min_score": -1}).json()
    assert len(found["results"]) == 7 and not any("/sub/" in x["path"] for x in found["results"])
    assert client.get("/api/stats").json()["images"] == 7
    assert_consistent(index, 7)


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({}, 422, "folders"),
        ({"folders": []}, 422, "folders"),
        ({"folders": "/x"}, 422, "folders"),
        ({"folders": [""]}, 422, "folders"),
        ({"folders": ["/x"], "confirm": "yes"}, 422, "confirm"),
        ({"folders": ["/x"], "other": 1}, 422, "other"),
        ({"folders": ["/x"], "confirm": True, "agreed": -1}, 422, "agreed"),
        ({"folders": ["/no/such/folder"]}, 404, "nothing is indexed under /no/such/folder"),
        ({"folders": ["~nosuchuser/x"]}, 404, "nothing is indexed under ~nosuchuser/x"),  # not a 500
    ],
)
def test_api_forget_bad_requests(api, body, status, says):
    client, keep, drop, index = api
    r = client.post("/api/forget", json=body, headers={"X-API-Key": "k"})
    assert r.status_code == status, r.text
    assert says in json.dumps(r.json())
    assert len(paths_in(index)) == 9


def test_api_forget_needs_confirm_when_user_data_would_go(api):
    client, keep, drop, index = api
    key = {"X-API-Key": "k"}
    r = client.post("/api/forget", json={"folders": [str(keep)]}, headers=key)
    assert r.status_code == 409
    out = r.json()
    assert (out["images"], out["tagged"], out["in_collections"], out["with_metadata"]) == (4, 1, 1, 1)
    assert "confirm" in out["detail"]
    assert len(paths_in(index)) == 9
    r = client.post("/api/forget", json={"folders": [str(keep)], "confirm": True}, headers=key)
    assert r.status_code == 200 and r.json()["tagged"] == 1
    assert paths_in(index) == {str(p) for p in drop.rglob("*.png")}
    assert client.get("/api/collections").json()[0]["images"] == 0  # the collection stays, empty


def test_api_forget_confirms_only_the_user_data_the_plan_showed(api):
    client, keep, drop, index = api
    key = {"X-API-Key": "k"}
    plan = client.post("/api/forget/plan", json={"folders": [str(keep)]}, headers=key).json()
    assert plan["with_user_data"] == 1 and len(paths_in(index)) == 9  # a plan changes nothing
    # meanwhile (another tab) one more image of the folder gets a tag
    others = client.get("/api/search", params={"folder": str(keep), "limit": 50}).json()["results"]
    untagged = [h["id"] for h in others if not client.get(f"/api/images/{h['id']}").json()["user_tags"]]
    tagged = client.post("/api/tags", json={"ids": untagged[:1], "tags": ["new"]}, headers=key)
    assert tagged.status_code == 200
    body = {"folders": [str(keep)], "confirm": True, "agreed": plan["with_user_data"]}
    r = client.post("/api/forget", json=body, headers=key)
    assert r.status_code == 409 and r.json()["with_user_data"] == 2, r.text
    assert len(paths_in(index)) == 9  # nothing went
    r = client.post("/api/forget", json={**body, "agreed": 2}, headers=key)
    assert r.status_code == 200 and r.json()["tagged"] == 2


def test_api_forget_refused_while_the_index_is_being_written(api):
    client, keep, drop, index = api
    with open(index / "index.lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        r = client.post("/api/forget", json={"folders": [str(drop)]}, headers={"X-API-Key": "k"})
        fcntl.flock(held, fcntl.LOCK_UN)
    assert r.status_code == 409 and r.json()["detail"]
    assert len(paths_in(index)) == 9
