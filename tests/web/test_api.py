"""Every endpoint of the HTTP API, with good and bad input (TestClient, tiny models)."""

from __future__ import annotations

import io
import os
import re
import shutil
import threading
import time

import numpy as np
import pytest
from PIL import Image

from tests.conftest import make_image, write_images
from tests.web.conftest import build_gallery, make_client


def ids_of(resp) -> list[int]:
    return [r["id"] for r in resp.json()["results"]]


def names_of(resp) -> list[str]:
    return [r["name"] for r in resp.json()["results"]]


def png_bytes(im: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt)
    return buf.getvalue()


# -- health, stats, filters, page ----------------------------------------------------------
def test_health_stats_and_filters(client, gallery, tiny_embedder):
    root, index = gallery
    h = client.get("/api/health").json()
    assert h == {
        "status": "ok",
        "index": str(index),
        "images": 10,
        "encoder": tiny_embedder.id.spec,  # the encoder the gallery was indexed with
        "indexing": False,
    }
    s = client.get("/api/stats").json()
    assert (s["images"], s["ok"], s["failed"], s["vectors"], s["ocr"], s["captions"]) == (
        10,
        10,
        0,
        10,
        10,
        10,
    )
    assert s["roots"] == [str(root)] and s["indexing"]["state"] == "idle"
    f = client.get("/api/filters").json()
    folders = {x["value"]: x["count"] for x in f["folders"]}
    assert folders == {str(root): 10, str(root / "sub"): 3}
    assert {x["value"]: x["count"] for x in f["types"]} == {"PNG": 9, "JPEG": 1}
    tags = {x["value"]: x["count"] for x in f["tags"]}
    assert tags["square"] == 10 and tags["red"] == 1 and tags["blue"] == 1


def test_page_docs_and_schema_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert '<input id="q"' in page.text
    assert client.get("/static/app.js").status_code == 200
    docs = client.get("/docs")
    assert docs.status_code == 200 and "cdn" not in docs.text.lower()  # works offline
    for asset in re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', docs.text):
        assert client.get(asset).status_code == 200, asset
    schema = client.get("/openapi.json").json()
    assert {"/api/search", "/api/images/{image_id}", "/api/index"} <= set(schema["paths"])


def test_models_overview(client):
    models = client.get("/api/models").json()
    kinds = {(m["kind"], m["name"]) for m in models}
    assert {("encoder", "offline"), ("encoder", "clip"), ("captioner", "blip"), ("ocr", "rapidocr")} <= kinds
    offline = next(m for m in models if m["name"] == "offline")
    assert offline["present"] and offline["licence"] and not offline["in_use"]
    assert next(m for m in models if m["name"] == "clip")["in_use"]


# -- search ----------------------------------------------------------------------------------
def test_text_search_explains_and_links(client):
    r = client.get("/api/search", params={"q": "red label", "limit": 3})
    assert r.status_code == 200
    body = r.json()
    top = body["results"][0]
    assert top["name"] == "red.png"  # the only image whose text says RED
    assert top["legs"]["keyword"]["rank"] == 1 and top["legs"]["keyword"]["coverage"] == 1.0
    assert top["caption"] == "a square saying red label qx-220"
    assert top["thumbnail"] == f"/api/images/{top['id']}/thumbnail"
    assert body["mode"] == "hybrid" and body["encoder"].startswith("clip:se-tiny")
    assert (
        client.get("/api/search", params={"q": "red label", "explain": False}).json()["results"][0]["legs"]
        is None
    )


def test_hits_carry_a_relevance_and_reasons_in_plain_words(client):
    hits = client.get("/api/search", params={"q": "red label", "limit": 10, "min_score": -1}).json()[
        "results"
    ]
    assert len(hits) == 10 and all(0 <= h["relevance"] <= 1 for h in hits)
    assert all(1 <= len(h["reasons"]) <= 3 for h in hits), [h["reasons"] for h in hits]
    top = hits[0]  # red.png, caption "a square saying red label qx-220"
    assert top["reasons"][:2] == ["matches 'red' in the file name", "matches 'label' in the description"]
    # the raw figures stay in legs (explain), never in the words
    assert not any(re.search(r"\d\.\d|#\d", r) for h in hits for r in h["reasons"])
    like = client.get("/api/search", params={"like": top["id"], "limit": 4, "min_score": -1}).json()[
        "results"
    ]
    assert like and all(h["reasons"][0] == "similar image" and 0 <= h["relevance"] <= 1 for h in like)
    listing = client.get("/api/search", params={"type": "png", "limit": 3}).json()["results"]
    assert listing and all(h["reasons"] == [] and h["relevance"] is None for h in listing)


