"""Small helpers every repository of the store shares."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlite_utils


def now() -> str:
    """The current time as the store records it (UTC, ISO 8601, seconds)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def rows_for(
    db: sqlite_utils.Database, ids: Sequence[int], select: str, tail: str = "", params: Sequence = ()
) -> list:
    """Run ``select`` restricted to ``image_id IN ids`` (any number of ids), then ``tail``.

    :param tail: more SQL after the condition, starting with `` AND`` or `` ORDER BY``/`` GROUP BY``.
    """
    ids = [int(i) for i in ids]
    if not ids:
        return []
    sql = f"{select} WHERE image_id IN (SELECT value FROM json_each(?)){tail}"
    return db.execute(sql, [json.dumps(ids), *params]).fetchall()
