"""The only DDL of the project: numbered migrations, applied in order.

``PRAGMA user_version`` holds the number of migrations applied. Each migration
runs in one transaction, so a database is never left half-migrated. A database
from a newer version of the program is refused rather than guessed at.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable

from searchengine.errors import SchemaTooNew
from searchengine.store.fts import refresh_all
from searchengine.text import name_and_folder, split_letters_digits

SCHEMA_0001 = """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE images (
    id         INTEGER PRIMARY KEY,
    path       TEXT NOT NULL UNIQUE,   -- absolute, resolved
    root       TEXT NOT NULL,          -- the folder it was indexed under
    sha256     TEXT,
    size       INTEGER NOT NULL,
    mtime_ns   INTEGER NOT NULL,
    width      INTEGER,
    height     INTEGER,
    format     TEXT,
    status     TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    error      TEXT,
    indexed_at TEXT NOT NULL
);
CREATE INDEX images_root ON images(root);
CREATE INDEX images_sha256 ON images(sha256);
CREATE TABLE embeddings (
    image_id INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
    vector   BLOB NOT NULL             -- float32 little-endian, unit norm
);
"""

SCHEMA_0002 = """
CREATE TABLE captions (
    image_id INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
    text     TEXT NOT NULL,
    tags     TEXT NOT NULL DEFAULT '[]',  -- JSON list of keywords
    model    TEXT NOT NULL                -- provenance: captioner name:tag
);
CREATE TABLE ocr (
    image_id INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
    text     TEXT NOT NULL,               -- all lines, reading order, newline-joined
    engine   TEXT NOT NULL
);
CREATE TABLE ocr_lines (
    image_id   INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    line_no    INTEGER NOT NULL,
    text       TEXT NOT NULL,
    confidence REAL NOT NULL,
    box        TEXT NOT NULL,             -- JSON [[x, y] x 4] in original-image pixels
    PRIMARY KEY (image_id, line_no)
);
-- One row per (image, stage) once the stage ran on the image's current content;
-- error is NULL when it succeeded. Stages: ocr, caption (embedding: see images.status).
CREATE TABLE stages (
    image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    stage    TEXT NOT NULL,
    tool     TEXT NOT NULL,
    error    TEXT,
    PRIMARY KEY (image_id, stage)
);
-- Keyword index, one document per image (rowid = images.id), kept in step by Store.
-- unicode61 folds case and accents; codes such as QX-7781-B or 25/12/2018 become
-- token sequences that phrase queries match exactly.
CREATE VIRTUAL TABLE search_fts USING fts5(
    name, folder, caption, tags, ocr,
    tokenize = 'unicode61 remove_diacritics 2'
);
"""

SCHEMA_0003 = """
-- Product and asset metadata (imported catalogues): one value per (image, key), keys
-- in lower snake case; num holds the value as a number when it reads as one (ranges).
CREATE TABLE metadata (
    image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    key      TEXT NOT NULL,
    value    TEXT NOT NULL,
    num      REAL,
    source   TEXT NOT NULL,               -- provenance, e.g. import:catalog.csv
    PRIMARY KEY (image_id, key)
);
CREATE INDEX metadata_key_value ON metadata(key, lower(value));
CREATE INDEX metadata_key_num ON metadata(key, num);
CREATE TABLE user_tags (
    image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    tag      TEXT NOT NULL,
    added_at TEXT NOT NULL,
    PRIMARY KEY (image_id, tag)
);
CREATE TABLE collections (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
CREATE TABLE collection_items (
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    image_id      INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    added_at      TEXT NOT NULL,
    PRIMARY KEY (collection_id, image_id)
);
CREATE INDEX collection_items_image ON collection_items(image_id);
-- Near-duplicate groups, recomputed after every index run (group_id: smallest member id).
CREATE TABLE duplicates (
    image_id INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
    group_id INTEGER NOT NULL
);
CREATE INDEX duplicates_group ON duplicates(group_id);
-- perceptual hash, 16 hex digits (64 bits)
ALTER TABLE images ADD COLUMN phash TEXT;
DROP TABLE search_fts;
CREATE VIRTUAL TABLE search_fts USING fts5(
    name, folder, caption, tags, ocr, meta,
    tokenize = 'unicode61 remove_diacritics 2'
)
"""


SCHEMA_0004 = """
-- What a composed caption says, as data (JSON {"labels": [[label, p]], "colours": [...],
-- "quoted": "..."}); NULL for captioners that write prose only. Exports read this,
-- never the caption's prose.
ALTER TABLE captions ADD COLUMN parts TEXT
"""

SCHEMA_0005 = """
-- Pairs the user said are not duplicates, by content (sha256, a <= b; a = b for two copies
-- of one file): they are never grouped again, whatever their ids, after a move, a
-- re-index or a regrouping with other thresholds.
CREATE TABLE not_duplicates (
    a        TEXT NOT NULL,
    b        TEXT NOT NULL,
    added_at TEXT NOT NULL,
    PRIMARY KEY (a, b),
    CHECK (a <= b)
)
"""

Migration = Callable[[sqlite3.Connection], None]

SCHEMA_0006 = """
-- Every change of a vector, in commit order: the saved FAISS index records the last seq it
-- reflects, and is brought up to date from the entries after it (see store/vector_log.py).
-- Written by triggers, so no write path can change a vector without a log entry.
-- tag: a random number per entry, so that a database restored from a backup (or rolled back
-- by a crash), whose next entries take the same seqs again, is never mistaken for the
-- history a saved index was built from.
CREATE TABLE vector_log (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    image_id INTEGER NOT NULL,
    tag      INTEGER NOT NULL DEFAULT (random())
);
CREATE TRIGGER vector_log_insert AFTER INSERT ON embeddings BEGIN
    INSERT INTO vector_log(image_id) VALUES (new.image_id); END;
CREATE TRIGGER vector_log_update AFTER UPDATE ON embeddings BEGIN
    INSERT INTO vector_log(image_id) VALUES (old.image_id); INSERT INTO vector_log(image_id)
    SELECT new.image_id WHERE new.image_id != old.image_id; END;
CREATE TRIGGER vector_log_delete AFTER DELETE ON embeddings BEGIN
    INSERT INTO vector_log(image_id) VALUES (old.image_id); END;
-- which log this is: a repaired (recreated) database starts another, so that no saved
-- index can be brought up to date from a log it was not built against
INSERT OR REPLACE INTO meta(key, value) VALUES ('vector_log_epoch', lower(hex(randomblob(16))))
"""


def _script(conn: sqlite3.Connection, script: str) -> None:
    """Run DDL statements one by one (executescript would commit our transaction)."""
    for statement in script.split(";\n"):
        if statement.strip():
            conn.execute(statement)


def _m0001_initial(conn: sqlite3.Connection) -> None:
    _script(conn, SCHEMA_0001)


def _m0002_text(conn: sqlite3.Connection) -> None:
    _script(conn, SCHEMA_0002)
    # images indexed before this migration get their (name, folder) document now
    rows = conn.execute("SELECT id, path, root FROM images").fetchall()
    for image_id, path, root in rows:
        name, folder = name_and_folder(path, root)
        conn.execute(
            "INSERT INTO search_fts(rowid, name, folder, caption, tags, ocr) VALUES (?,?,?,'','','')",
            (image_id, split_letters_digits(name), split_letters_digits(folder)),
        )


def _m0003_library(conn: sqlite3.Connection) -> None:
    _script(conn, SCHEMA_0003)
    refresh_all(conn)  # the keyword index gains its metadata column


#: How the offline captioner's first version wrote its sentences (the only prose ever parsed,
#: once, here): "Looks like a cat or a dog with the text "X"; mostly white and grey."
_LEGACY_OFFLINE = re.compile(
    r'^(?:Looks like (?P<labels>.+?)(?= with the text "|;|\.$))?'
    r'(?:(?: with|Shows) the text "(?P<quoted>.*)")?'
    r"(?:An image)?(?:; mostly (?P<colours>[a-z ,]+))?\.$"
)


def legacy_offline_parts(text: str) -> dict | None:
    """The parts of a caption written by ``offline:labels-colours-ocr-v1`` (None if not its form).

    Its label probabilities were not stored: they are left unknown (None).
    """
    m = _LEGACY_OFFLINE.match(text)
    if m is None:
        return None

    def words(group: str | None, last: str) -> list[str]:
        return [w for w in re.split(rf", | {last} ", group or "") if w]

    labels = [re.sub(r"^an? ", "", w) for w in words(m.group("labels"), "or")]
    return {
        "labels": [[n, None] for n in labels],
        "colours": words(m.group("colours"), "and"),
        "quoted": m.group("quoted") or "",
    }


def _m0004_caption_parts(conn: sqlite3.Connection) -> None:
    _script(conn, SCHEMA_0004)
    rows = conn.execute("SELECT image_id, text FROM captions WHERE model = 'offline:labels-colours-ocr-v1'")
    for image_id, text in rows.fetchall():
        parts = legacy_offline_parts(text)
        if parts is not None:
            conn.execute("UPDATE captions SET parts = ? WHERE image_id = ?", [json.dumps(parts), image_id])


MIGRATIONS: list[tuple[str, Migration]] = [
    ("0001_initial", _m0001_initial),
    ("0002_captions_ocr_fts", _m0002_text),
    ("0003_metadata_tags_collections_duplicates", _m0003_library),
    ("0004_caption_parts", _m0004_caption_parts),
    ("0005_not_duplicates", lambda conn: _script(conn, SCHEMA_0005)),
    ("0006_vector_log", lambda conn: _script(conn, SCHEMA_0006)),
]


def current_version(conn: sqlite3.Connection) -> int:
    """Return how many migrations this database has applied."""
    return conn.execute("PRAGMA user_version").fetchone()[0]


def migrate(conn: sqlite3.Connection, upto: int | None = None) -> int:
    """Apply every pending migration (or those up to version ``upto``), each in its own
    transaction; idempotent.

    :param upto: stop at this version (a repair rebuilds a damaged database at its own
        version first, then migrates the copy like any other).
    :returns: the schema version after migrating.
    :raises SchemaTooNew: the database was written by a newer program.
    """
    last = len(MIGRATIONS) if upto is None else min(upto, len(MIGRATIONS))
    if current_version(conn) == last:
        return last  # the common case takes no write lock
    while True:
        conn.execute("BEGIN IMMEDIATE")  # the version is read again under the write lock
        try:
            version = current_version(conn)
            if version > len(MIGRATIONS):
                raise SchemaTooNew(
                    f"this index has schema version {version}, newer than this program knows "
                    f"({len(MIGRATIONS)}): upgrade searchengine"
                )
            if version >= last:
                conn.execute("COMMIT")
                break
            MIGRATIONS[version][1](conn)
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return current_version(conn)