def test_code_query_finds_the_exact_label(client):
    r = client.get("/api/search", params={"q": "QX-220", "mode": "keyword"})
    assert names_of(r) == ["red.png"]


def test_pagination_is_stable_and_disjoint(client):
    full = ids_of(client.get("/api/search", params={"q": "square", "limit": 10, "min_score": -1}))
    assert len(full) == 10
    pages = [
        ids_of(client.get("/api/search", params={"q": "square", "limit": 4, "offset": o, "min_score": -1}))
        for o in (0, 4, 8)
    ]
    assert sum(pages, []) == full
    r = client.get("/api/search", params={"q": "square", "offset": 50, "min_score": -1}).json()
    assert r["results"] == [] and r["total"] == 10


def test_modes_weights_and_cutoff(client):
    assert names_of(client.get("/api/search", params={"q": "blue", "mode": "keyword"})) == ["blue.jpg"]
    vec = client.get("/api/search", params={"q": "blue", "mode": "vector", "min_score": -1}).json()
    assert len(vec["results"]) == 10 and all(set(r["legs"]) == {"vector"} for r in vec["results"])
    none = client.get("/api/search", params={"q": "anything", "mode": "vector", "min_score": 1}).json()
    assert none["results"] == [] and none["cutoff"] == 1.0
    kw_only = client.get("/api/search", params={"q": "blue", "vector_weight": 0, "min_score": -1}).json()
    assert kw_only["results"][0]["name"] == "blue.jpg"


def test_filters_restrict_each_leg(client, gallery):
    root, _ = gallery
    sub = client.get("/api/search", params={"q": "square", "folder": str(root / "sub"), "min_score": -1})
    assert sorted(names_of(sub)) == ["nested040.png", "nested041.png", "nested042.png"]
    jpeg = client.get("/api/search", params={"q": "square", "type": "jpg", "min_score": -1})
    assert names_of(jpeg) == ["blue.jpg"]
    tagged = client.get("/api/search", params={"q": "square", "tag": "red", "min_score": -1})
    assert names_of(tagged) == ["red.png"]
    future = client.get("/api/search", params={"q": "square", "after": "2999-01-01"})
    assert future.json()["results"] == []
    small = client.get("/api/search", params={"q": "square", "max_size": 10, "min_score": -1})
    assert small.json()["results"] == []


def test_like_finds_neighbours_but_not_itself(client):
    red = client.get("/api/search", params={"q": "QX-220", "mode": "keyword"}).json()["results"][0]["id"]
    r = client.get("/api/search", params={"like": red, "limit": 20, "min_score": -1})
    assert r.status_code == 200 and len(ids_of(r)) == 9 and red not in ids_of(r)
    near = client.get("/api/search", params={"like": red, "limit": 20})  # only its neighbourhood
    assert near.status_code == 200 and set(ids_of(near)) < set(ids_of(r))
    assert client.get("/api/search", params={"like": 999999}).status_code == 404


def test_image_upload_finds_the_same_image_first(client, gallery):
    root, _ = gallery
    data = (root / "red.png").read_bytes()
    r = client.post("/api/search", params={"mode": "vector"}, files={"image": ("q.png", data, "image/png")})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["image_query"] is True and body["results"][0]["name"] == "red.png"
    assert body["results"][0]["legs"]["vector"]["score"] == pytest.approx(1.0, abs=1e-4)  # the cosine
    both = client.post("/api/search", params={"q": "blue"}, files={"image": ("q.png", data, "image/png")})
    assert both.status_code == 200 and {"red.png", "blue.jpg"} <= set(names_of(both))


@pytest.mark.parametrize(
    "params",
    [
        {},  # nothing to search for
        {"q": "   "},
        {"q": "", "mode": "keyword"},
    ],
)
def test_empty_queries_are_400(client, params):
    r = client.get("/api/search", params=params)
    assert r.status_code == 400 and r.json()["detail"]


