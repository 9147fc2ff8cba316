import sqlite3

import pytest

from searchengine.errors import IndexMismatch, SchemaTooNew
from searchengine.records import EncoderId
from searchengine.store.db import Store
from searchengine.store.images import ImageWrite
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
    with pytest.raises(IndexMismatch, match="--index NEW_FOLDER"):
        store.bind_encoder(EncoderId("offline", "y", 384))
    store.embeddings.replace(EncoderId("offline", "y", 384), [])  # what index --rebuild --model does
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
    store.images.write_batch(
        [ImageWrite("/r/a.png", row=row, vector=b"\x00" * 8), ImageWrite("/r/b.png", row=bad)]
    )
    g1 = store.generation()
    assert g1 != g0
    counts = store.images.counts()
    assert (counts.ok, counts.failed, counts.images, counts.vectors) == (1, 1, 2, 1)
    assert [f.error for f in store.images.failures()] == ["not an image"]
    assert store.embeddings.for_hash("h") == b"\x00" * 8
    assert set(store.images.rows_under("/r")) == {"/r/a.png", "/r/b.png"}
    assert store.images.rows_under("/r2") == {}
    assert store.images.delete_paths(["/r/a.png"]) == 1
    assert store.images.counts().vectors == 0  # cascade
    assert store.generation() not in (g0, g1)


def test_a_version_2_index_upgrades_in_place(tmp_path, tiny_embedder):
    """An index written before metadata and duplicates keeps its text and gains the new stages."""
    import sqlite3

    from indexer.pipeline import Indexer
    from searchengine.store.db import Store
    from searchengine.store.schema import MIGRATIONS, SCHEMA_0001, SCHEMA_0002, _script
    from tests.conftest import write_images

    root = tmp_path / "photos"
    paths = write_images(root, 3)
    db = tmp_path / "index" / "index.db"
    db.parent.mkdir()
    conn = sqlite3.connect(db, isolation_level=None)
    _script(conn, SCHEMA_0001)
    _script(conn, SCHEMA_0002)
    for n, p in enumerate(paths, start=1):
        conn.execute(
            "INSERT INTO images(id, path, root, sha256, size, mtime_ns, width, height, format, status, "
            "indexed_at) VALUES (?, ?, ?, 'x', 1, 1, 48, 40, 'PNG', 'ok', 'then')",
            (n, str(p), str(root)),
        )
        conn.execute(
            "INSERT INTO captions(image_id, text, tags, model) VALUES (?, 'a red kite', '[]', ?)",
            (n, "old" if n > 1 else "offline:labels-colours-ocr-v1"),
        )
        conn.execute(
            "INSERT INTO search_fts(rowid, name, folder, caption, tags, ocr) "
            "VALUES (?, ?, '', 'a red kite', '', '')",
            (n, p.stem),
        )
    conn.execute("PRAGMA user_version = 2")
    conn.close()

    store = Store(tmp_path / "index")
    assert current_version(store.db.conn) == len(MIGRATIONS) == 6
    assert "parts" in {c.name for c in store.db["captions"].columns}  # 0004: caption parts
    assert store.db["not_duplicates"].exists()  # 0005: pairs marked "not duplicates"
    # "a red kite" is not the offline captioner's form: no parts are made up for it
    assert [store.text.of(n).caption_parts for n in (1, 2)] == [None, None]
    assert len(store.text.keyword_search('"kite"', 10)) == 3  # the keyword index was rebuilt with its text
    assert store.duplicates.phashes() == {}
    Indexer(store, tiny_embedder).run(root)  # new content hashes: re-embedded, hashed
    assert len(store.duplicates.phashes()) == 3


@pytest.mark.parametrize(
    ("caption", "parts"),
    [
        (
            "Looks like a tabby; mostly orange.",
            {"labels": [["tabby", None]], "colours": ["orange"], "quoted": ""},
        ),
        (
            'Looks like a cat, an orange or a dog with the text "HELLO X"; mostly white, black and grey.',
            {
                "labels": [["cat", None], ["orange", None], ["dog", None]],
                "colours": ["white", "black", "grey"],
                "quoted": "HELLO X",
            },
        ),
        (
            'Shows the text "SUMMER SALE"; mostly red.',
            {"labels": [], "colours": ["red"], "quoted": "SUMMER SALE"},
        ),
        ("An image; mostly grey.", {"labels": [], "colours": ["grey"], "quoted": ""}),
        ("a dog on a beach", None),  # not the offline captioner's form
    ],
)
def test_migration_0004_reads_the_old_offline_captions_parts(caption, parts):
    from searchengine.store.schema import legacy_offline_parts

    assert legacy_offline_parts(caption) == parts


def test_database_problems_say_busy_or_keep_a_copy_never_destroy():
    from searchengine.store.db import database_problem

    busy = database_problem(sqlite3.OperationalError("database is locked"))
    assert busy.startswith("the index is busy") and "try again" in busy
    broken = database_problem(sqlite3.DatabaseError("file is not a database"))
    assert "keep a copy" in broken and "--rebuild" not in broken and "delete" not in broken
