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

import errno
import logging
import os
import shutil
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

    @contextmanager
    def writing(self) -> Iterator[None]:
        """One write transaction that takes SQLite's write lock up front (``BEGIN IMMEDIATE``,
        waiting its busy timeout for it); inside a transaction already, it is that transaction.

        A deferred transaction that reads before it writes fails at once with "database is
        locked" when another connection commits in between (WAL cannot upgrade a stale read),
        and searches do commit meanwhile (the cached relevance cutoff): taken up front, the
        lock makes a writer wait its turn instead of failing. A COMMIT that fails (a full
        disk) is rolled back, so the connection never stays inside a dead transaction.
        """
        conn = self.db.conn
        if conn.in_transaction:
            yield
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def ensure_sound(self) -> None:
        """Refuse to write into a damaged database (SQLite's quick check, about 20 ms for 3,000
        images): the damage would otherwise pass unnoticed, or grow.

        :raises SearchEngineError: it is damaged; the message points to ``searchengine doctor``.
        """
        problems = quick_check(self.db.conn)
        if problems:
            why = database_problem(sqlite3.DatabaseError(problems[0]), self.dir)
            raise SearchEngineError(f"nothing was indexed: {why}")

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
        if path.is_file() and _cannot_write(path.parent):
            return _connect_read_only(path)  # a read-only folder or a full disk can still be searched
        raise SearchEngineError(f"{path}: {database_problem(exc, path.parent)}") from None
    return conn


def _cannot_write(folder: Path) -> bool:
    """Whether ``folder`` is read-only for this process, or its disk is (nearly) full:
    too full for the 32 KB ``-shm`` file WAL needs."""
    try:
        return not os.access(folder, os.W_OK) or shutil.disk_usage(folder).free < 1 << 20
    except OSError:
        return False


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """Open the database of a folder this process cannot write (a read-only mount, no write
    permission, a full disk), for reading. WAL needs an ``-shm`` file: ``mode=ro`` uses one
    that is there; when none is and none can be made, the file is opened ``immutable`` (then
    a commit still in ``index.db-wal``, left by a writer that crashed, is not seen)."""
    for query in ("mode=ro", "immutable=1"):
        conn = sqlite3.connect(
            f"{path.absolute().as_uri()}?{query}", uri=True, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA foreign_keys=ON")
            migrate(conn)  # reads only when the schema is current
        except sqlite3.DatabaseError as exc:
            conn.close()
            problem = exc
            continue
        if query == "immutable=1":
            logging.getLogger(__name__).warning(
                "%s: no room or no permission for its -shm file: opened as a file that does not change "
                "(what other processes write meanwhile is not seen until this one restarts)",
                path,
            )
        return conn
    raise SearchEngineError(f"{path} (opened read-only): {database_problem(problem, path.parent)}")


def database_problem(exc: sqlite3.DatabaseError, index_dir: str | Path | None = None) -> str:
    """Say what a database error means for the user, and a next step that loses nothing."""
    if is_disk_full(exc):
        return disk_full_message(index_dir)
    if is_busy(exc):
        return f"the index is busy: another process is writing to it ({exc}); try again when it is done"
    if isinstance(exc, sqlite3.OperationalError) and "readonly" in str(exc):
        if index_dir is not None and _cannot_write(Path(index_dir)) and os.access(index_dir, os.W_OK):
            return disk_full_message(index_dir)  # opened read-only because its disk is full
        return (
            f"the index can only be read here ({exc}): its folder is read-only or not yours; "
            "searching works, changing it needs write access; nothing was changed"
        )
    where = f" --index {index_dir}" if index_dir else ""
    return (
        f"the index database is damaged ({exc}): keep a copy of the index folder, then run "
        f"'searchengine doctor{where}' to see what is wrong and 'searchengine doctor{where} --repair' "
        "to repair it, keeping your tags, collections, metadata, captions and OCR text"
    )


def is_busy(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite saying another connection holds the lock (not damage)."""
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc))


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk (or the user's quota) is full."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc).lower()
    return isinstance(exc, sqlite3.DatabaseError | OSError | RuntimeError) and (
        "database or disk is full" in text or "no space left on device" in text
    )


def disk_full_message(index_dir: str | Path | None = None) -> str:
    """The message for a full disk. Every write is one transaction (an index batch, a tag),
    so a write that failed for space was rolled back whole and what was committed before stays."""
    where = "the disk that holds the index folder"
    if index_dir is not None:
        folder = Path(index_dir).expanduser().absolute()
        where = f"{_mount_point(folder)} (it holds {folder})"
    return f"disk full: free some space on {where} and run again; nothing was lost"


def _mount_point(folder: Path) -> Path:
    """The mount point of the file system that holds ``folder`` (or its nearest existing parent)."""
    path = folder
    while not path.exists() and path != path.parent:
        path = path.parent
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


def quick_check(conn: sqlite3.Connection, limit: int = 10) -> list[str]:
    """SQLite's cheap structural check (``PRAGMA quick_check``, about 20 ms for 3,000 images):
    the problems it finds, none when the file is sound. A read; it never writes."""
    try:
        rows = conn.execute(f"PRAGMA quick_check({int(limit)})").fetchall()
    except sqlite3.OperationalError as exc:
        if is_disk_full(exc) or is_busy(exc):
            raise  # not damage: the caller's message says what it is
        return [str(exc)]
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    problems = [r[0] for r in rows]
    return [] if problems == ["ok"] else problems


def mismatch_error(index_dir: Path, have: EncoderId, want: EncoderId) -> IndexMismatch:
    """Build the error for a query or update with an encoder the index was not built with."""
    return IndexMismatch(
        f"the index at {index_dir} was built with encoder '{have.spec}' (dim {have.dim}), "
        f"not '{want.spec}' (dim {want.dim}). Search it without --model (or with "
        f"--model {have.spec}), or build a separate index with that encoder: "
        f"searchengine index FOLDER --index NEW_FOLDER --model {want.spec}"
    )
