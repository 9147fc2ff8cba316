"""Salvage a damaged index database: every readable row into a fresh database, then a swap.

SQLite stores each table as a b-tree of pages; a damaged page loses the rows on it, not
the table. The salvage reads every table in rowid order, steps over the rowid ranges it
cannot read, and writes what it read into a new database made by the project's own
migrations (at the damaged file's schema version, then migrated like any other). Image
rows lost with a damaged page are rebuilt, where the ``images`` indexes still name them
(path, root, content hash), so the tags, collections and metadata that point at them stay
attached; the next index run fills in the rest. The keyword index is derived again from
the tables. The damaged file is never changed: it is kept beside the new one as
``index.db.damaged-<time>`` (hard links, so no second copy of the bytes where links work),
never written over: a second repair in the same second keeps its own as ``...-<time>-2``.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from searchengine.store import vector_log
from searchengine.store.db import is_busy
from searchengine.store.fts import refresh_all
from searchengine.store.schema import current_version, migrate
from searchengine.store.sql import now

#: Rows read (and written) per step.
CHUNK = 2000
#: Tables not copied: the keyword index is derived again from the others.
DERIVED_PREFIX = "search_fts"
#: The largest rowid SQLite allows.
MAX_ROWID = 2**63 - 1
#: Why a rebuilt image row is marked failed: the next index run reads its file again.
REBUILT_REASON = "its row was rebuilt by 'searchengine doctor --repair': index its folder again"

#: Why a searchable image that lost its vector is marked failed until the next index run.
LOST_VECTOR_REASON = "its vector was lost to damage: the next 'searchengine index' run embeds it again"

#: How long the salvage waits for a writer's transaction to end before it gives up.
HOLD_WAIT_MS = 10_000

Progress = Callable[[str], None]


@dataclass
class Salvage:
    """What a salvage kept and lost, table by table, and where the damaged file went."""

    copied: dict[str, int] = field(default_factory=dict)
    unreadable: dict[str, int] = field(default_factory=dict)  # damaged rowid ranges skipped
    rejected: dict[str, int] = field(default_factory=dict)  # rows that broke a constraint
    orphans: dict[str, int] = field(default_factory=dict)  # rows whose image row was lost
    rebuilt_images: int = 0
    kept_as: Path | None = None
    held_writes: bool = False  # other writers were kept out (the write lock was held) throughout


def salvage(db_path: Path, progress: Progress = lambda _: None) -> Salvage:
    """Build a sound copy of the damaged database ``db_path`` and swap it in; keep the original.

    :raises sqlite3.DatabaseError: the file's table list itself is unreadable (nothing to go by).
    """
    stamp = _stamp()
    tmp = db_path.with_name(f"{db_path.name}.salvage-{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    result = Salvage()
    old = sqlite3.connect(db_path, isolation_level=None)
    try:
        result.held_writes = _hold_writes(old, progress)
        version = current_version(old)
        new = _fresh(tmp, version)
        try:
            _copy_all(old, new, result, progress)
            result.rebuilt_images = _rebuild_lost_images(old, new)
            _drop_orphans(new, result)
            _finish(new, progress)
        finally:
            new.close()
        result.kept_as = _swap(db_path, tmp, stamp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        old.close()  # ends the write lock; SQLite leaves a moved file's WAL alone on close
    return result


def _hold_writes(old: sqlite3.Connection, progress: Progress) -> bool:
    """Take the damaged database's write lock (``BEGIN IMMEDIATE``) for the whole salvage and
    swap: a ``serve``, ``import`` or ``tag`` that writes meanwhile waits or fails with "busy"
    instead of writing into a file about to be replaced. Returns whether it is held.

    :raises IndexBusy: another process keeps writing to it.
    """
    from searchengine.store.lock import IndexBusy

    old.execute(f"PRAGMA busy_timeout = {HOLD_WAIT_MS}")
    try:
        old.execute("BEGIN IMMEDIATE")
        return True
    except sqlite3.OperationalError as exc:
        if is_busy(exc):
            raise IndexBusy(
                "another process (searchengine serve, import or tag?) is writing to index.db: "
                "stop it, then repair again"
            ) from exc
        problem = exc
    except sqlite3.DatabaseError as exc:
        problem = exc
    progress(
        f"the damaged file's write lock could not be taken ({problem}): stop every other program using it"
    )
    return False


def _fresh(path: Path, version: int) -> sqlite3.Connection:
    """A new, empty database with this project's schema at ``version``."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=DELETE")  # one file to swap in; WAL is set when done
    migrate(conn, upto=version)
    conn.execute("PRAGMA foreign_keys=OFF")  # orphans are counted and dropped at the end
    return conn


