"""SQLite, through sqlite-utils: the source of truth for everything indexed.

Every image (found, failed or not), its file facts and its embedding live here;
the FAISS index beside it is derived from this file and can always be rebuilt.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import sqlite_utils

from searchengine.errors import IndexMismatch
from searchengine.records import EncoderId, ImageRecord
from searchengine.store.schema import migrate

DB_NAME = "index.db"

_IMAGE_COLUMNS = "id, path, root, sha256, size, mtime_ns, width, height, format, status, error"


def _record(row: Sequence) -> ImageRecord:
    return ImageRecord(*row)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Store:
    """One index database. Writes happen in explicit transactions (``atomic``)."""

    def __init__(self, index_dir: str | Path) -> None:
        """Open (creating and migrating if needed) the database in ``index_dir``."""
        self.dir = Path(index_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / DB_NAME
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30.0
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        migrate(conn)
        self.db = sqlite_utils.Database(conn)

    def close(self) -> None:
        self.db.close()

    # -- meta ---------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.db.atomic():
            self.db["meta"].upsert({"key": key, "value": value}, pk="key")

    def encoder(self) -> EncoderId | None:
        """Return the encoder this index's vectors were made with, if any yet."""
        name, tag, dim = (self.get_meta(k) for k in ("encoder_name", "encoder_tag", "encoder_dim"))
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
                for key, value in (
                    ("encoder_name", enc.name),
                    ("encoder_tag", enc.tag),
                    ("encoder_dim", str(enc.dim)),
                ):
                    self.db["meta"].upsert({"key": key, "value": value}, pk="key")
        elif current != enc:
            raise mismatch_error(self.dir, current, enc)

    def generation(self) -> int:
        """Return a counter bumped by every change to the set of vectors."""
        return int(self.get_meta("generation") or 0)

    def _bump_generation(self) -> None:
        self.db.execute(
            "INSERT INTO meta(key, value) VALUES ('generation', '1') "
            "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1"
        )

    # -- images -------------------------------------------------------------
    def rows_under(self, root: str) -> dict[str, ImageRecord]:
        """Return the rows indexed under the folder ``root`` (absolute), by path."""
        prefix = root.rstrip("/") + "/"
        rows = self.db.execute(
            f"SELECT {_IMAGE_COLUMNS} FROM images WHERE root = ? OR substr(path, 1, ?) = ?",
            [root, len(prefix), prefix],
        ).fetchall()
        return {r[1]: _record(r) for r in rows}

    def vector_for_hash(self, sha256: str) -> bytes | None:
        """Return a stored embedding of a file with this content, if any (moves, copies)."""
        row = self.db.execute(
            "SELECT e.vector FROM images i JOIN embeddings e ON e.image_id = i.id "
            "WHERE i.sha256 = ? LIMIT 1",
            [sha256],
        ).fetchone()
        return row[0] if row else None

    def write_batch(self, rows: Iterable[dict], vectors: dict[str, bytes]) -> None:
        """Upsert image rows and their embeddings in one transaction.

        :param rows: dicts with the ``images`` columns (``path`` is the key).
        :param vectors: path -> float32 bytes, for the rows with status ``ok``.
        """
        now = _now()
        with self.db.atomic():
            changed = False
            for row in rows:
                row = {**row, "indexed_at": now}
                self.db.execute(
                    "INSERT INTO images(path, root, sha256, size, mtime_ns, width, height, format,"
                    " status, error, indexed_at) VALUES (:path, :root, :sha256, :size, :mtime_ns,"
                    " :width, :height, :format, :status, :error, :indexed_at)"
                    " ON CONFLICT(path) DO UPDATE SET root=excluded.root, sha256=excluded.sha256,"
                    " size=excluded.size, mtime_ns=excluded.mtime_ns, width=excluded.width,"
                    " height=excluded.height, format=excluded.format, status=excluded.status,"
                    " error=excluded.error, indexed_at=excluded.indexed_at",
                    {
                        k: row.get(k)
                        for k in (
                            "path",
                            "root",
                            "sha256",
                            "size",
                            "mtime_ns",
                            "width",
                            "height",
                            "format",
                            "status",
                            "error",
                            "indexed_at",
                        )
                    },
                )
                image_id = self.db.execute(
                    "SELECT id FROM images WHERE path = ?", [row["path"]]
                ).fetchone()[0]
                vec = vectors.get(row["path"])
                if vec is not None:
                    self.db.execute(
                        "INSERT OR REPLACE INTO embeddings(image_id, vector) VALUES (?, ?)",
                        [image_id, vec],
                    )
                    changed = True
                elif self.db.execute(
                    "DELETE FROM embeddings WHERE image_id = ?", [image_id]
                ).rowcount:
                    changed = True
            if changed:
                self._bump_generation()

    def touch(self, path: str, size: int, mtime_ns: int) -> None:
        """Record a new mtime/size for a file whose content did not change."""
        with self.db.atomic():
            self.db.execute(
                "UPDATE images SET size = ?, mtime_ns = ? WHERE path = ?", [size, mtime_ns, path]
            )

    def delete_paths(self, paths: Sequence[str]) -> int:
        """Delete rows (and their embeddings) for ``paths``; returns how many went."""
        if not paths:
            return 0
        gone = 0
        with self.db.atomic():
            for chunk_start in range(0, len(paths), 500):
                chunk = list(paths[chunk_start : chunk_start + 500])
                marks = ",".join("?" * len(chunk))
                gone += self.db.execute(
                    f"DELETE FROM images WHERE path IN ({marks})", chunk
                ).rowcount
            if gone:
                self._bump_generation()
        return gone

    def clear(self) -> None:
        """Forget every image, vector and the encoder binding (for ``--rebuild``)."""
        with self.db.atomic():
            self.db.execute("DELETE FROM embeddings")
            self.db.execute("DELETE FROM images")
            self.db.execute(
                "DELETE FROM meta WHERE key IN ('encoder_name', 'encoder_tag', 'encoder_dim')"
            )
            self._bump_generation()

    def images_by_id(self, ids: Iterable[int]) -> dict[int, ImageRecord]:
        ids = [int(i) for i in ids]
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.db.execute(f"SELECT {_IMAGE_COLUMNS} FROM images WHERE id IN ({marks})", ids)
        return {r[0]: _record(r) for r in rows.fetchall()}

    def image_by_path(self, path: str) -> ImageRecord | None:
        row = self.db.execute(f"SELECT {_IMAGE_COLUMNS} FROM images WHERE path = ?", [path])
        found = row.fetchone()
        return _record(found) if found else None

    def failures(self) -> list[ImageRecord]:
        rows = self.db.execute(
            f"SELECT {_IMAGE_COLUMNS} FROM images WHERE status = 'failed' ORDER BY path"
        )
        return [_record(r) for r in rows.fetchall()]

    def counts(self) -> dict[str, int]:
        """Return image counts by status plus the number of vectors."""
        out = {"ok": 0, "failed": 0}
        for status, n in self.db.execute("SELECT status, count(*) FROM images GROUP BY status"):
            out[status] = n
        out["images"] = out["ok"] + out["failed"]
        out["vectors"] = self.db.execute("SELECT count(*) FROM embeddings").fetchone()[0]
        return out

    def roots(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT DISTINCT root FROM images ORDER BY root")]

    def all_vectors(self, dim: int) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(ids int64 (N,), vectors float32 (N, dim))`` of every embedding."""
        rows = self.db.execute(
            "SELECT image_id, vector FROM embeddings ORDER BY image_id"
        ).fetchall()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dim)
        return ids, vecs


def mismatch_error(index_dir: Path, have: EncoderId, want: EncoderId) -> IndexMismatch:
    """Build the error for a query or update with an encoder the index was not built with."""
    return IndexMismatch(
        f"the index at {index_dir} was built with encoder '{have.spec}' (dim {have.dim}), "
        f"not '{want.spec}' (dim {want.dim}). Search it without --model (or with "
        f"--model {have.spec}), or re-index with: searchengine index FOLDER "
        f"--model {want.spec} --rebuild"
    )
