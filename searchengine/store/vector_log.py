"""The log of vector changes that lets a saved FAISS index catch up instead of being rebuilt.

SQLite triggers append ``(seq, image_id, tag)`` to ``vector_log`` whenever an embedding is
inserted, replaced or deleted (schema 0006), in the same transaction as the change, so no
write path can change a vector without saying so. A saved index records the log's ``epoch``,
the last ``seq`` it reflects and that entry's random ``tag``; it is brought up to date by the
ids logged after that seq: their old vectors masked, their current ones (if any) searched
beside it. A log that started again (a repaired database: another epoch), was pruned past
the saved seq, or holds another entry at that seq (a database restored from a backup, or
rolled back by a crash, that wrote other changes since) cannot bring that index up to date,
and the index is rebuilt.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

EPOCH_KEY = "vector_log_epoch"
FLOOR_KEY = "vector_log_floor"
"""Meta: the last seq pruned from the log (entries up to it are gone) ..."""
FLOOR_TAG_KEY = "vector_log_floor_tag"
"""... and the tag that entry had."""


@dataclass(frozen=True)
class LogPosition:
    """Where the log stands: its ``epoch``, the last ``seq`` written and its ``tag``, the
    ``floor`` pruned to."""

    epoch: str | None
    seq: int
    tag: int | None
    floor: int


def position(conn) -> LogPosition:
    """Read where the log stands (inside the caller's snapshot, with the vectors it goes with)."""
    meta = _meta(conn)
    floor = int(meta.get(FLOOR_KEY) or 0)
    row = conn.execute("SELECT seq, tag FROM vector_log ORDER BY seq DESC LIMIT 1").fetchone()
    if row is None:
        return LogPosition(meta.get(EPOCH_KEY), floor, _int(meta.get(FLOOR_TAG_KEY)), floor)
    return LogPosition(meta.get(EPOCH_KEY), int(row[0]), int(row[1]), floor)


def continues(conn, pos: LogPosition, epoch, seq, tag) -> bool:
    """Whether an index saved at ``(epoch, seq, tag)`` can be brought up to date from the log
    at ``pos``: the same log, not pruned past ``seq``, and its entry at ``seq`` the same one."""
    if pos.epoch is None or epoch != pos.epoch or not isinstance(seq, int) or not pos.floor <= seq <= pos.seq:
        return False
    if seq == pos.seq:
        return tag == pos.tag
    if seq == pos.floor:
        return tag == _int(_meta(conn).get(FLOOR_TAG_KEY))
    row = conn.execute("SELECT tag FROM vector_log WHERE seq = ?", [seq]).fetchone()
    return row is not None and row[0] == tag


def state_continues(conn, state: dict) -> bool:
    """Whether the index a saved state file describes (its ``epoch``, ``seq`` and ``tag``) can be
    brought up to date from the log as it stands now (see :func:`continues`)."""
    return continues(conn, position(conn), state.get("epoch"), state.get("seq"), state.get("tag"))


def changed_since(conn, seq: int, upto: int) -> np.ndarray:
    """The distinct image ids whose vector changed after ``seq`` up to ``upto`` (sorted int64)."""
    rows = conn.execute(
        "SELECT DISTINCT image_id FROM vector_log WHERE seq > ? AND seq <= ?", [seq, upto]
    ).fetchall()
    return np.unique(np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)))


def count_since(conn, seq: int) -> int:
    """How many distinct images changed after ``seq``."""
    return int(
        conn.execute("SELECT count(DISTINCT image_id) FROM vector_log WHERE seq > ?", [seq]).fetchone()[0]
    )


def prune(conn, upto: int) -> int:
    """Drop the entries up to ``upto`` (a saved index reflects them), inside the caller's
    write transaction; returns how many went. Indexes saved before ``upto`` can no longer
    catch up from the log and are rebuilt. The floor never moves back."""
    meta = _meta(conn)
    if upto <= int(meta.get(FLOOR_KEY) or 0):
        return 0
    row = conn.execute("SELECT tag FROM vector_log WHERE seq = ?", [upto]).fetchone()
    if row is None:
        return 0  # not an entry of this log (a later one pruned it already)
    gone = conn.execute("DELETE FROM vector_log WHERE seq <= ?", [upto]).rowcount
    for key, value in ((FLOOR_KEY, str(upto)), (FLOOR_TAG_KEY, str(row[0]))):
        conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", [key, value])
    return gone


def restart(conn) -> None:
    """Start another log (a new epoch, nothing logged), inside the caller's transaction: for a
    database rebuilt by a repair, whose vectors no saved index can be trusted to match."""
    conn.execute("DELETE FROM vector_log")
    conn.execute(
        "INSERT OR REPLACE INTO meta(key, value) VALUES (?, lower(hex(randomblob(16))))", [EPOCH_KEY]
    )
    conn.execute("DELETE FROM meta WHERE key IN (?, ?)", [FLOOR_KEY, FLOOR_TAG_KEY])


def _meta(conn) -> dict[str, str]:
    keys = (EPOCH_KEY, FLOOR_KEY, FLOOR_TAG_KEY)
    return dict(conn.execute("SELECT key, value FROM meta WHERE key IN (?, ?, ?)", keys).fetchall())


def _int(value: str | None) -> int | None:
    return int(value) if value is not None else None