def _tables(conn: sqlite3.Connection) -> list[str]:
    """The ordinary tables of the new database, in creation order, derived ones left out."""
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "AND name NOT LIKE ? AND sql NOT LIKE 'CREATE VIRTUAL%' ORDER BY rowid",
        [DERIVED_PREFIX + "%"],
    )
    return [r[0] for r in rows.fetchall()]


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA table_info({table})").fetchall()]


def _copy_all(old: sqlite3.Connection, new: sqlite3.Connection, result: Salvage, progress: Progress) -> None:
    for table in _tables(new):
        try:
            have = set(_columns(old, table))
        except sqlite3.DatabaseError:
            have = set()
        cols = [c for c in _columns(new, table) if c in have]
        if not cols:
            progress(f"{table}: not readable at all")
            result.unreadable[table] = 1
            continue
        copied, unreadable, rejected = _copy_table(old, new, table, cols, progress)
        result.copied[table], result.unreadable[table], result.rejected[table] = copied, unreadable, rejected
        lost = f", {unreadable} damaged stretch(es) skipped" if unreadable else ""
        progress(f"{table}: {copied} rows copied{lost}")


def _copy_table(
    old: sqlite3.Connection, new: sqlite3.Connection, table: str, cols: list[str], progress: Progress
):
    """Copy ``table`` row by rowid range, stepping over what cannot be read (saying how far it
    got every 100,000 rows).

    :returns: (rows copied, damaged stretches skipped, rows rejected by a constraint).
    """
    names = ", ".join(cols)
    select = f"SELECT rowid, {names} FROM {table} WHERE rowid >= ? ORDER BY rowid LIMIT {CHUNK}"
    insert = f"INSERT INTO {table}(rowid, {names}) VALUES ({', '.join('?' * (len(cols) + 1))})"
    start, copied, unreadable, rejected = -MAX_ROWID, 0, 0, 0
    while True:
        rows, failed = _read_chunk(old, select, start)
        ok, bad = _write_rows(new, insert, rows)
        if (copied + ok) // 100_000 > copied // 100_000:
            progress(f"{table}: {copied + ok} rows so far")
        copied, rejected = copied + ok, rejected + bad
        if rows:
            start = rows[-1][0] + 1
        if failed:
            unreadable += 1
            start = _next_readable(old, select, start)
            if start is None:
                break
        elif len(rows) < CHUNK:
            break
    return copied, unreadable, rejected


def _read_chunk(conn: sqlite3.Connection, select: str, start: int) -> tuple[list[tuple], bool]:
    """The rows from ``start`` on that could be read, and whether a damaged page stopped it."""
    rows: list[tuple] = []
    try:
        for row in conn.execute(select, [start]):
            rows.append(row)
    except sqlite3.DatabaseError:
        return rows, True
    return rows, False


def _readable(conn: sqlite3.Connection, select: str, start: int) -> bool:
    try:
        conn.execute(select.replace(f"LIMIT {CHUNK}", "LIMIT 1"), [start]).fetchall()
        return True
    except sqlite3.DatabaseError:
        return False


