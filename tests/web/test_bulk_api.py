"""The page's bulk library calls over HTTP: tag (and untag) many images at once, take many
out of a collection, and plan forgetting a folder before doing it."""

from __future__ import annotations

import shutil

import pytest

from tests.web.conftest import make_client

KEY = {"X-API-Key": "k"}


@pytest.fixture
def client(gallery, tmp_path):
    """A keyed client over a copy of the gallery's index (these tests change it)."""
    index = tmp_path / "index"
    shutil.copytree(gallery[1], index)
    client = make_client(index, api_key="k", indexer_factory=None)
    yield client
    client.app.state.service.close()


def ids_of(client, n: int) -> list[int]:
    hits = client.get("/api/search", params={"type": "png", "limit": n}, headers=KEY).json()["results"]
    assert len(hits) == n
    return [h["id"] for h in hits]


def tags_of(client, image_id: int) -> list[str]:
    return client.get(f"/api/images/{image_id}", headers=KEY).json()["user_tags"]


def test_tag_many_images_at_once_then_search_and_untag(client):
    ids = ids_of(client, 3)
    r = client.post("/api/tags", json={"ids": ids, "tags": [" spring  sale ", "hero"]}, headers=KEY)
    assert r.status_code == 200, r.text
    assert r.json() == {"images": 3, "tags": ["spring sale", "hero"], "changed": 6}
    assert all(tags_of(client, i) == ["hero", "spring sale"] for i in ids)
    # again, in another case and with a repeated id: nothing new (no "Hero" beside "hero")
    r = client.post("/api/tags", json={"ids": [*ids, ids[0]], "tags": ["Hero"]}, headers=KEY)
    assert r.json() == {"images": 3, "tags": ["Hero"], "changed": 0}
    assert tags_of(client, ids[0]) == ["hero", "spring sale"]
    # the keyword index and the tag filter see them at once
    found = client.get("/api/search", params={"tag": "spring sale"}, headers=KEY).json()
    assert sorted(h["id"] for h in found["results"]) == sorted(ids)
    filters = client.get("/api/filters", headers=KEY).json()
    assert {"value": "hero", "count": 3} in filters["tags"]

    r = client.post("/api/tags/remove", json={"ids": ids[:2], "tags": ["HERO"]}, headers=KEY)
    assert r.json() == {"images": 2, "tags": ["HERO"], "changed": 2}
    assert [tags_of(client, i) for i in ids] == [["spring sale"], ["spring sale"], ["hero", "spring sale"]]


def test_an_unknown_id_is_a_404_naming_it_and_tags_nothing(client):
    ids = ids_of(client, 2)
    r = client.post("/api/tags", json={"ids": [*ids, 987654], "tags": ["x"]}, headers=KEY)
    assert r.status_code == 404
    assert r.json()["detail"] == "not searchable images: 987654"
    assert all(tags_of(client, i) == [] for i in ids)  # one transaction: all or nothing


@pytest.mark.parametrize(
    "body",
    [
        {"ids": [1], "tags": []},
        {"ids": [], "tags": ["x"]},
        {"ids": [1], "tags": ["   "]},
        {"ids": [1], "tags": ["x" * 101]},
        {"ids": [1], "tags": ["a\x00b"]},
        {"ids": [0], "tags": ["x"]},
        {"ids": ["one"], "tags": ["x"]},
        {"ids": [1], "tags": "x"},
        {"ids": [1], "tags": ["x"], "extra": 1},
        {"tags": ["x"]},
    ],
)
def test_bad_bodies_are_refused_with_a_reason(client, body):
    r = client.post("/api/tags", json=body, headers=KEY)
    assert r.status_code == 422 and r.json()["detail"], r.text


def test_a_tag_of_invisible_characters_is_a_400(client):
    (image_id,) = ids_of(client, 1)
    r = client.post("/api/tags", json={"ids": [image_id], "tags": ["\u200b"]}, headers=KEY)
    assert r.status_code == 400 and "visible" in r.json()["detail"]
    r = client.post("/api/tags", json={"ids": [image_id], "tags": ["\u00a0\u3000"]}, headers=KEY)
    assert r.status_code in (400, 422) and tags_of(client, image_id) == []


def test_bulk_changes_need_the_key(client):
    ids = ids_of(client, 2)
    for path, body in [
        ("/api/tags", {"ids": ids, "tags": ["x"]}),
        ("/api/tags/remove", {"ids": ids, "tags": ["x"]}),
        ("/api/collections/c/remove", {"ids": ids}),
        ("/api/forget/plan", {"folders": ["/"]}),
    ]:
        assert client.post(path, json=body).status_code == 401, path
    assert all(tags_of(client, i) == [] for i in ids)


def test_take_many_images_out_of_a_collection(client):
    ids = ids_of(client, 3)
    assert client.post("/api/collections/Summer", json={"ids": ids}, headers=KEY).json()["images"] == 3
    r = client.post("/api/collections/Summer/remove", json={"ids": [ids[0], ids[1], 987654]}, headers=KEY)
    assert r.status_code == 200 and r.json()["images"] == 1 and r.json()["name"] == "Summer"
    found = client.get("/api/search", params={"collection": "Summer"}, headers=KEY).json()["results"]
    assert [h["id"] for h in found] == [ids[2]]
    assert client.get(f"/api/images/{ids[0]}", headers=KEY).status_code == 200  # still indexed
    r = client.post("/api/collections/Winter/remove", json={"ids": ids}, headers=KEY)
    assert r.status_code == 404 and "the collections are: Summer" in r.json()["detail"]


def test_plan_forgetting_a_folder_changes_nothing(client, gallery):
    root = gallery[0]
    nested = client.get("/api/search", params={"folder": str(root / "sub")}, headers=KEY).json()["results"]
    client.post("/api/tags", json={"ids": [nested[0]["id"]], "tags": ["keep me"]}, headers=KEY)
    before = client.get("/api/stats", headers=KEY).json()["images"]
    r = client.post("/api/forget/plan", json={"folders": [str(root / "sub")]}, headers=KEY)
    assert r.status_code == 200, r.text
    plan = r.json()
    assert plan["images"] == 3 and plan["tagged"] == 1 and plan["with_user_data"] == 1
    assert plan["folders"] == [{"folder": str(root / "sub"), "images": 3}] and not plan["everything"]
    assert client.get("/api/stats", headers=KEY).json()["images"] == before  # nothing forgotten
    assert tags_of(client, nested[0]["id"]) == ["keep me"]
    r = client.post("/api/forget/plan", json={"folders": [str(root / "nosuch")]}, headers=KEY)
    assert r.status_code == 404 and "the indexed folders are" in r.json()["detail"]
    assert client.post("/api/forget/plan", json={"folders": []}, headers=KEY).status_code == 422
