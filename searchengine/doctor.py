"""``searchengine doctor``: check an index folder, say what is wrong in plain words, repair it.

The checks: SQLite's own (``PRAGMA integrity_check``, ``foreign_key_check``), the keyword
index's (FTS5 ``integrity-check``), searchable images without a vector, the saved FAISS
file against the database, and temporaries of writers that died. The repairs keep what
the user made or paid for (tags, collections, metadata, captions, OCR text): a damaged
database is salvaged row by row into a fresh one (:mod:`searchengine.store.repair`, the
damaged file is kept beside it), the keyword index and FAISS are derived again from the
tables, and images that lost their vector are marked for the next index run. Nothing is
deleted that is not derived or a dead writer's temporary.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from searchengine.errors import IndexNotBuilt, SearchEngineError
from searchengine.store import vector_file, vector_log
from searchengine.store.db import DB_NAME, is_busy
from searchengine.store.schema import MIGRATIONS, current_version

Progress = Callable[[str], None]

#: What the user made or paid for, counted before and after a repair.
USER_DATA = {
    "tags": "user_tags",
    "collections": "collections",
    "collection items": "collection_items",
    "metadata values": "metadata",
    "captions": "captions",
    "OCR results": "ocr",
    "images": "images",
}
_TREE = re.compile(r"Tree (\d+) page")
_INDEX = re.compile(r"index (\w+)")


@dataclass
class Finding:
    """One problem: where (``area``), what is wrong, and what ``--repair`` does about it."""

    area: str  # database | keyword index | vectors | files
    problem: str
    repair: str


@dataclass
class Checkup:
    """What :func:`examine` found in one index folder."""

    index: str
    findings: list[Finding] = field(default_factory=list)
    counts: dict[str, int | None] = field(default_factory=dict)
    damaged_tables: list[str] = field(default_factory=list)
    stray: list[str] = field(default_factory=list)
    unreadable: bool = False  # not even the table list can be read: nothing to salvage from
    notes: list[str] = field(default_factory=list)  # what could not be checked, and why

    @property
    def healthy(self) -> bool:
        return not self.findings

    def areas(self) -> set[str]:
        return {f.area for f in self.findings}

    def as_dict(self) -> dict:
        return {**asdict(self), "healthy": self.healthy}


def examine(index_dir: str | Path) -> Checkup:
    """Check the index in ``index_dir``; reads only (a read may finish SQLite's own crash
    recovery, as any reader does).

    :raises IndexNotBuilt: there is no index database there.
    """
    index_dir = Path(index_dir).expanduser()
    db_path = index_dir / DB_NAME
    if not db_path.is_file():
        raise IndexNotBuilt(f"no index at {index_dir}: nothing to check")
    report = Checkup(str(index_dir))
    conn = _open(db_path, report)
    try:
        _check_database(conn, report)
        if "database" not in report.areas():
            _check_keywords(conn, report)
            _check_vectors(conn, index_dir, report)
        report.counts = count_user_data(conn)
    finally:
        conn.close()
    _check_files(index_dir, report)
    return report


def _open(db_path: Path, report: Checkup) -> sqlite3.Connection:
    """Open the database for the checks: for writing where it can be (the keyword index's own
    check needs the write lock), else read-only (``mode=ro``), else, in a folder where no
    ``-shm`` file can be made, as a file that does not change (``immutable``), as the store does.
    A file that cannot be opened in any way is returned as first opened: the checks say why."""
    first = None
    for query in ("mode=rw", "mode=ro", "immutable=1"):
        conn = sqlite3.connect(f"{db_path.absolute().as_uri()}?{query}", uri=True, isolation_level=None)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError as exc:
            if "unable to open" not in str(exc) and "readonly" not in str(exc):
                return conn  # damage, not a way of opening: the checks report it
            if first is None:
                first = conn
            else:
                conn.close()
            continue
        except sqlite3.DatabaseError:
            return conn
        if first is not None:
            first.close()
        if query != "mode=rw":
            report.notes.append(
                f"index.db cannot be written here (a read-only folder or disk): checked read-only "
                f"({query}); --repair needs write access"
            )
        return conn
    return first


def count_user_data(conn: sqlite3.Connection) -> dict[str, int | None]:
    """How many rows of each kind of user data can be read (None: that table is unreadable)."""
    counts: dict[str, int | None] = {}
    for name, table in USER_DATA.items():
        try:
            counts[name] = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        except sqlite3.DatabaseError:
            counts[name] = None
    return counts


def _check_database(conn: sqlite3.Connection, report: Checkup) -> None:
    try:
        version = current_version(conn)
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    except sqlite3.DatabaseError as exc:
        report.unreadable = True
        report.findings.append(
            Finding("database", f"index.db cannot be read at all ({exc})", _UNREADABLE_REPAIR)
        )
        return
    if version > len(MIGRATIONS):
        raise SearchEngineError(f"this index has schema version {version}: upgrade searchengine first")
    problems = _integrity_problems(conn, "")
    if problems:
        report.damaged_tables = _damaged_tables(conn, problems, tables)
        derived_only = report.damaged_tables and all(
            t.startswith(("search_fts", "sqlite_autoindex", "images_", "metadata_key", "collection_items_"))
            for t in report.damaged_tables
        )
        report.findings.append(
            Finding(
                "database",
                f"index.db is damaged in {', '.join(report.damaged_tables) or 'its pages'} "
                f"({len(problems)} problem(s), first: {problems[0]})"
                + ("; only derived data (the keyword index, lookup indexes) is hit" if derived_only else ""),
                "salvage every readable row into a fresh index.db (the damaged file is kept "
                "as index.db.damaged-<time>), then derive the keyword index and FAISS again",
            )
        )
        return
    orphans = conn.execute("PRAGMA foreign_key_check").fetchall()
    if orphans:
        names = sorted({r[0] for r in orphans})
        report.findings.append(
            Finding(
                "database",
                f"{len(orphans)} row(s) in {', '.join(names)} point at images or collections "
                "that no longer exist",
                "copy the database without them (the original is kept as index.db.damaged-<time>)",
            )
        )


def _integrity_problems(conn: sqlite3.Connection, table: str) -> list[str]:
    """What ``PRAGMA integrity_check`` says of the database (or of one ``table``); none if sound.
    SQLite raises instead of reporting for some damage (in an FTS5 table): that is a problem too."""
    arg = f"('{table}')" if table else "(200)"
    try:
        problems = [r[0] for r in conn.execute(f"PRAGMA integrity_check{arg}").fetchall()]
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    return [] if problems == ["ok"] else problems


_UNREADABLE_REPAIR = (
    "nothing can be salvaged automatically; keep the index folder as it is and try "
    "'sqlite3 index.db .recover' on a copy of it"
)


def _damaged_tables(conn: sqlite3.Connection, problems: list[str], tables: list[str]) -> list[str]:
    """The tables and indexes that ``integrity_check`` problems name (by root page or name);
    when they name none, each table is checked on its own."""
    roots = dict(conn.execute("SELECT rootpage, name FROM sqlite_master").fetchall())
    names = set()
    for p in problems:
        tree, index = _TREE.search(p), _INDEX.search(p)
        if tree and int(tree.group(1)) in roots:
            names.add(roots[int(tree.group(1))])
        elif index:
            names.add(index.group(1))
    if not names:
        names = {t for t in tables if _integrity_problems(conn, t)}
    return sorted(names)


def _check_keywords(conn: sqlite3.Connection, report: Checkup) -> None:
    """The FTS5 index against its own content, and one document per image."""
    problem = None
    try:
        conn.execute("PRAGMA busy_timeout = 0")
        conn.execute("BEGIN")
        try:  # an INSERT in form: it needs the write lock, but writes nothing
            conn.execute("INSERT INTO search_fts(search_fts) VALUES ('integrity-check')")
        except sqlite3.OperationalError as exc:
            if "readonly" in str(exc):
                report.notes.append(
                    "index.db is read-only here: the keyword index's own check (which needs the write "
                    "lock) was not done"
                )
            elif is_busy(exc):
                report.notes.append(
                    "another process (an index run?) is writing to the index: the keyword index's own "
                    "check was skipped, and vectors.faiss may be out of step until it ends"
                )
            else:
                raise
        finally:
            conn.execute("ROLLBACK")
        missing = conn.execute(
            "SELECT (SELECT count(*) FROM images WHERE id NOT IN (SELECT rowid FROM search_fts)) + "
            "(SELECT count(*) FROM search_fts WHERE rowid NOT IN (SELECT id FROM images))"
        ).fetchone()[0]
        if missing:
            problem = f"{missing} image(s) have no keyword document, or a document has no image"
    except sqlite3.DatabaseError as exc:
        problem = f"the keyword index is damaged ({exc})"
    if problem:
        report.findings.append(
            Finding("keyword index", problem, "derive every keyword document again from the tables")
        )


def _check_vectors(conn: sqlite3.Connection, index_dir: Path, report: Checkup) -> None:
    """Searchable images without a vector, and the saved FAISS file against the database."""
    lacking = conn.execute(
        "SELECT count(*) FROM images WHERE status = 'ok' AND id NOT IN (SELECT image_id FROM embeddings)"
    ).fetchone()[0]
    if lacking:
        report.findings.append(
            Finding(
                "vectors",
                f"{lacking} searchable image(s) have no vector",
                "mark them so that the next 'searchengine index' run of their folder embeds them "
                "again (their tags, collections and metadata stay)",
            )
        )
    problem = _faiss_problem(conn, index_dir)
    if problem:
        report.findings.append(
            Finding("vectors", problem, "build vectors.faiss again from the vectors in index.db")
        )


def _log_continues(conn: sqlite3.Connection, state: dict) -> bool:
    """Whether the saved index can catch up with index.db from its vector log (the changes
    after it are searched beside it): then it is in step, however old its generation."""
    try:
        return vector_log.state_continues(conn, state)
    except sqlite3.OperationalError:  # a database from before the log
        return False


def _faiss_problem(conn: sqlite3.Connection, index_dir: Path) -> str | None:
    """Why the saved FAISS file would not be used as it is, or None when it is in step."""
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    count = conn.execute("SELECT count(*) FROM embeddings").fetchone()[0]
    if not meta.get("encoder_dim"):
        return None  # nothing indexed yet: no FAISS file expected
    try:
        state = vector_file.read_state(index_dir)
        if state is None:
            return "vectors.faiss is missing (the next search builds it, slowly)"
        caught_up = _log_continues(conn, state)
        in_step = state.get("generation") == meta.get("generation", "empty") and state.get("count") == count
        if not (caught_up or in_step):
            return "vectors.faiss is out of step with index.db (the next search builds it again, slowly)"
        if "sha256" not in state:
            return "vectors.faiss has no checksum (an older version saved it); the next search rebuilds it"
        index = vector_file.load(index_dir, state)
    except FileNotFoundError:
        return "vectors.faiss is missing (the next search builds it, slowly)"
    except vector_file.Replacing:
        return None  # a save is under way: not a fault
    except vector_file.Damaged as exc:
        return f"vectors.faiss is damaged ({exc})"
    except (OSError, RuntimeError, ValueError) as exc:
        return f"vectors.faiss cannot be read ({exc})"
    if index.d != int(meta["encoder_dim"]) or (not caught_up and index.ntotal != count):
        return f"vectors.faiss holds {index.ntotal} vectors of dim {index.d}, index.db {count}"
    return None


def _check_files(index_dir: Path, report: Checkup) -> None:
    """Temporaries that dead writers left: FAISS saves and interrupted repairs."""
    stray = [*vector_file.stray_temps(index_dir), *index_dir.glob(f"{DB_NAME}.salvage-*.tmp*")]
    report.stray = sorted(p.name for p in stray)
    if stray:
        size = sum(p.stat().st_size for p in stray if p.exists())
        report.findings.append(
            Finding(
                "files",
                f"{len(stray)} temporary file(s) left by interrupted writes ({size / 1e6:.1f} MB): "
                + ", ".join(report.stray[:3])
                + (" ..." if len(stray) > 3 else ""),
                "remove them",
            )
        )


def repair(index_dir: str | Path, report: Checkup, progress: Progress = lambda _: None) -> list[str]:
    """Repair what ``report`` found; returns what was done, in plain words.

    Holds the index's writer lock, so no index run changes the index meanwhile, and checks
    the index again once it holds it: ``report`` may be out of date (another ``doctor
    --repair`` may have repaired it meanwhile), and a sound database must not be salvaged.
    A salvage also holds the database's write lock, so ``serve``, ``import`` or ``tag`` wait
    or get "busy" until the fresh file is in place (a running ``serve`` must be restarted after).

    :raises IndexBusy: an index run, or another writer that does not let go, is updating it.
    """
    from searchengine.store.lock import IndexLock

    index_dir = Path(index_dir).expanduser()
    done: list[str] = []
    if report.unreadable:
        return ["nothing was changed: " + _UNREADABLE_REPAIR]
    with IndexLock(index_dir):
        report = examine(index_dir)
        if report.unreadable:
            return ["nothing was changed: " + _UNREADABLE_REPAIR]
        if report.healthy:
            return ["nothing was changed: the index checks out now (repaired meanwhile by another run?)"]
        if "database" in report.areas():
            done += _salvage(index_dir, progress)
        elif "keyword index" in report.areas():
            n = rederive_keywords(index_dir / DB_NAME, progress)
            done.append(f"derived {n} keyword documents again")
        if "database" in report.areas() or "vectors" in report.areas():
            done += _renew_vectors(index_dir, progress)
        for name in report.stray:
            (index_dir / name).unlink(missing_ok=True)
        if report.stray:
            done.append(f"removed {len(report.stray)} temporary file(s)")
    return done


def _salvage(index_dir: Path, progress: Progress) -> list[str]:
    from searchengine.store.repair import salvage

    result = salvage(index_dir / DB_NAME, progress)
    done = [
        f"salvaged {sum(result.copied.values())} rows into a fresh index.db; the damaged file is "
        f"kept as {result.kept_as.name}"
    ]
    done.append(
        (
            "other writers were kept out meanwhile"
            if result.held_writes
            else "the damaged file could not be locked against other writers (see above)"
        )
        + "; restart any 'searchengine serve' of this index: it still has the old file open"
    )
    if result.rebuilt_images:
        done.append(
            f"{result.rebuilt_images} image row(s) were rebuilt from the database's indexes: "
            "the next 'searchengine index' run of their folder reads them again, with their user data"
        )
    done += _unreadable_rows(result)
    lost = {t: n for t, n in result.orphans.items() if n} | {t: n for t, n in result.rejected.items() if n}
    if lost:
        done.append(
            "not recoverable (still in the kept damaged file): "
            + ", ".join(f"{n} row(s) of {t}" for t, n in sorted(lost.items()))
        )
    return done


def _unreadable_rows(result) -> list[str]:
    """One line per table that lost rows to damaged pages: the user's only way to know what
    is missing (the progress lines that say it are off with ``--json``)."""
    lines = []
    for table, stretches in sorted(result.unreadable.items()):
        if not stretches:
            continue
        if not result.copied.get(table):
            lines.append(f"no row of {table} could be read; its rows remain in {result.kept_as.name}")
        else:
            lines.append(
                f"some rows of {table} could not be read ({stretches} damaged stretch(es)); "
                f"they remain in {result.kept_as.name}"
            )
    return lines


def rederive_keywords(db_path: Path, progress: Progress = lambda _: None) -> int:
    """Empty the keyword index and derive every document again from the tables, in one
    transaction; returns how many documents were written."""
    from searchengine.store.repair import derive_documents

    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            _empty_keywords(conn)
            count = derive_documents(conn, progress)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        conn.close()
    return count


def _empty_keywords(conn: sqlite3.Connection) -> None:
    """Empty the keyword index (a normal FTS5 table: 'delete-all' is only for contentless
    ones), in the caller's transaction. A DELETE removes only the words the stored text
    names, so an index out of step with its text keeps stray words: 'rebuild' then makes
    the (now empty) index again from the (empty) text. When its own data is too damaged
    for that, drop it and make it again as the database's schema defines it."""
    conn.execute("SAVEPOINT empty_keywords")
    try:
        conn.execute("DELETE FROM search_fts")
        conn.execute("INSERT INTO search_fts(search_fts) VALUES ('rebuild')")
    except sqlite3.DatabaseError:
        conn.execute("ROLLBACK TO empty_keywords")
        sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'search_fts'").fetchone()[0]
        conn.execute("DROP TABLE search_fts")
        conn.execute(sql)
    conn.execute("RELEASE empty_keywords")


def _renew_vectors(index_dir: Path, progress: Progress) -> list[str]:
    """Mark searchable images without a vector for the next index run, then build FAISS again."""
    from searchengine.store.db import Store, disk_full_message, is_disk_full
    from searchengine.store.repair import mark_for_embedding
    from searchengine.store.vector_file import save_problem
    from searchengine.store.vectors import VectorIndex

    store = Store(index_dir)
    try:
        with store.db.atomic():
            marked = mark_for_embedding(store.db.conn)
            store.bump_generation()
        done = [f"marked {marked} image(s) without a vector for the next index run"] if marked else []
        enc = store.encoder()
        if enc is not None:
            progress("vectors.faiss: building again from index.db")
            try:
                vi = VectorIndex.rebuild(store, enc.dim, strict=True)
            except OSError as exc:
                why = disk_full_message(index_dir) if is_disk_full(exc) else save_problem(exc)
                done.append(f"vectors.faiss could NOT be saved ({why}); the next search builds it again")
            else:
                done.append(f"built vectors.faiss again ({vi.ntotal} vectors)")
        return done
    finally:
        store.close()
