"""The images table and everything an index run writes with it, in one transaction per batch."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from searchengine.records import Caption, Filters, ImageRecord, IndexCounts, OcrResult
from searchengine.store.filters import filter_sql
from searchengine.store.fts import refresh_document
from searchengine.store.sql import now

if TYPE_CHECKING:
    from searchengine.store.db import Store

#: What users add to an image (kept when the file moves).
USER_TABLES = ("metadata", "user_tags", "collection_items")
#: What an index run derives from an image's content (dropped when the content changes).
STAGE_TABLES = ("captions", "ocr", "ocr_lines", "stages")

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
_UPSERT = (
    f"INSERT INTO images({', '.join(_WRITE_COLUMNS)}) VALUES ({', '.join(':' + c for c in _WRITE_COLUMNS)})"
    " ON CONFLICT(path) DO UPDATE SET "
    + ", ".join(f"{c}=excluded.{c}" for c in _WRITE_COLUMNS if c != "path")
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


def _under(root: str) -> tuple[str, list]:
    """A condition on ``images i`` for the rows indexed under the folder ``root``."""
    prefix = root.rstrip("/") + "/"
    return "(i.root = ? OR substr(i.path, 1, ?) = ?)", [root, len(prefix), prefix]


class Images:
    """Indexed files: their rows, the batch writes of index runs, deletions, counts."""

    def __init__(self, store: Store) -> None:
        self.store, self.db = store, store.db

    # -- reads ------------------------------------------------------------------------
    def by_id(self, ids: Iterable[int]) -> dict[int, ImageRecord]:
        ids = [int(i) for i in ids]
        if not ids:
            return {}
        rows = self.db.execute(
            f"SELECT {_IMAGE_COLUMNS} FROM images WHERE id IN (SELECT value FROM json_each(?))",
            [json.dumps(ids)],
        )
        return {r[0]: _record(r) for r in rows.fetchall()}

    def by_path(self, path: str) -> ImageRecord | None:
        found = self.db.execute(f"SELECT {_IMAGE_COLUMNS} FROM images WHERE path = ?", [path]).fetchone()
        return _record(found) if found else None

    def resolve(self, ref: str) -> ImageRecord | None:
        """An indexed image named by its path (absolute, or relative to the working folder) or id."""
        try:
            rec = self.by_path(str(Path(ref).expanduser().resolve())) if "\x00" not in ref else None
        except (OSError, RuntimeError, ValueError):  # ~nosuchuser, a symlink loop
            rec = None
        if rec is None and ref.strip().isdigit():
            rec = self.by_id([int(ref)]).get(int(ref))
        return rec

    def rows_under(self, root: str) -> dict[str, ImageRecord]:
        """Return the rows indexed under the folder ``root`` (absolute), by path."""
        cond, params = _under(root)
        rows = self.db.execute(f"SELECT {_IMAGE_COLUMNS} FROM images i WHERE {cond}", params).fetchall()
        return {r[1]: _record(r) for r in rows}

    def stages_under(self, root: str) -> dict[str, dict[str, tuple[str, str | None]]]:
        """Return path -> stage -> (tool, error) for the images under ``root``."""
        cond, params = _under(root)
        rows = self.db.execute(
            f"SELECT i.path, s.stage, s.tool, s.error FROM stages s JOIN images i ON i.id = s.image_id "
            f"WHERE {cond}",
            params,
        ).fetchall()
        out: dict[str, dict[str, tuple[str, str | None]]] = {}
        for path, stage, tool, error in rows:
            out.setdefault(path, {})[stage] = (tool, error)
        return out

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

    def searchable_paths(self) -> list[tuple[int, str]]:
        return self.db.execute("SELECT id, path FROM images WHERE status = 'ok'").fetchall()

    def all_paths(self) -> list[tuple[int, str]]:
        """Return ``(id, path)`` of every indexed file, failed ones too (they can be shown, tagged)."""
        return self.db.execute("SELECT id, path FROM images").fetchall()

    def any_passing(self, filters: Filters) -> bool:
        """Whether some searchable image passes ``filters`` (stops at the first)."""
        where, params = filter_sql(filters)
        found = self.db.execute(f"SELECT EXISTS (SELECT 1 FROM images i WHERE {where})", params).fetchone()
        return bool(found[0])

    def filtered_ids(self, filters: Filters) -> np.ndarray:
        """Return the ids (int64) of the searchable images that pass ``filters``, by path."""
        where, params = filter_sql(filters)
        rows = self.db.execute(f"SELECT i.id FROM images i WHERE {where} ORDER BY i.path", params).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def failures(self) -> list[ImageRecord]:
        rows = self.db.execute(f"SELECT {_IMAGE_COLUMNS} FROM images WHERE status = 'failed' ORDER BY path")
        return [_record(r) for r in rows.fetchall()]

    def counts(self) -> IndexCounts:
        """Return image counts by status, and how many vectors, captions and OCR results there are."""
        by_status = dict(self.db.execute("SELECT status, count(*) FROM images GROUP BY status").fetchall())

        def one(sql: str) -> int:
            return self.db.execute(sql).fetchone()[0]

        return IndexCounts(
            ok=by_status.get("ok", 0),
            failed=by_status.get("failed", 0),
            vectors=one("SELECT count(*) FROM embeddings"),
            captions=one("SELECT count(*) FROM captions"),
            ocr=one("SELECT count(*) FROM ocr"),
            with_text=one("SELECT count(*) FROM ocr WHERE text != ''"),
            stage_errors=one("SELECT count(*) FROM stages WHERE error IS NOT NULL"),
        )

    def roots(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT DISTINCT root FROM images ORDER BY root")]

    # -- writes -----------------------------------------------------------------------
    def write_batch(self, writes: Iterable[ImageWrite]) -> None:
        """Apply a batch of image updates in one transaction (rows, vectors, text, FTS), the
        write lock taken up front (:meth:`~searchengine.store.db.Store.writing`: it reads before
        it writes, and searches commit cached figures meanwhile)."""
        stamp = now()
        with self.store.writing():
            changed = False
            for w in writes:
                changed = self._write_one(w, stamp) or changed
            if changed:
                self.store.bump_generation()

    def _write_one(self, w: ImageWrite, now: str) -> bool:
        """Apply one file's update; returns whether its vector changed.

        A reset keeps the stage outputs when the file's content is the one its row already
        names (the same sha256: a row marked failed by ``doctor --repair``, read again): they
        still hold for it, and they may be the very outputs the job plans to copy.
        """
        keep = False
        if w.row is not None:
            old = self.db.execute("SELECT sha256 FROM images WHERE path = ?", [w.path]).fetchone()
            keep = old is not None and old[0] is not None and old[0] == w.row.get("sha256")
            row = {**w.row, "indexed_at": now}
            self.db.execute(_UPSERT, {k: row.get(k) for k in _WRITE_COLUMNS})
        image_id = self.db.execute("SELECT id FROM images WHERE path = ?", [w.path]).fetchone()[0]
        if w.reset and not keep:
            for table in STAGE_TABLES:
                self.db.execute(f"DELETE FROM {table} WHERE image_id = ?", [image_id])
        changed = False
        if w.vector is not None:
            self.db.execute(
                "INSERT OR REPLACE INTO embeddings(image_id, vector) VALUES (?, ?)", [image_id, w.vector]
            )
            changed = True
        elif w.row is not None and w.row["status"] != "ok":
            changed = self.db.execute("DELETE FROM embeddings WHERE image_id = ?", [image_id]).rowcount > 0
        if w.copy_stages:
            self._copy_stages(image_id, w.row["sha256"] if w.row else None, w.copy_stages)
        if w.phash is not None:
            self.db.execute("UPDATE images SET phash = ? WHERE id = ?", [w.phash, image_id])
        if w.ocr is not None:
            self._write_ocr(image_id, w.ocr, w.stages["ocr"][0])
        if w.caption is not None:
            parts = w.caption.parts
            self.db.execute(
                "INSERT OR REPLACE INTO captions(image_id, text, tags, model, parts) VALUES (?,?,?,?,?)",
                [
                    image_id,
                    w.caption.text,
                    json.dumps(list(w.caption.tags)),
                    w.stages["caption"][0],
                    json.dumps(parts.as_dict()) if parts else None,
                ],
            )
        for stage, (tool, error) in w.stages.items():
            self.db.execute(
                "INSERT OR REPLACE INTO stages(image_id, stage, tool, error) VALUES (?,?,?,?)",
                [image_id, stage, tool, error],
            )
        refresh_document(self.db.conn, image_id)
        return changed

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

    def _write_ocr(self, image_id: int, result: OcrResult, engine: str) -> None:
        self.db.execute("DELETE FROM ocr_lines WHERE image_id = ?", [image_id])
        self.db.execute(
            "INSERT OR REPLACE INTO ocr(image_id, text, engine) VALUES (?,?,?)",
            [image_id, result.text, engine],
        )
        self.db.conn.executemany(
            "INSERT INTO ocr_lines(image_id, line_no, text, confidence, box) VALUES (?,?,?,?,?)",
            [
                (
                    image_id,
                    n,
                    line.text,
                    float(line.confidence),
                    json.dumps([[round(float(x), 1), round(float(y), 1)] for x, y in line.box]),
                )
                for n, line in enumerate(result.lines)
            ],
        )

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
                self.store.bump_generation()
        return gone

    def heirs(self, paths: Sequence[str]) -> dict[int, int]:
        """Which images at ``paths`` would hand their user data over when deleted, and to which
        image (old id -> new id): the one remaining searchable image with the same content,
        when there is exactly one and it has no user data of its own (nor takes another's).

        Reads only: :meth:`delete_paths` applies it, and ``forget`` shows it beforehand.
        """
        leaving = set(paths)
        has_user_data = " OR ".join(
            f"EXISTS (SELECT 1 FROM {t} u WHERE u.image_id = i.id)" for t in USER_TABLES
        )
        rows = self.db.execute(
            f"SELECT i.id, i.path, i.sha256 FROM images i WHERE i.sha256 IS NOT NULL AND ({has_user_data})"
        ).fetchall()
        out: dict[int, int] = {}
        taken: set[int] = set()
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
            if new_id in taken or any(
                self.db.execute(f"SELECT 1 FROM {t} WHERE image_id = ? LIMIT 1", [new_id]).fetchone()
                for t in USER_TABLES
            ):
                continue  # it has user data of its own
            out[old_id] = new_id
            taken.add(new_id)
        return out

    def _hand_over_user_data(self, paths: Sequence[str]) -> int:
        """Move metadata, user tags and collection memberships of images about to be deleted
        to their heirs (see :meth:`heirs`). Returns how many images handed over."""
        moved = self.heirs(paths)
        for old_id, new_id in moved.items():
            for table in USER_TABLES:
                self.db.execute(f"UPDATE {table} SET image_id = ? WHERE image_id = ?", [new_id, old_id])
            refresh_document(self.db.conn, new_id)
        return len(moved)
