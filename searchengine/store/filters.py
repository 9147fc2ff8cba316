"""Search filters as SQL: one WHERE condition on ``images i`` for every leg and listing."""

from __future__ import annotations

import json

import numpy as np

from searchengine.records import Filters

_TAG = (
    "(EXISTS (SELECT 1 FROM captions c, json_each(c.tags) t "
    "WHERE c.image_id = i.id AND lower(t.value) = lower(?)) OR EXISTS (SELECT 1 FROM user_tags u "
    "WHERE u.image_id = i.id AND lower(u.tag) = lower(?)))"
)
_META_TEXT = (
    "{test} (SELECT 1 FROM metadata m WHERE m.image_id = i.id AND m.key = ? AND lower(m.value) = lower(?))"
)
_META_NUM = "EXISTS (SELECT 1 FROM metadata m WHERE m.image_id = i.id AND m.key = ? AND m.num {op} ?)"
_COLLECTION = (
    "EXISTS (SELECT 1 FROM collection_items ci JOIN collections c ON c.id = ci.collection_id "
    "WHERE ci.image_id = i.id AND c.name = ?)"
)


def filter_sql(filters: Filters | None) -> tuple[str, list]:
    """Return a WHERE condition on ``images i`` (searchable rows passing ``filters``) and its parameters."""
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
        conds.append(_TAG)
        params += [tag, tag]
    for cond in filters.where:
        if cond.op in ("=", "!="):
            conds.append(_META_TEXT.format(test="EXISTS" if cond.op == "=" else "NOT EXISTS"))
            params += [cond.key, cond.value]
        else:
            conds.append(_META_NUM.format(op=cond.op))
            params += [cond.key, cond.number]
    if filters.collection is not None:
        conds.append(_COLLECTION)
        params.append(filters.collection)
    return " AND ".join(conds), params


class FilterPassing:
    """The searchable images that pass ``filters``, asked of SQLite only as far as a filtered
    vector search needs (:meth:`~searchengine.store.vectors.VectorIndex.search_passing`):
    the first few ids in id order, whether given candidates pass, and only when it must, all.
    """

    def __init__(self, db, filters: Filters | None) -> None:
        self.db = db
        self.where, self.params = filter_sql(filters)

    def first(self, limit: int, among: int) -> tuple[np.ndarray, float]:
        """Return the first ``limit`` passing ids by id (every one when fewer pass) and an
        estimate of how many of ``among`` pass: exact when fewer than ``limit`` do, else
        the share of searchable images up to the last id read that pass, times ``among``
        (the scan stops there, so a broad filter costs a short scan, not a count of all)."""
        sql = f"SELECT i.id FROM images i WHERE {self.where} ORDER BY i.id LIMIT ?"
        rows = self.db.execute(sql, [*self.params, limit]).fetchall()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        if len(ids) < limit:
            return ids, float(len(ids))
        sql = "SELECT count(*) FROM images WHERE id <= ? AND status = 'ok'"
        scanned = self.db.execute(sql, [int(ids[-1])]).fetchone()[0]
        return ids, len(ids) / max(scanned, 1) * among

    def keep(self, ids: np.ndarray) -> np.ndarray:
        """Return which of ``ids`` pass (bool, the same shape), in one query."""
        sql = f"SELECT i.id FROM images i WHERE i.id IN (SELECT value FROM json_each(?)) AND {self.where}"
        rows = self.db.execute(sql, [json.dumps(np.asarray(ids).ravel().tolist()), *self.params]).fetchall()
        return np.isin(ids, np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)))

    def ids(self) -> np.ndarray:
        """Return every passing id (int64), by id."""
        rows = self.db.execute(f"SELECT i.id FROM images i WHERE {self.where} ORDER BY i.id", self.params)
        found = rows.fetchall()
        return np.fromiter((r[0] for r in found), dtype=np.int64, count=len(found))
