"""The only DDL of the project: numbered migrations, applied in order.

``PRAGMA user_version`` holds the number of migrations applied. Each migration
runs in one transaction, so a database is never left half-migrated. A database
from a newer version of the program is refused rather than guessed at.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from searchengine.errors import SchemaTooNew

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

Migration = Callable[[sqlite3.Connection], None]


def _m0001_initial(conn: sqlite3.Connection) -> None:
    for statement in SCHEMA_0001.split(";"):
        if statement.strip():
            conn.execute(statement)


MIGRATIONS: list[tuple[str, Migration]] = [
    ("0001_initial", _m0001_initial),
]


def current_version(conn: sqlite3.Connection) -> int:
    """Return how many migrations this database has applied."""
    return conn.execute("PRAGMA user_version").fetchone()[0]


def migrate(conn: sqlite3.Connection) -> int:
    """Apply every pending migration, each in its own transaction; idempotent.

    :returns: the schema version after migrating.
    :raises SchemaTooNew: the database was written by a newer program.
    """
    version = current_version(conn)
    if version > len(MIGRATIONS):
        raise SchemaTooNew(
            f"this index has schema version {version}, newer than this program knows "
            f"({len(MIGRATIONS)}): upgrade searchengine"
        )
    for number, (_name, step) in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            step(conn)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return current_version(conn)
