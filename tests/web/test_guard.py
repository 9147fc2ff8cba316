"""What no other web page may do to the server: forge changes, rebind DNS, read past a key,
and what no JSON body may do: reach a 500 (issue: safe by default, faults 1 and 6).

The forged requests are the ones a page on ``http://evil.example`` can send without a CORS
preflight: a multipart form, a ``text/plain`` body, an urlencoded form. The page's own
requests (``X-Requested-With``, its own ``Origin``) must keep working.
"""

from __future__ import annotations

import shutil

import pytest
from fastapi.testclient import TestClient

from searchengine.config import Settings
from tests.web.conftest import PAGE_LIKE, make_client
from web.app import create_app

EVIL = {"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}
CATALOGUE = b"file,title\nred.png,Forged Title\n"


@pytest.fixture
def index_copy(gallery, tmp_path):
    """A copy of the shared gallery's index, for tests that try to change it."""
    copy = tmp_path / "index"
    shutil.copytree(gallery[1], copy, ignore=shutil.ignore_patterns("thumbs"))
    return copy


def bare_client(index, **fields) -> TestClient:
    """A client that sends only what the test says (no page header), as a foreign page would."""
    app = create_app(Settings(index_path=index, captioner="none", ocr="none", **fields))
    return TestClient(app, raise_server_exceptions=False, base_url="http://localhost")


def red_id(client, gallery, headers=None) -> int:
    r = client.get("/api/images/lookup", params={"path": str(gallery[0] / "red.png")}, headers=headers)
    return r.json()["id"]


# -- forged changes (fault 1) ----------------------------------------------------------------------
def test_a_forged_catalogue_import_is_refused_and_stores_nothing(index_copy, gallery):
    client = bare_client(index_copy)
    files = {"catalogue": ("cat.csv", CATALOGUE, "text/csv")}
    for headers in (EVIL, {"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}, {}):
        r = client.post("/api/import", files=files, headers=headers)
        assert r.status_code == 403, (headers, r.text)
        assert "refused" in r.json()["detail"]
    assert "title" not in client.get(f"/api/images/{red_id(client, gallery)}").json()["metadata"]
    # a page on the same origin that sends its header (the page's way) may import
    page = {"Origin": "http://localhost", "X-Requested-With": "searchengine-page"}
    assert client.post("/api/import", files=files, headers=page).status_code == 200
    assert client.get(f"/api/images/{red_id(client, gallery)}").json()["metadata"]["title"] == "Forged Title"


def test_a_text_plain_index_run_is_refused_and_not_started(gallery):
    client = bare_client(gallery[1])
    r = client.post("/api/index", content='{"root": "/"}', headers={"Content-Type": "text/plain", **EVIL})
    assert r.status_code == 403 and "refused a change sent by a page from http://evil.example" in r.text
    r = client.post("/api/index", content="", headers={"Content-Type": "text/plain"})  # no Origin either
    assert r.status_code == 403 and "must send an X-Requested-With header" in r.json()["detail"]
    assert client.app.state.service.job().state == "idle" and not client.app.state.service.indexing


def test_a_form_post_is_refused(index_copy, gallery):
    client = bare_client(index_copy)
    rid = red_id(client, gallery)
    form = {"tags": "forged"}
    for headers in (EVIL, {}):
        r = client.post(f"/api/images/{rid}/tags", data=form, headers=headers)
        assert r.status_code == 403
    r = client.post("/api/collections/forged", data={"ids": str(rid)}, headers=EVIL)
    assert r.status_code == 403
    assert client.get("/api/collections").json() == []
    assert client.get(f"/api/images/{rid}").json()["user_tags"] == []


def test_json_from_another_origin_is_refused_even_with_the_header(index_copy, gallery):
    """A JSON body or a custom header needs a CORS preflight; a server with CORS on could grant it."""
    client = bare_client(index_copy)
    rid = red_id(client, gallery)
    headers = {**EVIL, "X-Requested-With": "x"}
    assert client.post(f"/api/images/{rid}/tags", json={"tags": ["t"]}, headers=headers).status_code == 403
    assert client.delete("/api/collections/none", headers=headers).status_code == 403
    r = client.post(f"/api/images/{rid}/tags", json={"tags": ["t"]}, headers={"Origin": "null"})
    assert r.status_code == 403
    # a JSON body from the server's own origin, or with no Origin (curl, scripts), is fine
    assert client.post(f"/api/images/{rid}/tags", json={"tags": ["a"]}).status_code == 200
    own = {"Origin": "http://localhost"}
    assert client.post(f"/api/images/{rid}/tags", json={"tags": ["b"]}, headers=own).json() == ["a", "b"]


def test_an_allowed_cors_origin_may_change_things(index_copy, gallery):
    client = bare_client(index_copy, cors_origins=("https://shop.example",))
    rid = red_id(client, gallery)
    shop = {"Origin": "https://shop.example", "Sec-Fetch-Site": "cross-site"}
    assert client.post(f"/api/images/{rid}/tags", json={"tags": ["s"]}, headers=shop).json() == ["s"]
    assert client.post(f"/api/images/{rid}/tags", json={"tags": ["e"]}, headers=EVIL).status_code == 403


def test_a_search_by_uploaded_image_is_guarded_like_a_change(gallery):
    """POST /api/search reads, but a foreign page could still make the server decode images."""
    client = bare_client(gallery[1])
    image = {"image": ("red.png", (gallery[0] / "red.png").read_bytes(), "image/png")}
    assert client.post("/api/search", files=image, headers=EVIL).status_code == 403
    assert client.post("/api/search", files=image).status_code == 403
    r = client.post("/api/search", files=image, headers=PAGE_LIKE["headers"])
    assert r.status_code == 200 and r.json()["results"][0]["name"] == "red.png"


# -- DNS rebinding -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "host", ["evil.example", "evil.example:8000", "localhost.evil.example", "testserver"]
)
def test_a_foreign_host_gets_421_and_how_to_allow_it(gallery, host):
    client = bare_client(gallery[1])
    for url in ("/api/search?q=red", "/api/images/1/file", "/api/health", "/"):
        r = client.get(url, headers={"Host": host})
        assert r.status_code == 421, url
    detail = r.json()["detail"]
    assert "DNS rebinding" in detail and f"--allow-host {host.split(':')[0]}" in detail


@pytest.mark.parametrize(
    "host",
    ["localhost", "localhost:8000", "127.0.0.1:8000", "[::1]:8000", "192.168.1.5:8000", "app.localhost"],
)
def test_loopback_names_and_ip_addresses_are_answered(gallery, host):
    client = bare_client(gallery[1])
    assert client.get("/api/health", headers={"Host": host}).status_code == 200


def test_allowed_host_names_are_answered(gallery):
    client = bare_client(gallery[1], allowed_hosts=("photos.lan", "*.home.arpa"))
    for host in ("photos.lan", "PHOTOS.LAN:8000", "nas.home.arpa"):
        assert client.get("/api/health", headers={"Host": host}).status_code == 200, host
    for host in ("photos.lan.evil.example", "home.arpa.evil.example", "evil.example"):
        assert client.get("/api/health", headers={"Host": host}).status_code == 421, host
    anyone = bare_client(gallery[1], allowed_hosts=("*",))
    assert anyone.get("/api/health", headers={"Host": "evil.example"}).status_code == 200


def test_serve_allows_its_own_host_name(tmp_path, monkeypatch):
    import click

    from searchengine.cli import _serve_settings

    monkeypatch.setenv("SE_ALLOWED_HOSTS", "env.lan")
    s = _serve_settings(str(tmp_path), (), None, (), None, host="0.0.0.0")
    assert s.allowed_hosts == ("env.lan",)  # a wildcard address names no host
    s = _serve_settings(str(tmp_path), (), None, (), None, host="nas.lan", allow_hosts=("Photos.lan",))
    assert s.allowed_hosts == ("photos.lan", "nas.lan")  # flags over the environment, plus --host
    with pytest.raises(click.BadParameter, match="no scheme, port or path"):
        _serve_settings(str(tmp_path), (), None, (), None, allow_hosts=("http://photos.lan",))
    monkeypatch.setenv("SE_PUBLIC_READS", "maybe")
    with pytest.raises(click.ClickException, match="SE_PUBLIC_READS must be true or false"):
        _serve_settings(str(tmp_path), (), None, (), None)


# -- reads with a key ----------------------------------------------------------------------------------
READS = ("/api/search?q=red", "/api/filters", "/api/stats", "/api/health", "/api/collections", "/api/export")


def test_with_a_key_reads_need_it_too(gallery):
    client = make_client(gallery[1], api_key="k")
    key = {"X-API-Key": "k"}
    rid = red_id(client, gallery, headers=key)
    for url in (*READS, f"/api/images/{rid}", f"/api/images/{rid}/thumbnail", f"/api/images/{rid}/file"):
        r = client.get(url)
        assert r.status_code == 401 and "API key" in r.json()["detail"], url
        assert client.get(url, headers={"X-API-Key": "wrong"}).status_code == 401, url
        assert client.get(url, headers=key).status_code == 200, url
    image = {"image": ("red.png", (gallery[0] / "red.png").read_bytes(), "image/png")}
    assert client.post("/api/search", files=image).status_code == 401
    # what needs no key: the page itself, its scripts, the API docs, the sign-in
    for url in ("/", "/static/app.js", "/docs", "/openapi.json", "/api/session"):
        assert client.get(url).status_code == 200, url


def test_the_opt_out_makes_reads_public_but_not_changes(gallery):
    client = make_client(gallery[1], api_key="k", public_reads=True)
    for url in READS:
        assert client.get(url).status_code == 200, url
    assert client.post("/api/index").status_code == 401
    assert Settings.from_env({"SE_PUBLIC_READS": "true"}).public_reads
    assert not Settings.from_env({"SE_PUBLIC_READS": "0"}).public_reads


def test_the_page_signs_in_once_and_its_images_load_with_the_cookie(index_copy, gallery):
    """The page's way: POST the key to /api/session; an HttpOnly, SameSite=Strict cookie then
    lets every read through, <img> requests included, but no change."""
    client = make_client(index_copy, api_key="k")
    assert client.get("/api/session").json() == {"key_required": True, "signed_in": False}
    assert client.post("/api/session", json={"key": "wrong"}).status_code == 401
    assert "se_session" not in client.cookies
    r = client.post("/api/session", json={"key": "k"})
    assert r.status_code == 204
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "k" != client.cookies["se_session"]
    assert client.get("/api/session").json() == {"key_required": True, "signed_in": True}
    rid = red_id(client, gallery)
    for url in (*READS, f"/api/images/{rid}/thumbnail", f"/api/images/{rid}/file"):
        assert client.get(url).status_code == 200, url
    # the cookie reads; changes still need the header
    assert client.post(f"/api/images/{rid}/tags", json={"tags": ["x"]}).status_code == 401
    # a forged cookie, or one for another key, reads nothing
    other = make_client(index_copy, api_key="other")
    other.cookies.set("se_session", client.cookies["se_session"])
    assert other.get("/api/stats").status_code == 401
    assert client.delete("/api/session").status_code == 204 and "se_session" not in client.cookies
    assert client.get("/api/stats").status_code == 401


def test_signing_in_needs_a_key_to_sign_in_to(gallery):
    client = make_client(gallery[1])
    assert client.get("/api/session").json() == {"key_required": False, "signed_in": False}
    assert client.post("/api/session", json={"key": "x"}).status_code == 409


# -- strict JSON (fault 6) -------------------------------------------------------------------------------
HOSTILE_BODIES = {
    "1e400": '{"root": 1e400, "tags": [1e400], "ids": [1e400], "key": 1e400}',
    "NaN": '{"root": NaN, "tags": [NaN], "ids": [NaN], "key": NaN}',
    "Infinity": '{"ids": [-Infinity]}',
    "deep": "[" * 10_000 + "]" * 10_000,
    "deep object": '{"a":' * 5_000 + "1" + "}" * 5_000,
    "huge int": '{"ids": [' + "9" * 4_300 + "]}",
    "not UTF-8": b'{"tags": ["\xff"]}',
    "lone surrogate": '{"tags": ["\\ud800"], "root": "\\udc00", "ids": ["\\ud800"]}',
}


def json_operations(client) -> list[tuple[str, str]]:
    """Every operation of the API that takes a JSON body, from its own schema."""
    paths = client.get("/openapi.json").json()["paths"]
    found = []
    for path, ops in paths.items():
        for method, op in ops.items():
            if "application/json" in op.get("requestBody", {}).get("content", {}):
                found.append((method.upper(), path.replace("{image_id}", "1").replace("{name}", "c")))
    return found


@pytest.mark.parametrize("api_key", [None, "k"], ids=["open", "with-key"])
def test_no_json_body_reaches_a_500(index_copy, api_key):
    client = make_client(index_copy, api_key=api_key)
    operations = json_operations(client)
    assert {path for _, path in operations} >= {"/api/index", "/api/images/1/tags", "/api/collections/c"}
    headers = {"Content-Type": "application/json", "X-API-Key": "k"}
    for method, path in operations:
        for name, body in HOSTILE_BODIES.items():
            r = client.request(method, path, content=body, headers=headers)
            assert r.status_code == 400, (method, path, name, r.status_code, r.text[:200])
            assert "the JSON body is refused" in r.json()["detail"], (path, name)
    assert client.app.state.service.job().state == "idle"


def test_json_body_messages_say_what_is_wrong(gallery):
    client = make_client(gallery[1])
    post = lambda body: client.post(  # noqa: E731
        "/api/index", content=body, headers={"Content-Type": "application/json"}
    ).json()["detail"]
    assert "must be finite" in post(HOSTILE_BODIES["1e400"])
    assert "must be finite" in post(HOSTILE_BODIES["NaN"])
    assert "nested deeper than 64 levels" in post(HOSTILE_BODIES["deep"])
    assert "4,300 characters" in post(HOSTILE_BODIES["huge int"])
    assert "not JSON" in post('{"root": ')
    big = '{"root": "' + "x" * (1024 * 1024) + '"}'
    r = client.post("/api/index", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "1,048,576 bytes" in r.json()["detail"]


def test_an_uploaded_jsonl_catalogue_reports_hostile_lines(index_copy, gallery):
    client = make_client(index_copy)
    lines = [
        '{"file": "red.png", "title": "Red"}',
        '{"file": "blue.jpg", "a": ' + "[" * 10_000 + "]" * 10_000 + "}",
        '{"file": "blue.jpg", "price": ' + "9" * 4_300 + "}",
        '{"file": "blue.jpg", "price": NaN}',
        '{"file": "blue.jpg", "price": 1e400}',
    ]
    files = {"catalogue": ("cat.jsonl", "\n".join(lines).encode(), "application/x-ndjson")}
    r = client.post("/api/import", files=files)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["matched"] == 1
    reasons = {b["line"]: b["reason"] for b in body["bad"]}
    assert set(reasons) == {2, 3, 4, 5}
    assert "nested deeper" in reasons[2] and "4,300 characters" in reasons[3]
    assert "must be finite" in reasons[4] and "must be finite" in reasons[5]


def test_a_catalogue_line_with_a_lone_surrogate_is_reported_not_a_500(index_copy, gallery):
    client = make_client(index_copy)
    lines = ['{"file": "red.png", "title": "Red"}', '{"file": "blue.jpg", "title": "\\ud800"}']
    files = {"catalogue": ("cat.jsonl", "\n".join(lines).encode(), "application/x-ndjson")}
    r = client.post("/api/import", files=files)
    assert r.status_code == 200 and r.json()["matched"] == 1, r.text
    assert "surrogate" in r.json()["bad"][0]["reason"]


def test_a_body_that_is_not_json_nor_utf8_gets_a_422_not_a_500(index_copy, gallery):
    client = bare_client(index_copy)
    rid = red_id(client, gallery)
    headers = {"X-Requested-With": "x", "Content-Type": "text/plain"}
    r = client.post(f"/api/images/{rid}/tags", content=b"\xff\xfe", headers=headers)
    assert r.status_code == 422 and "xff" in r.text, r.text


def test_a_chunked_json_body_over_the_upload_limit_is_413_not_500(gallery):
    client = make_client(gallery[1], max_upload_bytes=100)

    def chunks():  # no Content-Length: the limit is found while reading
        yield b'{"tags": ["'
        for _ in range(20):
            yield b"x" * 20
        yield b'"]}'

    r = client.post("/api/images/1/tags", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "100 bytes" in r.json()["detail"]
