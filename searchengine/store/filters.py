"""Search filters as SQL: one WHERE condition on ``images i`` for every leg and listing."""

from __future__ import annotations

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