@pytest.mark.parametrize(
    "params",
    [
        {"q": "x", "limit": 0},
        {"q": "x", "limit": 100000},
        {"q": "x", "offset": -1},
        {"q": "x", "mode": "fuzzy"},
        {"q": "x", "fusion": "max"},
        {"q": "x", "vector_weight": "nan"},
        {"q": "x", "keyword_weight": -1},
        {"q": "x", "min_score": 2},
        {"q": "x", "after": "yesterday"},
        {"q": "x", "like": "abc"},
        {"q": "x\x00y"},
        {"q": "x", "folder": "/tmp\x00/etc"},
        {"q": "x" * 1001},
        {"q": "x", "surprise": 1},
    ],
)
def test_bad_parameters_are_422_with_a_message(client, params):
    r = client.get("/api/search", params=params)
    assert r.status_code == 422, r.text
    assert r.json()["detail"]


def test_bad_uploads_are_refused_with_a_reason(gallery):
    root, index = gallery
    small = make_client(index, max_upload_bytes=20_000, max_upload_pixels=100 * 100)
    text = small.post("/api/search", files={"image": ("notes.png", b"just some text", "image/png")})
    assert text.status_code == 415 and "not an image" in text.json()["detail"]
    empty = small.post("/api/search", files={"image": ("empty.png", b"", "image/png")})
    assert empty.status_code == 415 and "empty" in empty.json()["detail"]
    noise = os.urandom(30_000)
    big = small.post("/api/search", files={"image": ("big.png", noise, "image/png")})
    assert big.status_code == 413 and "limit" in big.json()["detail"]
    many = png_bytes(Image.new("RGB", (200, 200)))  # small file, too many pixels
    assert len(many) < 20_000
    r = small.post("/api/search", files={"image": ("many.png", many, "image/png")})
    assert r.status_code == 413 and "too large" in r.json()["detail"]
    assert small.post("/api/search").status_code == 422  # no file at all
    truncated = (root / "blue.jpg").read_bytes()[:300]
    r = small.post("/api/search", files={"image": ("cut.jpg", truncated, "image/jpeg")})
    assert r.status_code == 415


def test_a_chunked_upload_over_the_limit_is_stopped(gallery):
    _, index = gallery
    small = make_client(index, max_upload_bytes=10_000)

    def chunks():
        for _ in range(10):
            yield os.urandom(4096)

    r = small.post(
        "/api/search", content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=x"}
    )
    assert r.status_code == 413


# -- images -----------------------------------------------------------------------------------
def test_image_detail_has_text_lines_with_boxes(client, gallery):
    root, _ = gallery
    red = client.get("/api/images/lookup", params={"path": str(root / "red.png")})
    assert red.status_code == 200
    d = red.json()
    assert d["name"] == "red.png" and (d["width"], d["height"], d["format"]) == (64, 48, "PNG")
    assert d["caption"] == "a square saying red label qx-220" and d["tags"] == ["square", "red"]
    assert d["ocr_lines"] == [
        {"text": "RED LABEL QX-220", "confidence": 0.93, "box": [[2, 3], [30, 3], [30, 12], [2, 12]]}
    ]
    assert d["stages"]["ocr"] == {"tool": "label-ocr:1", "error": None}
    assert client.get(f"/api/images/{d['id']}").json() == d
    assert client.get("/api/images/987654").status_code == 404
    assert client.get("/api/images/0").status_code == 422
    assert client.get("/api/images/lookup", params={"path": "relative.png"}).status_code == 404


def test_thumbnails_are_made_once_and_cached(client, gallery):
    _, index = gallery
    rid = client.get("/api/search", params={"q": "QX-220", "mode": "keyword"}).json()["results"][0]["id"]
    r = client.get(f"/api/images/{rid}/thumbnail", params={"size": 32})
    assert r.status_code == 200 and r.headers["content-type"] == "image/webp"
    im = Image.open(io.BytesIO(r.content))
    assert max(im.size) == 64  # the original is smaller than the 128 px tier: never enlarged
    cached = list((index / "thumbs").rglob("*-128.webp"))
    assert len(cached) == 1
    stamp = cached[0].stat().st_mtime_ns
    assert client.get(f"/api/images/{rid}/thumbnail", params={"size": 100}).content == r.content
    assert cached[0].stat().st_mtime_ns == stamp
    assert client.get(f"/api/images/{rid}/thumbnail", params={"size": 5000}).status_code == 422