def _next_readable(conn: sqlite3.Connection, select: str, start: int) -> int | None:
    """The smallest rowid above ``start`` from which reading works again, or None.

    Steps of growing size find a readable point past the damage, then halving finds
    the first one, so rows on the sound pages right after the damage are kept.
    """
    step = 1
    while not _readable(conn, select, start + step):
        if start + step >= MAX_ROWID:
            return None
        step = min(step * 2, MAX_ROWID - start)
    low, high = start + step // 2, start + step  # low: unreadable (or start), high: readable
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if _readable(conn, select, mid) else (mid, high)
    return high


def _write_rows(conn: sqlite3.Connection, insert: str, rows: list[tuple]) -> tuple[int, int]:
    """Insert ``rows`` in one transaction; a row that breaks a constraint is left out."""
    if not rows:
        return 0, 0
    conn.execute("BEGIN")
    try:
        conn.executemany(insert, rows)
        conn.execute("COMMIT")
        return len(rows), 0
    except sqlite3.DatabaseError:
        conn.execute("ROLLBACK")
    ok = 0
    conn.execute("BEGIN")
    for row in rows:
        try:
            conn.execute(insert, row)
            ok += 1
        except sqlite3.DatabaseError:
            pass
    conn.execute("COMMIT")
    return ok, len(rows) - ok


def _index_entries(old: sqlite3.Connection, column: str, index: str) -> dict[int, str]:
    """id -> ``column`` for every entry of the ``images`` index ``index`` that can be read,
    from both ends (a damaged page in the middle hides only the entries on it)."""
    found: dict[int, str] = {}
    for order in ("ASC", "DESC"):
        try:
            sql = f"SELECT id, {column} FROM images INDEXED BY {index} ORDER BY {column} {order}"
            for image_id, value in old.execute(sql):
                found[image_id] = value
        except sqlite3.DatabaseError:
            continue
    return found


def _rebuild_lost_images(old: sqlite3.Connection, new: sqlite3.Connection) -> int:
    """Recreate the image rows lost with a damaged page from what the indexes on ``images``
    still say (path, root, content hash), when user data or stage outputs point at them."""
    try:
        paths = _index_entries(old, "path", "sqlite_autoindex_images_1")
        roots = _index_entries(old, "root", "images_root")
        hashes = _index_entries(old, "sha256", "images_sha256")
    except sqlite3.DatabaseError:
        return 0
    have = {r[0] for r in new.execute("SELECT id FROM images")}
    lost = [i for i in paths if i not in have and i in roots]
    new.execute("BEGIN")
    for image_id in lost:
        new.execute(
            "INSERT OR IGNORE INTO images(id, path, root, sha256, size, mtime_ns, status, error, indexed_at) "
            "VALUES (?, ?, ?, ?, -1, -1, 'failed', ?, ?)",
            [image_id, paths[image_id], roots[image_id], hashes.get(image_id), REBUILT_REASON, now()],
        )
        new.execute("DELETE FROM embeddings WHERE image_id = ?", [image_id])
    new.execute("COMMIT")
    return len(lost)


def mark_for_embedding(conn: sqlite3.Connection) -> int:
    """Mark the searchable images that have no vector (inside the caller's transaction) so
    that the next index run embeds them again: failed, with the reason, and an mtime no file
    has. Their rows, and so their tags, collections and metadata, stay. Returns how many."""
    return conn.execute(
        "UPDATE images SET status = 'failed', error = ?, mtime_ns = -1 WHERE status = 'ok' "
        "AND id NOT IN (SELECT image_id FROM embeddings)",
        [LOST_VECTOR_REASON],
    ).rowcount


def _drop_orphans(new: sqlite3.Connection, result: Salvage) -> None:
    """Drop the rows that point at an image (or collection) lost with a damaged page; they
    stay in the kept damaged file."""
    new.execute("BEGIN")
    for table in _tables(new):
        for fk in new.execute(f"PRAGMA foreign_key_list({table})").fetchall():
            parent, child_col, parent_col = fk[2], fk[3], fk[4] or "rowid"
            gone = new.execute(
                f"DELETE FROM {table} WHERE {child_col} IS NOT NULL AND {child_col} NOT IN "
                f"(SELECT {parent_col} FROM {parent})"
            ).rowcount
            if gone:
                result.orphans[table] = result.orphans.get(table, 0) + gone
    new.execute("COMMIT")


