"""SQLite, through sqlite-utils: the source of truth for everything indexed.

Every image (found, failed or not), its file facts and its embedding live here;
the FAISS index beside it is derived from this file and can always be rebuilt.

:class:`Store` holds the connection, the meta table (encoder binding, generation)
and one repository per concern, each in its own module:

* ``store.images`` (:mod:`.images`): rows, the batch writes of index runs, deletions, counts;
* ``store.text`` (:mod:`.text`): captions, OCR, stage records and keyword search;
* ``store.library`` (:mod:`.library`): metadata, user tags, collections;
* ``store.duplicates`` (:mod:`.duplicates`): perceptual hashes and near-duplicate groups;
* ``store.embeddings`` (:mod:`.embeddings`): the vectors.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

from searchengine.errors import IndexMismatch, SearchEngineError
from searchengine.records import EncoderId
from searchengine.store.duplicates import Duplicates
from searchengine.store.embeddings import Embeddings
from searchengine.store.images import Images
from searchengine.store.library import Library
from searchengine.store.schema import migrate
from searchengine.store.text import Texts

DB_NAME = "index.db"
BUSY_TIMEOUT_MS = 30_000
_ENCODER_KEYS = ("encoder_name", "encoder_tag", "encoder_dim")


class Store:
    """One index database. Writes happen in explicit transactions (``db.atomic()``)."""

    def __init__(self, index_dir: str | Path) -> None:
        """Open (creating and migrating if needed) the database in ``index_dir``.

        :raises SearchEngineError: the folder is a file, cannot be made, or holds no usable database.
        :raises SchemaTooNew: the database was written by a newer program.
        """
        self.dir = Path(index_dir)
        if self.dir.exists() and not self.dir.is_dir():
            raise SearchEngineError(f"--index must be a folder, but {self.dir} is a file")
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SearchEngineError(f"cannot create the index folder {self.dir}: {exc.strerror}") from None
        self.path = self.dir / DB_NAME
        self.db = sqlite_utils.Database(_connect(self.path))
        self.images = Images(self)
        self.text = Texts(self)
        self.library = Library(self)
        self.duplicates = Duplicates(self)
        self.embeddings = Embeddings(self)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Read in one transaction: every read inside sees the same state of the database,
        whatever other connections commit meanwhile (WAL). Inside a transaction already,
        it is that transaction."""
        conn = self.db.conn
        if conn.in_transaction:
            yield
            return
        conn.execute("BEGIN")
        try:
            yield
        finally:
            conn.execute("COMMIT")

    # -- meta ---------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str, wait: bool = True) -> bool:
        """Store one meta value; returns whether it was written.

        :param wait: False gives up at once (returning False) while another
            connection (an index run) holds the write lock, for caches only.
        """
        if wait:
            with self.db.atomic():
                self.db["meta"].upsert({"key": key, "value": value}, pk="key")
            return True
        conn = self.db.conn
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", [key, value])
            return True
        except sqlite3.OperationalError:
            return False
        finally:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")

    # -- the encoder binding ------------------------------------------------
    def encoder(self) -> EncoderId | None:
        """Return the encoder this index's vectors were made with, if any yet."""
        name, tag, dim = (self.get_meta(k) for k in _ENCODER_KEYS)
        if not name or not tag or not dim:
            return None
        return EncoderId(name, tag, int(dim))

    def bind_encoder(self, enc: EncoderId) -> None:
        """Record ``enc`` as this index's encoder, or refuse a different one.

        :raises IndexMismatch: the index already holds vectors of another encoder.
        """
        current = self.encoder()
        if current is None:
            with self.db.atomic():
                self.write_encoder(enc)
        elif current != enc:
            raise mismatch_error(self.dir, current, enc)

    def write_encoder(self, enc: EncoderId) -> None:
        """Record ``enc`` (inside the caller's transaction)."""
        for key, value in zip(_ENCODER_KEYS, (enc.name, enc.tag, str(enc.dim)), strict=True):
            self.db["meta"].upsert({"key": key, "value": value}, pk="key")

    def forget_encoder(self) -> None:
        """Drop the encoder binding (inside the caller's transaction)."""
        marks = ",".join("?" * len(_ENCODER_KEYS))
        self.db.execute(f"DELETE FROM meta WHERE key IN ({marks})", list(_ENCODER_KEYS))

    # -- the generation ------------------------------------------------------
    def generation(self) -> str:
        """Return a token that changes (to a fresh random value) with every change of vectors.

        Random rather than a counter, so that a recreated database or one rolled
        back by a crash can never pass for the state a saved FAISS file was built from.
        """
        return self.get_meta("generation") or "empty"

    def bump_generation(self) -> None:
        """Mark the vectors as changed (inside the caller's transaction)."""
        self.db.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES ('generation', ?)", [uuid.uuid4().hex]
        )


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
    )
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        migrate(conn)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise SearchEngineError(f"{path}: {database_problem(exc)}") from None
    return conn


def database_problem(exc: sqlite3.DatabaseError) -> str:
    """Say what a database error means for the user, and a next step that loses nothing."""
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc)):
        return f"the index is busy: another process is writing to it ({exc}); try again when it is done"
    return (
        f"the index database is unusable ({exc}): keep a copy of the index folder (it holds your tags, "
        "collections and metadata) and index into another --index meanwhile"
    )


def mismatch_error(index_dir: Path, have: EncoderId, want: EncoderId) -> IndexMismatch:
    """Build the error for a query or update with an encoder the index was not built with."""
    return IndexMismatch(
        f"the index at {index_dir} was built with encoder '{have.spec}' (dim {have.dim}), "
        f"not '{want.spec}' (dim {want.dim}). Search it without --model (or with "
        f"--model {have.spec}), or build a separate index with that encoder: "
        f"searchengine index FOLDER --index NEW_FOLDER --model {want.spec}"
    )