def test_originals_are_served_as_indexed(client, gallery):
    root, _ = gallery
    d = client.get("/api/images/lookup", params={"path": str(root / "blue.jpg")}).json()
    r = client.get(f"/api/images/{d['id']}/file")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert r.content == (root / "blue.jpg").read_bytes()
    assert r.headers["x-content-type-options"] == "nosniff"


TRAVERSALS = [
    "/api/images/../../etc/passwd",
    "/api/images/..%2F..%2Fetc%2Fpasswd",
    "/api/images/%252e%252e%252f%252e%252e%252fetc%252fpasswd",
    "/api/images/1/../../../../etc/passwd",
    "/api/images/%2e%2e/%2e%2e/etc/passwd/file",
    "/api/images/..%252f..%252fetc%252fpasswd/file",
    "/static/../../../../etc/passwd",
    "/static/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/static/%252e%252e/%252e%252e/%252e%252e/etc/passwd",
    "/static/....//....//etc/passwd",
    "/api/images/lookup?path=../../etc/passwd",
    "/api/images/lookup?path=..%2F..%2Fetc%2Fpasswd",
    "/api/images/lookup?path=%252e%252e%252fetc%252fpasswd",
    "/api/images/lookup?path=/etc/passwd",
]


@pytest.mark.parametrize("url", TRAVERSALS)
def test_path_traversal_never_reaches_a_file(client, url):
    r = client.get(url)
    assert r.status_code in (404, 422), (url, r.status_code)
    assert "root:" not in r.text


def test_a_symlink_out_of_the_root_is_recorded_failed_and_never_served(tmp_path, tiny_embedder):
    from indexer.pipeline import Indexer
    from searchengine.store.db import Store

    root, outside = tmp_path / "root", tmp_path / "private"
    write_images(root, 2)
    write_images(outside, 1, prefix="secret")
    (root / "link.png").symlink_to(outside / "secret000.png")
    store = Store(tmp_path / "index")
    Indexer(store, tiny_embedder).run(root)
    link = store.images.by_path(str(root / "link.png"))
    assert link.status == "failed" and "outside the indexed folder" in link.error
    client = make_client(tmp_path / "index")
    r = client.get("/api/images/lookup", params={"path": str(root / "link.png")})
    assert r.status_code == 403 and "outside its indexed folder" in r.json()["detail"]
    for what in ("", "/file", "/thumbnail"):
        r = client.get(f"/api/images/{link.id}{what}")
        assert r.status_code in (403, 404) and "secret" not in r.text
    ok = client.get("/api/images/lookup", params={"path": str(root / "img000.png")}).json()
    assert client.get(f"/api/images/{ok['id']}/file").status_code == 200
    (root / "img000.png").unlink()  # gone since it was indexed
    r = client.get(f"/api/images/{ok['id']}/file")
    assert r.status_code == 404 and "gone" in r.json()["detail"]