def derive_documents(conn: sqlite3.Connection, progress: Progress) -> int:
    """Derive every image's keyword document again from the tables (inside the caller's
    transaction, on an emptied keyword index); returns how many were written."""
    return refresh_all(conn, lambda n, total: progress(f"keyword index: {n} of {total} documents"))


def _finish(new: sqlite3.Connection, progress: Progress) -> None:
    """Bring the copy to this program's schema, make the next index run embed every searchable
    image that lost its vector, derive the keyword index again and check the result."""
    migrate(new)
    new.execute("BEGIN")
    mark_for_embedding(new)
    new.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('generation', ?)", [uuid.uuid4().hex])
    vector_log.restart(new)  # no saved FAISS index may catch up from the salvaged log
    new.execute("DELETE FROM search_fts")
    count = derive_documents(new, progress)
    new.execute("COMMIT")
    progress(f"keyword index: {count} documents")
    problems = [r[0] for r in new.execute("PRAGMA integrity_check").fetchall()]
    if problems != ["ok"]:
        raise sqlite3.DatabaseError(f"the salvaged copy does not check out: {problems[0]}")
    new.execute("PRAGMA journal_mode=WAL")


def _stamp() -> str:
    """The time in a kept damaged file's name."""
    return time.strftime("%Y%m%d-%H%M%S")


def _swap(db_path: Path, tmp: Path, stamp: str) -> Path:
    """Put ``tmp`` in place of ``db_path``; the original (with its WAL, unless empty) stays as
    ``<name>.damaged-<stamp>`` (``-2``, ``-3``... when a file of that name is already kept:
    a kept file is never written over), a name SQLite opens with that WAL."""
    made = _keep_original(db_path, stamp)
    try:
        _fsync(tmp)
    except BaseException:
        _remove(made)  # nothing swapped: the original is still in place, the second name not needed
        raise
    for suffix in ("-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    os.replace(tmp, db_path)
    _fsync(db_path.parent)
    return made[0]


def _keep_original(db_path: Path, stamp: str) -> list[Path]:
    """Give the original and its WAL (unless empty) a second name under the first free
    ``<name>.damaged-<stamp>[-n]``; returns the names made. A name taken meanwhile (another
    repair in the same second) moves on to the next; what this call made is removed again
    when it fails."""
    sources = [Path(f"{db_path}{suffix}") for suffix in ("", "-wal")]
    sources = [s for s in sources if s.exists() and (s == db_path or s.stat().st_size > 0)]
    for n in range(1, 10_000):
        kept = db_path.with_name(f"{db_path.name}.damaged-{stamp}" + (f"-{n}" if n > 1 else ""))
        made: list[Path] = []
        try:
            for src in sources:
                dest = Path(f"{kept}{str(src)[len(str(db_path)) :]}")
                _keep(src, dest)
                made.append(dest)
            return made
        except FileExistsError:
            _remove(made)
        except BaseException:
            _remove(made)
            raise
    raise FileExistsError(f"no free name for the damaged file beside {db_path}")


def _keep(src: Path, dest: Path) -> None:
    """A second name for ``src`` (a hard link, else a copy); never writes over ``dest``.

    :raises FileExistsError: ``dest`` exists already.
    """
    try:
        os.link(src, dest)
        return
    except FileExistsError:
        raise
    except OSError:
        pass  # no hard links here (another file system, FAT...): copy
    with open(src, "rb") as fin, open(dest, "xb") as fout:
        try:
            shutil.copyfileobj(fin, fout)
            fout.flush()
            os.fsync(fout.fileno())
        except BaseException:
            dest.unlink(missing_ok=True)
            raise
    shutil.copystat(src, dest)


def _remove(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
