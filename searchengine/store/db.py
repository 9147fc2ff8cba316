"""SQLite, through sqlite-utils: the source of truth for everything indexed.

Every image (found, failed or not), its file facts and its embedding live here;
the FAISS index beside it is derived from this file and can always be rebuilt.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import sqlite_utils

from searchengine.errors import IndexMismatch, SearchEngineError
from searchengine.records import Caption, EncoderId, Filters, ImageRecord, OcrResult
from searchengine.store.schema import migrate, refresh_fts

DB_NAME = "index.db"
BUSY_TIMEOUT_MS = 30_000
#: What users add to an image (kept when the file moves).
USER_TABLES = ("metadata", "user_tags", "collection_items")

_IMAGE_COLUMNS = "id, path, root, sha256, size, mtime_ns, width, height, format, status, error"
_WRITE_COLUMNS = (
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


@dataclass
class ImageWrite:
    """One file's update within a batch.

    :param path: the file (absolute).
    :param row: the ``images`` columns to upsert, or None to keep the row as it is
        (adding a stage's output to an unchanged image).
    :param vector: float32 bytes of the new embedding, if one was computed or reused.
    :param reset: the content changed: drop the old captions, OCR and stage records.
    :param stages: stage -> (tool, error or None) for each stage run now.
    :param copy_stages: stage -> tool whose outputs are copied from another image with
        the same content (a moved or copied file), instead of being computed again.
    """

    path: str
    row: dict | None = None
    vector: bytes | None = None
    reset: bool = False
    ocr: OcrResult | None = None
    caption: Caption | None = None
    phash: str | None = None
    stages: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    copy_stages: dict[str, str] = field(default_factory=dict)


def _record(row: Sequence) -> ImageRecord:
    return ImageRecord(*row)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Store:
    """One index database. Writes happen in explicit transactions (``atomic``)."""

    def __init__(self, index_dir: str | Path) -> None:
        """Open (creating and migrating if needed) the database in ``index_dir``."""
        self.dir = Path(index_dir)
        if self.dir.exists() and not self.dir.is_dir():
            raise SearchEngineError(f"--index must be a folder, but {self.dir} is a file")
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SearchEngineError(f"cannot create the index folder {self.dir}: {exc.strerror}") from None
        self.path = self.dir / DB_NAME
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            migrate(conn)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise SearchEngineError(
                f"{self.path} is not a usable index database ({exc}): move it away and re-index, "
                "or choose another --index"
            ) from None
        self.db = sqlite_utils.Database(conn)

    def close(self) -> None:
        self.db.close()

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
                self._write_encoder(enc)
        elif current != enc:
            raise mismatch_error(self.dir, current, enc)

    def _write_encoder(self, enc: EncoderId) -> None:
        for key, value in (
            ("encoder_name", enc.name),
            ("encoder_tag", enc.tag),
            ("encoder_dim", str(enc.dim)),
        ):
            self.db["meta"].upsert({"key": key, "value": value}, pk="key")

    def generation(self) -> str:
        """Return a token that changes (to a fresh random value) with every change of vectors.

        Random rather than a counter, so that a recreated database or one rolled
        back by a crash can never pass for the state a saved FAISS file was built from.
        """
        return self.get_meta("generation") or "empty"

    def _bump_generation(self) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES ('generation', ?)", [uuid.uuid4().hex]
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

    def stages_under(self, root: str) -> dict[str, dict[str, tuple[str, str | None]]]:
        """Return path -> stage -> (tool, error) for the images under ``root``."""
        prefix = root.rstrip("/") + "/"
        rows = self.db.execute(
            "SELECT i.path, s.stage, s.tool, s.error FROM stages s JOIN images i ON i.id = s.image_id "
            "WHERE i.root = ? OR substr(i.path, 1, ?) = ?",
            [root, len(prefix), prefix],
        ).fetchall()
        out: dict[str, dict[str, tuple[str, str | None]]] = {}
        for path, stage, tool, error in rows:
            out.setdefault(path, {})[stage] = (tool, error)
        return out

    def ocr_texts(self, paths: Sequence[str]) -> dict[str, str]:
        """Return the stored OCR text of each of ``paths`` that has one."""
        out = {}
        for path in paths:
            row = self.db.execute(
                "SELECT o.text FROM ocr o JOIN images i ON i.id = o.image_id WHERE i.path = ?",
                [path],
            ).fetchone()
            if row:
                out[path] = row[0]
        return out

    def vector_for_hash(self, sha256: str) -> bytes | None:
        """Return a stored embedding of a file with this content, if any (moves, copies)."""
        row = self.db.execute(
            "SELECT e.vector FROM images i JOIN embeddings e ON e.image_id = i.id WHERE i.sha256 = ? LIMIT 1",
            [sha256],
        ).fetchone()
        return row[0] if row else None

    def write_batch(self, writes: Iterable[ImageWrite]) -> None:
        """Apply a batch of image updates in one transaction (rows, vectors, text, FTS).

        :param writes: one :class:`ImageWrite` per file.
        """
        now = _now()
        with self.db.atomic():
            changed = False
            for w in writes:
                if w.row is not None:
                    image_id = self._upsert_image({**w.row, "indexed_at": now})
                else:
                    found = self.db.execute("SELECT id FROM images WHERE path = ?", [w.path])
                    image_id = found.fetchone()[0]
                if w.reset:
                    for table in ("captions", "ocr", "ocr_lines", "stages"):
                        self.db.execute(f"DELETE FROM {table} WHERE image_id = ?", [image_id])
                if w.vector is not None:
                    self.db.execute(
                        "INSERT OR REPLACE INTO embeddings(image_id, vector) VALUES (?, ?)",
                        [image_id, w.vector],
                    )
                    changed = True
                elif w.row is not None and w.row["status"] != "ok":
                    gone = self.db.execute("DELETE FROM embeddings WHERE image_id = ?", [image_id])
                    changed = changed or gone.rowcount > 0
                if w.copy_stages:
                    self._copy_stages(image_id, w.row["sha256"] if w.row else None, w.copy_stages)
                if w.phash is not None:
                    self.db.execute("UPDATE images SET phash = ? WHERE id = ?", [w.phash, image_id])
                if w.ocr is not None:
                    self._write_ocr(image_id, w.ocr, w.stages["ocr"][0])
                if w.caption is not None:
                    self.db.execute(
                        "INSERT OR REPLACE INTO captions(image_id, text, tags, model) VALUES (?,?,?,?)",
                        [
                            image_id,
                            w.caption.text,
                            json.dumps(list(w.caption.tags)),
                            w.stages["caption"][0],
                        ],
                    )
                for stage, (tool, error) in w.stages.items():
                    self.db.execute(
                        "INSERT OR REPLACE INTO stages(image_id, stage, tool, error) VALUES (?,?,?,?)",
                        [image_id, stage, tool, error],
                    )
                self._refresh_fts(image_id)
            if changed:
                self._bump_generation()

    def _upsert_image(self, row: dict) -> int:
        self.db.execute(
            "INSERT INTO images(path, root, sha256, size, mtime_ns, width, height, format,"
            " status, error, indexed_at) VALUES (:path, :root, :sha256, :size, :mtime_ns,"
            " :width, :height, :format, :status, :error, :indexed_at)"
            " ON CONFLICT(path) DO UPDATE SET root=excluded.root, sha256=excluded.sha256,"
            " size=excluded.size, mtime_ns=excluded.mtime_ns, width=excluded.width,"
            " height=excluded.height, format=excluded.format, status=excluded.status,"
            " error=excluded.error, indexed_at=excluded.indexed_at",
            {k: row.get(k) for k in _WRITE_COLUMNS},
        )
        return self.db.execute("SELECT id FROM images WHERE path = ?", [row["path"]]).fetchone()[0]

    def _copy_stages(self, image_id: int, sha256: str | None, stages: dict[str, str]) -> None:
        """Copy stage outputs from another image with the same content and tool."""
        for stage, tool in stages.items():
            donor = self.db.execute(
                "SELECT s.image_id FROM stages s JOIN images i ON i.id = s.image_id WHERE i.sha256 = ? "
                "AND s.stage = ? AND s.tool = ? AND s.error IS NULL AND s.image_id != ? LIMIT 1",
                [sha256, stage, tool, image_id],
            ).fetchone()
            if donor is None:
                continue
            tables = {"ocr": ("ocr", "ocr_lines"), "caption": ("captions",)}[stage]
            for table in (*tables, "stages"):
                cols = [c.name for c in self.db[table].columns if c.name != "image_id"]
                where = " AND stage = ?" if table == "stages" else ""
                params = [image_id, donor[0]] + ([stage] if where else [])
                self.db.execute(
                    f"INSERT OR REPLACE INTO {table}(image_id, {', '.join(cols)}) "
                    f"SELECT ?, {', '.join(cols)} FROM {table} WHERE image_id = ?{where}",
                    params,
                )

    def text_tools_by_hash(self) -> dict[str, dict[str, str]]:
        """Return sha256 -> stage -> tool for every successful stage output (move/copy reuse)."""
        out: dict[str, dict[str, str]] = {}
        rows = self.db.execute(
            "SELECT i.sha256, s.stage, s.tool FROM stages s JOIN images i ON i.id = s.image_id "
            "WHERE s.error IS NULL AND i.sha256 IS NOT NULL"
        )
        for sha, stage, tool in rows:
            out.setdefault(sha, {})[stage] = tool
        return out

    def _write_ocr(self, image_id: int, result: OcrResult, engine: str) -> None:
        self.db.execute("DELETE FROM ocr_lines WHERE image_id = ?", [image_id])
        self.db.execute(
            "INSERT OR REPLACE INTO ocr(image_id, text, engine) VALUES (?,?,?)",
            [image_id, result.text, engine],
        )
        for n, line in enumerate(result.lines):
            self.db.execute(
                "INSERT INTO ocr_lines(image_id, line_no, text, confidence, box) VALUES (?,?,?,?,?)",
                [
                    image_id,
                    n,
                    line.text,
                    float(line.confidence),
                    json.dumps([[round(float(x), 1), round(float(y), 1)] for x, y in line.box]),
                ],
            )

    def _refresh_fts(self, image_id: int) -> None:
        refresh_fts(self.db.conn, image_id)

    def touch(self, path: str, size: int, mtime_ns: int) -> None:
        """Record a new mtime/size for a file whose content did not change."""
        with self.db.atomic():
            self.db.execute("UPDATE images SET size = ?, mtime_ns = ? WHERE path = ?", [size, mtime_ns, path])

    def delete_paths(self, paths: Sequence[str]) -> int:
        """Delete rows (and their embeddings) for ``paths``; returns how many went.

        A deleted image whose content now lives at exactly one other path (it was moved
        or renamed) hands that copy its user data first: metadata, tags, collections.
        """
        if not paths:
            return 0
        gone = 0
        with self.db.atomic():
            self._hand_over_user_data(paths)
            for chunk_start in range(0, len(paths), 500):
                chunk = list(paths[chunk_start : chunk_start + 500])
                marks = ",".join("?" * len(chunk))
                self.db.execute(  # a virtual table gets no ON DELETE CASCADE
                    f"DELETE FROM search_fts WHERE rowid IN (SELECT id FROM images WHERE path IN ({marks}))",
                    chunk,
                )
                gone += self.db.execute(f"DELETE FROM images WHERE path IN ({marks})", chunk).rowcount
            if gone:
                self._bump_generation()
        return gone

    def _hand_over_user_data(self, paths: Sequence[str]) -> int:
        """Move metadata, user tags and collection memberships of images about to be deleted
        to the one remaining image with the same content, when there is exactly one and it
        has none of its own. Returns how many images handed over."""
        leaving = set(paths)
        moved = 0
        rows = self.db.execute(
            "SELECT i.id, i.path, i.sha256 FROM images i WHERE i.sha256 IS NOT NULL AND ("
            "EXISTS (SELECT 1 FROM metadata m WHERE m.image_id = i.id) OR "
            "EXISTS (SELECT 1 FROM user_tags u WHERE u.image_id = i.id) OR "
            "EXISTS (SELECT 1 FROM collection_items c WHERE c.image_id = i.id))"
        ).fetchall()
        for old_id, path, sha in rows:
            if path not in leaving:
                continue
            heirs = [
                image_id
                for image_id, other in self.db.execute(
                    "SELECT id, path FROM images WHERE sha256 = ? AND status = 'ok'", [sha]
                )
                if other not in leaving
            ]
            if len(heirs) != 1:
                continue  # gone for good, or copied to several places: nothing to guess
            new_id = heirs[0]
            if any(
                self.db.execute(f"SELECT 1 FROM {t} WHERE image_id = ? LIMIT 1", [new_id]).fetchone()
                for t in USER_TABLES
            ):
                continue  # it has user data of its own
            for table in USER_TABLES:
                self.db.execute(f"UPDATE {table} SET image_id = ? WHERE image_id = ?", [new_id, old_id])
            self._refresh_fts(new_id)
            moved += 1
        return moved

    def clear(self) -> None:
        """Forget every image, vector and the encoder binding (for ``--rebuild``)."""
        with self.db.atomic():
            for table in ("search_fts", "stages", "ocr_lines", "ocr", "captions", "embeddings"):
                self.db.execute(f"DELETE FROM {table}")
            self.db.execute("DELETE FROM images")
            self.db.execute("DELETE FROM meta WHERE key IN ('encoder_name', 'encoder_tag', 'encoder_dim')")
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

    def keyword_search(self, match: str, k: int, filters: Filters | None = None) -> list[tuple[int, float]]:
        """Return ``(image_id, score)`` best first for an FTS5 MATCH expression.

        The score is the negated BM25 rank (higher is better); file names weigh
        double, metadata (product titles, brands...) one and a half, folder names half.
        Ties are broken by id, so pages are stable.
        """
        where, params = filter_sql(filters)
        rows = self.db.execute(
            "SELECT f.rowid, -bm25(search_fts, 2.0, 0.5, 1.0, 1.0, 1.0, 1.5) AS score "
            "FROM search_fts f JOIN images i ON i.id = f.rowid "
            f"WHERE search_fts MATCH ? AND {where} ORDER BY score DESC, f.rowid LIMIT ?",
            [match, *params, k],
        ).fetchall()
        return [(int(r[0]), float(r[1])) for r in rows]

    def keyword_documents(self, ids: Sequence[int]) -> dict[int, str]:
        """Return each image's keyword document as indexed (all fields joined)."""
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.db.execute(
            "SELECT rowid, name || ' ' || folder || ' ' || caption || ' ' || tags || ' ' || ocr || ' ' "
            f"|| meta FROM search_fts WHERE rowid IN ({marks})",
            list(ids),
        ).fetchall()
        return {int(r[0]): r[1] for r in rows}

    def match_ids(self, match: str, filters: Filters | None = None) -> np.ndarray:
        """Return the ids (int64) of every searchable image matching an FTS5 expression."""
        where, params = filter_sql(filters)
        rows = self.db.execute(
            f"SELECT f.rowid FROM search_fts f JOIN images i ON i.id = f.rowid "
            f"WHERE search_fts MATCH ? AND {where}",
            [match, *params],
        ).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def vector_of(self, image_id: int, dim: int) -> np.ndarray | None:
        """Return the stored embedding of one image, float32 (dim,), or None."""
        row = self.db.execute("SELECT vector FROM embeddings WHERE image_id = ?", [image_id]).fetchone()
        return np.frombuffer(row[0], dtype=np.float32).reshape(dim).copy() if row else None

    def filtered_ids(self, filters: Filters) -> np.ndarray:
        """Return the ids (int64) of the searchable images that pass ``filters``, by path."""
        where, params = filter_sql(filters)
        rows = self.db.execute(f"SELECT i.id FROM images i WHERE {where} ORDER BY i.path", params).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def image_text(self, image_id: int) -> dict:
        """Return the caption, tags, OCR lines and stage records of one image."""
        cap = self.db.execute(
            "SELECT text, tags, model FROM captions WHERE image_id = ?", [image_id]
        ).fetchone()
        ocr = self.db.execute("SELECT text, engine FROM ocr WHERE image_id = ?", [image_id]).fetchone()
        lines = self.db.execute(
            "SELECT text, confidence, box FROM ocr_lines WHERE image_id = ? ORDER BY line_no",
            [image_id],
        ).fetchall()
        stages = self.db.execute(
            "SELECT stage, tool, error FROM stages WHERE image_id = ? ORDER BY stage", [image_id]
        ).fetchall()
        return {
            "caption": cap[0] if cap else None,
            "tags": json.loads(cap[1]) if cap else [],
            "caption_model": cap[2] if cap else None,
            "ocr_text": ocr[0] if ocr else None,
            "ocr_engine": ocr[1] if ocr else None,
            "ocr_lines": [{"text": t, "confidence": round(c, 4), "box": json.loads(b)} for t, c, b in lines],
            "stages": {st: {"tool": tool, "error": err} for st, tool, err in stages},
        }

    def captions_of(self, ids: Sequence[int]) -> dict[int, str]:
        """Return the caption of each of ``ids`` that has one."""
        return {int(i): text for i, text in self._rows_for(ids, "SELECT image_id, text FROM captions")}

    def facet_counts(self, top_tags: int = 100) -> dict[str, list[tuple[str, int]]]:
        """Return what searchable images can be filtered by: folders, formats, tags, with counts.

        Folders are every folder holding images (each counted with its subfolders),
        most images first within each root.
        """
        folders: dict[str, int] = {}
        for path, root in self.db.execute("SELECT path, root FROM images WHERE status = 'ok'"):
            folder = path.rsplit("/", 1)[0]
            while True:
                folders[folder] = folders.get(folder, 0) + 1
                if folder == root or len(folder) <= len(root) or "/" not in folder:
                    break
                folder = folder.rsplit("/", 1)[0]
        formats = self.db.execute(
            "SELECT upper(format), count(*) FROM images WHERE status = 'ok' AND format IS NOT NULL "
            "GROUP BY upper(format) ORDER BY count(*) DESC, 1"
        ).fetchall()
        tags = self.db.execute(
            "SELECT lower(t.value), count(*) FROM captions c JOIN images i ON i.id = c.image_id, "
            "json_each(c.tags) t WHERE i.status = 'ok' GROUP BY lower(t.value) "
            "ORDER BY count(*) DESC, 1 LIMIT ?",
            [top_tags],
        ).fetchall()
        return {
            "folders": sorted(folders.items()),
            "formats": [(f, n) for f, n in formats],
            "tags": [(t, n) for t, n in tags],
        }

    # -- metadata, user tags, collections ----------------------------------------
    def searchable_paths(self) -> list[tuple[int, str]]:
        return self.db.execute("SELECT id, path FROM images WHERE status = 'ok'").fetchall()

    def set_metadata(self, writes: Sequence[tuple[int, dict[str, str]]], source: str) -> None:
        """Upsert metadata fields of many images in one transaction (``source``: provenance)."""
        from searchengine.metadata import as_number

        with self.db.atomic():
            for image_id, values in writes:
                for key, value in values.items():
                    self.db.execute(
                        "INSERT OR REPLACE INTO metadata(image_id, key, value, num, source) "
                        "VALUES (?,?,?,?,?)",
                        [image_id, key, value, as_number(value), source],
                    )
                self._refresh_fts(image_id)

    def metadata_of(self, ids: Sequence[int]) -> dict[int, dict[str, str]]:
        """Return each image's metadata fields (key -> value)."""
        out: dict[int, dict[str, str]] = {}
        for image_id, key, value in self._rows_for(ids, "SELECT image_id, key, value FROM metadata"):
            out.setdefault(image_id, {})[key] = value
        return out

    def metadata_sources(self, image_id: int) -> dict[str, str]:
        rows = self.db.execute("SELECT key, source FROM metadata WHERE image_id = ?", [image_id])
        return dict(rows.fetchall())

    def _rows_for(self, ids: Sequence[int], select: str, where: str = "", params: Sequence = ()) -> list:
        """Run ``select`` restricted to ``image_id IN ids`` (any number of ids)."""
        ids = [int(i) for i in ids]
        if not ids:
            return []
        sql = f"{select} WHERE image_id IN (SELECT value FROM json_each(?)){where}"
        return self.db.execute(sql, [json.dumps(ids), *params]).fetchall()

    def facets(
        self, ids: Sequence[int], keys: Sequence[str], top: int = 20
    ) -> dict[str, list[tuple[str, int]]]:
        """Count each field's values among ``ids`` (a result set), most frequent first."""
        out: dict[str, list[tuple[str, int]]] = {k: [] for k in keys}
        if not keys:
            return out
        marks = ",".join("?" * len(keys))
        rows = self._rows_for(
            ids,
            "SELECT key, min(value), count(*) FROM metadata",
            f" AND key IN ({marks}) GROUP BY key, lower(value) ORDER BY count(*) DESC, min(value)",
            list(keys),
        )
        for key, value, n in rows:
            if len(out[key]) < top:
                out[key].append((value, n))
        return out

    def metadata_fields(self) -> list[tuple[str, int, int, int, float | None, float | None]]:
        """Return ``(key, images, distinct values, numeric values, min, max)`` for every field."""
        return self.db.execute(
            "SELECT key, count(*), count(DISTINCT lower(value)), count(num), min(num), max(num) "
            "FROM metadata GROUP BY key ORDER BY key"
        ).fetchall()

    def library_of(self, image_id: int) -> dict:
        """What users and imports added to one image: metadata (with sources), user tags,
        collections, and the ids of its near duplicates."""
        return {
            "metadata": self.metadata_of([image_id]).get(image_id, {}),
            "metadata_sources": self.metadata_sources(image_id),
            "user_tags": self.user_tags(image_id),
            "collections": self.collections_of(image_id),
            "duplicates": self.duplicates_of([image_id]).get(image_id, []),
        }

    def user_tags(self, image_id: int) -> list[str]:
        rows = self.db.execute("SELECT tag FROM user_tags WHERE image_id = ? ORDER BY tag", [image_id])
        return [r[0] for r in rows.fetchall()]

    def add_tags(self, image_id: int, tags: Sequence[str]) -> None:
        with self.db.atomic():
            for tag in tags:
                self.db.execute(
                    "INSERT OR IGNORE INTO user_tags(image_id, tag, added_at) VALUES (?,?,?)",
                    [image_id, tag, _now()],
                )
            self._refresh_fts(image_id)

    def remove_tags(self, image_id: int, tags: Sequence[str]) -> int:
        with self.db.atomic():
            gone = sum(
                self.db.execute(
                    "DELETE FROM user_tags WHERE image_id = ? AND lower(tag) = lower(?)", [image_id, t]
                ).rowcount
                for t in tags
            )
            self._refresh_fts(image_id)
        return gone

    def collections(self) -> list[tuple[str, int, str]]:
        """Return ``(name, images, created_at)`` for every collection."""
        return self.db.execute(
            "SELECT c.name, count(ci.image_id), c.created_at FROM collections c "
            "LEFT JOIN collection_items ci ON ci.collection_id = c.id GROUP BY c.id ORDER BY c.name"
        ).fetchall()

    def collections_of(self, image_id: int) -> list[str]:
        rows = self.db.execute(
            "SELECT c.name FROM collections c JOIN collection_items ci ON ci.collection_id = c.id "
            "WHERE ci.image_id = ? ORDER BY c.name",
            [image_id],
        )
        return [r[0] for r in rows.fetchall()]

    def add_to_collection(self, name: str, ids: Sequence[int]) -> int:
        """Add images to a collection (created if new); returns how many were not in it yet."""
        with self.db.atomic():
            self.db.execute(
                "INSERT OR IGNORE INTO collections(name, created_at) VALUES (?, ?)", [name, _now()]
            )
            cid = self.db.execute("SELECT id FROM collections WHERE name = ?", [name]).fetchone()[0]
            return sum(
                self.db.execute(
                    "INSERT OR IGNORE INTO collection_items(collection_id, image_id, added_at) "
                    "VALUES (?,?,?)",
                    [cid, int(i), _now()],
                ).rowcount
                for i in ids
            )

    def remove_from_collection(self, name: str, ids: Sequence[int]) -> int:
        with self.db.atomic():
            return sum(
                self.db.execute(
                    "DELETE FROM collection_items WHERE image_id = ? AND collection_id = "
                    "(SELECT id FROM collections WHERE name = ?)",
                    [int(i), name],
                ).rowcount
                for i in ids
            )

    def delete_collection(self, name: str) -> bool:
        with self.db.atomic():
            return self.db.execute("DELETE FROM collections WHERE name = ?", [name]).rowcount > 0

    def replace_vectors(
        self, enc: EncoderId, vectors: Sequence[tuple[int, bytes]], failed: Sequence[tuple[int, str]] = ()
    ) -> None:
        """Swap every embedding for ``vectors`` made by ``enc``, in one transaction (a tuned
        or untuned encoder: an index never mixes them). ``failed`` images lose their vector."""
        with self.db.atomic():
            self.db.execute("DELETE FROM embeddings")
            self.db.conn.executemany("INSERT INTO embeddings(image_id, vector) VALUES (?, ?)", list(vectors))
            for image_id, error in failed:
                self.db.execute(
                    "UPDATE images SET status = 'failed', error = ? WHERE id = ?", [error, image_id]
                )
            self._write_encoder(enc)
            self._bump_generation()

    # -- near duplicates ------------------------------------------------------------
    def phashes(self) -> dict[int, str]:
        rows = self.db.execute("SELECT id, phash FROM images WHERE status = 'ok' AND phash IS NOT NULL")
        return dict(rows.fetchall())

    def replace_duplicates(self, groups: Sequence[Sequence[int]], params: dict) -> None:
        """Store near-duplicate groups (each a list of image ids) and how they were found."""
        with self.db.atomic():
            self.db.execute("DELETE FROM duplicates")
            for group in groups:
                gid = min(group)
                for image_id in group:
                    self.db.execute(
                        "INSERT INTO duplicates(image_id, group_id) VALUES (?, ?)", [image_id, gid]
                    )
            self.db["meta"].upsert({"key": "duplicates", "value": json.dumps(params)}, pk="key")

    def duplicate_groups(self) -> list[list[int]]:
        groups: dict[int, list[int]] = {}
        for image_id, gid in self.db.execute(
            "SELECT image_id, group_id FROM duplicates ORDER BY group_id, image_id"
        ):
            groups.setdefault(gid, []).append(image_id)
        return list(groups.values())

    def duplicates_of(self, ids: Sequence[int]) -> dict[int, list[int]]:
        """Return, for each of ``ids`` in a group, the other members of its group."""
        rows = self._rows_for(ids, "SELECT image_id, group_id FROM duplicates")
        gids = {gid for _, gid in rows}
        if not gids:
            return {}
        members: dict[int, list[int]] = {}
        for image_id, gid in self.db.execute(
            "SELECT image_id, group_id FROM duplicates WHERE group_id IN (SELECT value FROM json_each(?))",
            [json.dumps(sorted(gids))],
        ):
            members.setdefault(gid, []).append(image_id)
        return {i: [m for m in members[g] if m != i] for i, g in rows}

    def failures(self) -> list[ImageRecord]:
        rows = self.db.execute(f"SELECT {_IMAGE_COLUMNS} FROM images WHERE status = 'failed' ORDER BY path")
        return [_record(r) for r in rows.fetchall()]

    def counts(self) -> dict[str, int]:
        """Return image counts by status plus the number of vectors."""
        out = {"ok": 0, "failed": 0}
        for status, n in self.db.execute("SELECT status, count(*) FROM images GROUP BY status"):
            out[status] = n
        out["images"] = out["ok"] + out["failed"]
        out["vectors"] = self.db.execute("SELECT count(*) FROM embeddings").fetchone()[0]
        out["captions"] = self.db.execute("SELECT count(*) FROM captions").fetchone()[0]
        out["ocr"] = self.db.execute("SELECT count(*) FROM ocr").fetchone()[0]
        out["with_text"] = self.db.execute("SELECT count(*) FROM ocr WHERE text != ''").fetchone()[0]
        out["stage_errors"] = self.db.execute(
            "SELECT count(*) FROM stages WHERE error IS NOT NULL"
        ).fetchone()[0]
        return out

    def roots(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT DISTINCT root FROM images ORDER BY root")]

    def all_vectors(self, dim: int) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(ids int64 (N,), vectors float32 (N, dim))`` of every embedding."""
        rows = self.db.execute("SELECT image_id, vector FROM embeddings ORDER BY image_id").fetchall()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dim)
        return ids, vecs


def filter_sql(filters: Filters | None) -> tuple[str, list]:
    """Return a WHERE condition on ``images i`` (searchable rows passing ``filters``)."""
    conds, params = ["i.status = 'ok'"], []
    if filters is None:
        return conds[0], params
    if filters.folder:
        prefix = filters.folder.rstrip("/") + "/"
        conds.append("substr(i.path, 1, ?) = ?")
        params += [len(prefix), prefix]
    if filters.formats:
        conds.append(f"upper(i.format) IN ({','.join('?' * len(filters.formats))})")
        params += [f.upper() for f in filters.formats]
    for value, cond in (
        (filters.modified_after, "i.mtime_ns >= ?"),
        (filters.modified_before, "i.mtime_ns <= ?"),
        (filters.min_bytes, "i.size >= ?"),
        (filters.max_bytes, "i.size <= ?"),
    ):
        if value is not None:
            conds.append(cond)
            params.append(value)
    for tag in filters.tags:
        conds.append(
            "(EXISTS (SELECT 1 FROM captions c, json_each(c.tags) t "
            "WHERE c.image_id = i.id AND lower(t.value) = lower(?)) OR EXISTS (SELECT 1 FROM user_tags u "
            "WHERE u.image_id = i.id AND lower(u.tag) = lower(?)))"
        )
        params += [tag, tag]
    for cond in filters.where:
        if cond.op in ("=", "!="):
            test = "EXISTS" if cond.op == "=" else "NOT EXISTS"
            conds.append(
                f"{test} (SELECT 1 FROM metadata m WHERE m.image_id = i.id AND m.key = ? "
                "AND lower(m.value) = lower(?))"
            )
            params += [cond.key, cond.value]
        else:
            conds.append(
                "EXISTS (SELECT 1 FROM metadata m WHERE m.image_id = i.id AND m.key = ? "
                f"AND m.num {cond.op} ?)"
            )
            params += [cond.key, cond.number]
    if filters.collection is not None:
        conds.append(
            "EXISTS (SELECT 1 FROM collection_items ci JOIN collections c ON c.id = ci.collection_id "
            "WHERE ci.image_id = i.id AND c.name = ?)"
        )
        params.append(filters.collection)
    return " AND ".join(conds), params


def mismatch_error(index_dir: Path, have: EncoderId, want: EncoderId) -> IndexMismatch:
    """Build the error for a query or update with an encoder the index was not built with."""
    return IndexMismatch(
        f"the index at {index_dir} was built with encoder '{have.spec}' (dim {have.dim}), "
        f"not '{want.spec}' (dim {want.dim}). Search it without --model (or with "
        f"--model {have.spec}), or re-index with: searchengine index FOLDER "
        f"--model {want.spec} --rebuild"
    )