# -- CORS, keys, indexing ----------------------------------------------------------------------
def test_cors_is_off_unless_configured(gallery):
    _, index = gallery
    pre = {"Origin": "https://shop.example", "Access-Control-Request-Method": "GET"}
    off = make_client(index).options("/api/search", headers=pre)
    assert "access-control-allow-origin" not in off.headers
    on = make_client(index, cors_origins=("https://shop.example",))
    r = on.options("/api/search", headers=pre)
    assert r.headers["access-control-allow-origin"] == "https://shop.example"
    r = on.get("/api/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers


def test_the_environment_key_guards_an_app_built_without_settings(tmp_path, gallery, monkeypatch):
    """create_app() (uvicorn's factory, tests) reads SE_API_KEY: no endpoint is ever left open."""
    from fastapi.testclient import TestClient

    from tests.web.conftest import PAGE_LIKE
    from web.app import create_app

    copy = tmp_path / "index"
    shutil.copytree(gallery[1], copy, ignore=shutil.ignore_patterns("thumbs"))
    monkeypatch.setenv("SE_INDEX", str(copy))
    monkeypatch.setenv("SE_API_KEY", "from-env")
    client = TestClient(create_app(), raise_server_exceptions=False, **PAGE_LIKE)
    query = {"q": "QX-220", "mode": "keyword"}
    assert client.get("/api/search", params=query).status_code == 401  # reads need the key too
    found = client.get("/api/search", params=query, headers={"X-API-Key": "from-env"}).json()
    rid = found["results"][0]["id"]

    for headers in ({}, {"X-API-Key": "wrong"}):
        r = client.post("/api/index", headers=headers)
        assert r.status_code == 401 and "API key" in r.json()["detail"]
        assert (
            client.post(f"/api/images/{rid}/tags", json={"tags": ["x"]}, headers=headers).status_code == 401
        )
    key = {"X-API-Key": "from-env"}
    assert client.post(f"/api/images/{rid}/tags", json={"tags": ["x"]}, headers=key).json() == ["x"]
    r = client.post("/api/index", headers=key)  # allowed, but built without an indexer
    assert r.status_code == 503
    assert r.json()["detail"] == (
        "this service was started without an indexer: run it with 'searchengine serve'"
    )
    schema = client.get("/openapi.json").json()
    assert "APIKeyHeader" in schema["components"]["securitySchemes"]
    assert schema["paths"]["/api/index"]["post"]["security"] == [{"APIKeyHeader": []}]
    assert schema["paths"]["/api/index"]["get"]["security"] == [{"APIKeyHeader": []}, {"APIKeyCookie": []}]


def test_the_schema_names_no_key_when_none_is_set(client):
    schema = client.get("/openapi.json").json()
    assert "securitySchemes" not in schema.get("components", {})
    assert not any("security" in op for path in schema["paths"].values() for op in path.values())


def test_the_web_edge_does_not_import_the_indexer():
    import subprocess
    import sys

    code = "import sys, web.app; print(sorted(m for m in sys.modules if m.split('.')[0] == 'indexer'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_service_without_an_indexer_refuses_index_runs_with_503(gallery):
    client = make_client(gallery[1], indexer_factory=None)
    r = client.post("/api/index", json={})
    assert r.status_code == 503 and "without an indexer" in r.json()["detail"]
    assert client.get("/api/index").json()["state"] == "idle"


def test_a_broken_database_is_503_not_500(gallery):
    """The app finds its service through a dependency, so a test can swap it."""
    import sqlite3

    from web.deps import get_service

    class Broken:
        def store(self):
            raise sqlite3.OperationalError("database is locked")

    client = make_client(gallery[1])
    client.app.dependency_overrides[get_service] = Broken
    r = client.get("/api/health")
    assert r.status_code == 503 and "database is locked" in r.json()["detail"]
    client.app.dependency_overrides.clear()
    assert client.get("/api/health").status_code == 200


def test_service_settings_are_read_from_the_environment():
    from searchengine.config import Settings

    s = Settings.from_env(
        {
            "SE_API_KEY": "k",
            "SE_CORS_ORIGINS": " https://shop.example, http://localhost:3000 ,",
            "SE_MAX_UPLOAD_MB": "1.5",
        }
    )
    assert s.api_key == "k" and "k" not in repr(s)  # never logged
    assert s.cors_origins == ("https://shop.example", "http://localhost:3000")
    assert s.max_upload_bytes == int(1.5 * 1024 * 1024)
    assert (Settings().api_key, Settings().cors_origins, Settings().max_upload_bytes) == (None, (), 20 << 20)
    for env, message in (
        ({"SE_MAX_UPLOAD_MB": "lots"}, "SE_MAX_UPLOAD_MB must be a positive number, got 'lots'"),
        ({"SE_MAX_UPLOAD_MB": "0"}, "SE_MAX_UPLOAD_MB must be a positive number"),
        ({"SE_MAX_UPLOAD_MB": "nan"}, "SE_MAX_UPLOAD_MB must be a positive number"),
        ({"SE_CORS_ORIGINS": "https://shop.example/"}, "no path or trailing slash"),
        ({"SE_CORS_ORIGINS": "shop.example"}, "SE_CORS_ORIGINS must look like https://"),
    ):
        with pytest.raises(ValueError, match=re.escape(message)):
            Settings.from_env(env)


def test_serve_flags_override_the_environment(tmp_path, monkeypatch):
    import click

    from searchengine.cli import _serve_settings

    monkeypatch.setenv("SE_API_KEY", "env-key")
    monkeypatch.setenv("SE_CORS_ORIGINS", "https://env.example")
    monkeypatch.setenv("SE_MAX_UPLOAD_MB", "2")
    env = _serve_settings(str(tmp_path), (), None, (), None)
    assert (env.api_key, env.cors_origins, env.max_upload_bytes) == (
        "env-key",
        ("https://env.example",),
        2 << 20,
    )
    flags = _serve_settings(str(tmp_path), (str(tmp_path),), "flag-key", ("https://flag.example",), 1.0)
    assert (flags.api_key, flags.cors_origins, flags.max_upload_bytes) == (
        "flag-key",
        ("https://flag.example",),
        1 << 20,
    )
    assert flags.roots == (str(tmp_path.resolve()),) and flags.index_path == tmp_path
    with pytest.raises(click.BadParameter, match="no path or trailing slash"):
        _serve_settings(str(tmp_path), (), None, ("https://flag.example/",), None)
    monkeypatch.setenv("SE_MAX_UPLOAD_MB", "-3")
    with pytest.raises(click.ClickException, match="SE_MAX_UPLOAD_MB must be a positive number"):
        _serve_settings(str(tmp_path), (), None, (), None)


class SlowOcr:
    """An OCR stand-in that takes its time, so searches overlap the index run."""

    id = "slow-ocr:1"

    def read(self, image, scale=1.0):
        time.sleep(0.05)
        from searchengine.records import OcrResult

        return OcrResult()


def test_index_from_the_service_while_searching(tmp_path, tiny_embedder):
    from indexer.pipeline import Indexer
    from searchengine.models.registry import create_captioner

    root, index = tmp_path / "photos", tmp_path / "index"
    build_gallery(root, index, tiny_embedder)
    write_images(root / "new", 40, prefix="new", start=100)

    def slow_ocr_indexer(store, settings):  # as Indexer.from_settings, with an OCR that takes its time
        captioner = create_captioner(settings.captioner)
        return Indexer(
            store, tiny_embedder, captioner=captioner, ocr=SlowOcr(), batch_size=settings.batch_size
        )

    client = make_client(
        index, indexer_factory=slow_ocr_indexer, api_key="s3cret", roots=(str(root),), public_reads=True
    )

    assert client.post("/api/index").status_code == 401
    assert client.post("/api/index", headers={"X-API-Key": "wrong"}).status_code == 401
    key = {"X-API-Key": "s3cret"}
    r = client.post("/api/index", json={"root": "/etc"}, headers=key)
    assert r.status_code == 403 and "not a folder this service indexes" in r.json()["detail"]
    r = client.post("/api/index", json={"root": str(root / "..")}, headers=key)
    assert r.status_code == 403

    r = client.post("/api/index", json={"root": str(root)}, headers=key)
    assert r.status_code == 202 and r.json()["state"] == "running"
    assert client.post("/api/index", headers=key).status_code == 409
    statuses, seen_progress = [], set()
    service = client.app.state.service
    while service.indexing:
        statuses.append(client.get("/api/search", params={"q": "square", "min_score": -1}).status_code)
        job = client.get("/api/index").json()
        seen_progress.add(job["done"])
    job = service.wait_for_index(60)
    assert job.state == "done", job.error
    assert statuses and set(statuses) == {200}
    assert len(seen_progress) > 1  # progress moved while we watched
    final = client.get("/api/index").json()
    assert final["todo"] == final["done"] == 50  # 40 new, 10 old that lack the new OCR tool
    assert final["reports"][0]["embedded"] == 40 and final["rate"] > 0
    after = client.get("/api/search", params={"q": "square", "limit": 100, "min_score": -1}).json()
    assert after["total"] == 50  # the new vectors are searched once the run is over


def test_service_without_key_allows_indexing_and_reports_failures(tmp_path, tiny_embedder):
    root, index = tmp_path / "photos", tmp_path / "index"
    build_gallery(root, index, tiny_embedder)
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    client = make_client(index)
    r = client.post("/api/index", json={})
    assert r.status_code == 202
    job = client.app.state.service.wait_for_index(60)
    assert job.state == "done"
    stats = client.get("/api/stats").json()
    assert stats["failed"] == 1 and stats["failures"][0]["path"].endswith("broken.png")
    failed_id = client.get("/api/images/lookup", params={"path": str(root / "broken.png")}).json()["id"]
    assert client.get(f"/api/images/{failed_id}/file").status_code == 404


def test_empty_index_answers_with_409_not_500(tmp_path):
    client = make_client(tmp_path / "fresh")
    r = client.get("/api/search", params={"q": "cat"})
    assert r.status_code == 409 and "empty" in r.json()["detail"]
    assert client.get("/api/search", params={"q": "cat", "mode": "keyword"}).json()["results"] == []
    assert client.get("/api/health").json()["images"] == 0
    assert client.post("/api/index").status_code == 400  # nothing configured to index


def test_concurrent_searches_share_the_encoder_safely(client):
    errors = []

    def worker(q):
        for _ in range(5):
            r = client.get("/api/search", params={"q": q, "min_score": -1})
            if r.status_code != 200:
                errors.append(r.text)

    threads = [threading.Thread(target=worker, args=(q,)) for q in ("red", "blue", "square", "label")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_cli_serve_refuses_a_missing_index(tmp_path):
    from click.testing import CliRunner

    from searchengine.cli import cli

    r = CliRunner().invoke(cli, ["serve", "--index", str(tmp_path / "none")])
    assert r.exit_code == 1 and "no index" in r.stderr
    r = CliRunner().invoke(cli, ["serve", "--index", str(tmp_path / "none"), "--reindex"])
    assert r.exit_code == 1


def test_moved_gallery_copy_is_still_isolated(tmp_path, gallery):
    """A second service on a copy of the index never serves files through the first one's cache."""
    _, index = gallery
    copy = tmp_path / "copy"
    shutil.copytree(index, copy, ignore=shutil.ignore_patterns("thumbs"))
    c = make_client(copy)
    assert c.get("/api/health").json()["index"] == str(copy)
    assert not (copy / "thumbs").exists()
    rid = c.get("/api/search", params={"q": "QX-220", "mode": "keyword"}).json()["results"][0]["id"]
    assert c.get(f"/api/images/{rid}/thumbnail").status_code == 200
    assert (copy / "thumbs").is_dir()
    _ = make_image  # shared helper kept for symmetry with other suites


# -- catalogue, library, SEO (issue: catalogues, asset libraries and SEO) ------------------------
def test_catalogue_import_facets_and_where_over_http(tmp_path, tiny_embedder):
    root, index = tmp_path / "photos", tmp_path / "index"
    build_gallery(root, index, tiny_embedder)
    client = make_client(index, api_key="k", public_reads=True)  # the key guards changes only
    catalogue = (
        "file,title,brand,colour,price\n"
        "red.png,Red Mug,Acme,Red,12.50\n"
        "blue.jpg,Blue Mug,Acme,Blue,15\n"
        "img000.png,Desk Lamp,Lumo,Black,49\n"
        "nothing.png,Ghost,Acme,Red,1\n"
    )
    files = {"catalogue": ("cat.csv", catalogue.encode(), "text/csv")}
    assert client.post("/api/import", files=files).status_code == 401
    r = client.post("/api/import", files=files, headers={"X-API-Key": "k"})
    assert r.status_code == 200, r.text
    assert (r.json()["matched"], r.json()["unmatched"]) == (3, [{"line": 5, "image": "nothing.png"}])
    bad = client.post("/api/import", files={"catalogue": ("c.xls", b"x", "x")}, headers={"X-API-Key": "k"})
    assert bad.status_code == 400

    body = client.get(
        "/api/search", params={"q": "mug", "facet": ["brand", "colour"], "min_score": -1}
    ).json()
    assert {h["title"] for h in body["results"][:2]} == {"Red Mug", "Blue Mug"}
    assert {"value": "Acme", "count": 2} in body["facets"]["brand"]
    browse = client.get("/api/search", params={"where": ["brand=acme", "price<14"]}).json()
    assert browse["mode"] == "browse" and [h["title"] for h in browse["results"]] == ["Red Mug"]
    assert client.get("/api/search", params={"where": "price<cheap"}).status_code == 400
    fields = {f["key"]: f for f in client.get("/api/filters").json()["fields"]}
    assert fields["price"]["numeric"] and (fields["price"]["min"], fields["price"]["max"]) == (12.5, 49)
    detail = client.get("/api/images/lookup", params={"path": str(root / "red.png")}).json()
    assert (
        detail["metadata"]["title"] == "Red Mug" and detail["metadata_sources"]["title"] == "import:cat.csv"
    )


def test_tags_collections_duplicates_and_export_over_http(tmp_path, tiny_embedder):
    root, index = tmp_path / "photos", tmp_path / "index"
    write_images(root, 3)
    original = make_image(seed=7, size=(200, 160))
    original.save(root / "orig.png")
    original.resize((120, 96)).save(root / "copy.jpg", quality=70)
    from indexer.pipeline import Indexer
    from searchengine.store.db import Store

    Indexer(Store(index), tiny_embedder).run(root)
    client = make_client(index, api_key="k", public_reads=True)  # the key guards changes only
    key = {"X-API-Key": "k"}
    orig = client.get("/api/images/lookup", params={"path": str(root / "orig.png")}).json()
    assert [d["name"] for d in orig["duplicates"]] == ["copy.jpg"]
    dup = orig["duplicates"][0]
    assert (dup["thumbnail"], dup["file"]) == (
        f"/api/images/{dup['id']}/thumbnail",
        f"/api/images/{dup['id']}/file",
    )
    assert client.get(dup["file"]).content == (root / "copy.jpg").read_bytes()
    groups = client.get("/api/duplicates").json()
    assert [sorted(i["name"] for i in g["images"]) for g in groups] == [["copy.jpg", "orig.png"]]
    hit = client.get("/api/search", params={"like": orig["id"]}).json()["results"]
    assert next(h for h in hit if h["name"] == "copy.jpg")["duplicates"] == 1

    assert client.post(f"/api/images/{orig['id']}/tags", json={"tags": ["hero"]}).status_code == 401
    r = client.post(f"/api/images/{orig['id']}/tags", json={"tags": [" hero ", "spring sale"]}, headers=key)
    assert r.json() == ["hero", "spring sale"]
    found = client.get("/api/search", params={"q": "spring sale", "mode": "keyword"}).json()["results"]
    assert [h["name"] for h in found] == ["orig.png"]
    assert client.delete(f"/api/images/{orig['id']}/tags/hero", headers=key).json() == ["spring sale"]
    assert client.delete(f"/api/images/{orig['id']}/tags/hero", headers=key).status_code == 404
    assert client.post(f"/api/images/{orig['id']}/tags", json={"tags": []}, headers=key).status_code == 422

    r = client.post("/api/collections/Campaign", json={"ids": [orig["id"]]}, headers=key)
    assert r.json()["images"] == 1
    assert client.post("/api/collections/Campaign", json={"ids": [99999]}, headers=key).status_code == 404
    assert client.get("/api/collections").json()[0]["name"] == "Campaign"
    inside = client.get(
        "/api/search", params={"q": "a picture", "collection": "Campaign", "min_score": -1}
    ).json()
    assert [h["name"] for h in inside["results"]] == ["orig.png"]
    assert client.delete(f"/api/collections/Campaign/images/{orig['id']}", headers=key).status_code == 204
    assert client.delete("/api/collections/Campaign", headers=key).status_code == 204
    assert client.delete("/api/collections/Campaign", headers=key).status_code == 404

    r = client.get("/api/export", params={"format": "csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.text.splitlines()[0].startswith("path,alt_text,title,caption,keywords")
    ld = client.get("/api/export", params={"format": "jsonld"}).json()
    assert {o["@type"] for o in ld["@graph"]} == {"ImageObject"} and len(ld["@graph"]) == 5
    assert client.get("/api/export", params={"format": "zip"}).status_code == 422  # xmp: test_review_api


def test_the_service_encodes_a_query_text_once(tiny_embedder):
    from web.service import _Serialised

    calls = []

    class Counting:
        id = tiny_embedder.id

        def embed_texts(self, texts):
            calls.append(list(texts))
            return tiny_embedder.embed_texts(texts)

    enc = _Serialised(Counting())
    a = enc.embed_texts(["red label", "blue"])
    b = enc.embed_texts(["blue", "red label", "new"])
    assert calls == [["red label", "blue"], ["new"]]  # page 2, filters, repeats: no new encoding
    assert np.allclose(a[0], b[1]) and np.allclose(a[1], b[0])
    assert np.allclose(b[2], tiny_embedder.embed_texts(["new"])[0], atol=1e-6)
