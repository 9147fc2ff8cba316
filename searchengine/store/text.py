"""Text read from images and the keyword index over it: captions, OCR, FTS5 matches."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from searchengine.labels import honest_caption
from searchengine.records import CaptionParts, Filters, ImageText, StageRecord
from searchengine.store.filters import filter_sql
from searchengine.store.fts import EXACT, Bm25Ranker, KeywordQuery, bm25_expression, document_sql
from searchengine.store.sql import rows_for

if TYPE_CHECKING:
    from searchengine.store.db import Store


class Texts:
    """Captions, OCR results, stage records, and keyword search over them."""

    def __init__(self, store: Store) -> None:
        self.store, self.db = store, store.db
        self.ranker = Bm25Ranker(store.db.conn)

    # -- keyword index ----------------------------------------------------------------
    def keyword_search(self, match: str, k: int, filters: Filters | None = None) -> list[tuple[int, float]]:
        """Return ``(image_id, score)`` best first for an FTS5 MATCH expression.

        The score is the negated BM25 rank with the column weights of
        :data:`searchengine.store.fts.COLUMN_WEIGHTS` (higher is better). Ties are
        broken by id, so pages are stable.
        """
        where, params = filter_sql(filters)
        rows = self.db.execute(
            f"SELECT f.rowid, {bm25_expression('search_fts')} AS score "
            "FROM search_fts f JOIN images i ON i.id = f.rowid "
            f"WHERE search_fts MATCH ? AND {where} ORDER BY score DESC, f.rowid LIMIT ?",
            [match, *params, k],
        ).fetchall()
        return [(int(r[0]), float(r[1])) for r in rows]

    def keyword_top(
        self, query: KeywordQuery, k: int, filters: Filters | None = None
    ) -> list[tuple[int, float]]:
        """:meth:`keyword_search` of ``query.match()``: the same ids, order and scores, from
        the rows that can reach the first ``k`` (:class:`~searchengine.store.fts.Bm25Ranker`)
        rather than from every match, all read in one snapshot.

        Only a page the ranker proves exact is kept: when its budget runs out first (a
        common word held by many near-equal rows, a deep page) or a filter keeps too few of
        the rows it reads, every match is ranked by :meth:`keyword_search`. (A page of the
        best rows scored would be biased by id order: catalogues are indexed folder by
        folder, so the newest images would never be read.)
        """
        conn = self.db.conn
        if conn.in_transaction:  # a write in progress: FTS5's totals may not be on disk yet
            return self.keyword_search(query.match(), k, filters)
        where, params = filter_sql(filters)
        sql = f"SELECT i.id FROM images i WHERE i.id IN (SELECT value FROM json_each(?)) AND {where}"

        def passing(ids: list[int]) -> list[int]:
            keep = {r[0] for r in conn.execute(sql, [json.dumps(ids), *params])} if ids else set()
            return [i for i in ids if i in keep]

        with self.store.snapshot():
            self.ranker.refresh()
            active = filters is not None and filters.active
            ranked, page = self.ranker.top(query, k, passing, prefilter=active)
            if page != EXACT:
                return self.keyword_search(query.match(), k, filters)
        return [(int(i), float(s)) for i, s in ranked]

    def documents(self, ids: Sequence[int]) -> dict[int, str]:
        """Return each image's keyword document as indexed (all fields joined)."""
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.db.execute(
            f"SELECT rowid, {document_sql()} FROM search_fts WHERE rowid IN ({marks})", list(ids)
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

    # -- stage outputs --------------------------------------------------------------
    def of(self, image_id: int) -> ImageText:
        """Return the caption, tags, OCR lines and stage records of one image."""
        return self.of_many([image_id]).get(image_id, ImageText())

    def of_many(self, ids: Sequence[int], details: bool = True) -> dict[int, ImageText]:
        """Return :meth:`of` for many images in four queries (exports, pages of hits); without
        ``details`` in two: no OCR lines, no stage records (what a page of hits needs)."""
        caps = {
            i: (t, tuple(json.loads(g)), m, CaptionParts.from_dict(json.loads(p) if p else None))
            for i, t, g, m, p in rows_for(
                self.db, ids, "SELECT image_id, text, tags, model, parts FROM captions"
            )
        }
        ocr = {i: (t, e) for i, t, e in rows_for(self.db, ids, "SELECT image_id, text, engine FROM ocr")}
        lines: dict[int, list[dict]] = {}
        for i, t, c, b in rows_for(
            self.db,
            ids if details else (),
            "SELECT image_id, text, confidence, box FROM ocr_lines",
            " ORDER BY image_id, line_no",
        ):
            lines.setdefault(i, []).append({"text": t, "confidence": round(c, 4), "box": json.loads(b)})
        stages: dict[int, dict[str, StageRecord]] = {}
        for i, stage, tool, error in rows_for(
            self.db,
            ids if details else (),
            "SELECT image_id, stage, tool, error FROM stages",
            " ORDER BY image_id, stage",
        ):
            stages.setdefault(i, {})[stage] = StageRecord(tool, error)
        out = {}
        for image_id in {int(i) for i in ids}:
            cap, read = caps.get(image_id), ocr.get(image_id)
            # captions stored by an older captioner: as the product states them today
            said, tags = honest_caption(cap[0], cap[1], cap[3]) if cap else (None, ())
            out[image_id] = ImageText(
                caption=said,
                tags=tags,
                caption_model=cap[2] if cap else None,
                caption_parts=cap[3] if cap else None,
                ocr_text=read[0] if read else None,
                ocr_engine=read[1] if read else None,
                ocr_lines=tuple(lines.get(image_id, ())),
                stages=stages.get(image_id, {}),
            )
        return out

    def captions_of(self, ids: Sequence[int]) -> dict[int, str]:
        """Return the caption of each of ``ids`` that has one (as :func:`honest_caption` states it)."""
        out = {}
        for i, text, parts in rows_for(self.db, ids, "SELECT image_id, text, parts FROM captions"):
            said = honest_caption(text, (), CaptionParts.from_dict(json.loads(parts) if parts else None))[0]
            if said is not None:
                out[int(i)] = said
        return out

    def ocr_texts(self, paths: Sequence[str]) -> dict[str, str]:
        """Return the stored OCR text of each of ``paths`` that has one."""
        out = {}
        for path in paths:
            row = self.db.execute(
                "SELECT o.text FROM ocr o JOIN images i ON i.id = o.image_id WHERE i.path = ?", [path]
            ).fetchone()
            if row:
                out[path] = row[0]
        return out

    def filter_options(self, top_tags: int = 100) -> dict[str, list[tuple[str, int]]]:
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
        return {
            "folders": sorted(folders.items()),
            "formats": [(f, n) for f, n in formats],
            "tags": self.tags(top_tags),
        }

    def tags(self, top: int = 100) -> list[tuple[str, int]]:
        """The ``top`` tags of searchable images with how many images carry each (an image
        tagged both ways counts once): your own first, then the generated ones, most used
        first (a tag you gave three images is listed however many caption tags there are)."""
        rows = self.db.execute(
            "SELECT tag, count(DISTINCT image_id) FROM ("
            "SELECT lower(t.value) AS tag, c.image_id AS image_id, 0 AS mine FROM captions c "
            "JOIN images i ON i.id = c.image_id, json_each(c.tags) t WHERE i.status = 'ok' "
            "UNION ALL SELECT lower(u.tag), u.image_id, 1 FROM user_tags u "
            "JOIN images i ON i.id = u.image_id WHERE i.status = 'ok') "
            "GROUP BY tag ORDER BY max(mine) DESC, count(DISTINCT image_id) DESC, tag LIMIT ?",
            [top],
        ).fetchall()
        return [(t, n) for t, n in rows]
