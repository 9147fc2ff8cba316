import sqlite3

import pytest

from searchengine.errors import IndexMismatch, SchemaTooNew
from searchengine.records import EncoderId
from searchengine.store.db import ImageWrite, Store
from searchengine.store.schema import MIGRATIONS, current_version, migrate


def test_migrations_are_idempotent(tmp_path):
    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    assert migrate(conn) == len(MIGRATIONS)
    assert migrate(conn) == len(MIGRATIONS)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"meta", "images", "embeddings"} <= tables


def test_newer_schema_is_refused(tmp_path):
    conn = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(SchemaTooNew, match="upgrade"):
        migrate(conn)
    assert current_version(conn) == len(MIGRATIONS) + 1


def test_bind_encoder_refuses_another(tmp_path):
    store = Store(tmp_path)
    store.bind_encoder(EncoderId("clip", "A:x", 64))
    store.bind_encoder(EncoderId("clip", "A:x", 64))  # same: fine
    with pytest.raises(IndexMismatch, match="--rebuild"):
        store.bind_encoder(EncoderId("offline", "y", 384))
    store.clear()
    store.bind_encoder(EncoderId("offline", "y", 384))
    assert store.encoder() == EncoderId("offline", "y", 384)


def test_write_delete_and_generation(tmp_path):
    store = Store(tmp_path)
    store.bind_encoder(EncoderId("t", "t", 2))
    g0 = store.generation()
    row = {
        "path": "/r/a.png",
        "root": "/r",
        "sha256": "h",
        "size": 3,
        "mtime_ns": 4,
        "width": 1,
        "height": 1,
        "format": "PNG",
        "status": "ok",
        "error": None,
    }
    bad = dict(row, path="/r/b.png", sha256="h2", status="failed", error="not an image")
    store.write_batch([ImageWrite("/r/a.png", row=row, vector=b"\x00" * 8), ImageWrite("/r/b.png", row=bad)])
    g1 = store.generation()
    assert g1 != g0
    counts = store.counts()
    assert (counts["ok"], counts["failed"], counts["images"], counts["vectors"]) == (1, 1, 2, 1)
    assert [f.error for f in store.failures()] == ["not an image"]
    assert store.vector_for_hash("h") == b"\x00" * 8
    assert set(store.rows_under("/r")) == {"/r/a.png", "/r/b.png"}
    assert store.rows_under("/r2") == {}
    assert store.delete_paths(["/r/a.png"]) == 1
    assert store.counts()["vectors"] == 0  # cascade
    assert store.generation() not in (g0, g1)
