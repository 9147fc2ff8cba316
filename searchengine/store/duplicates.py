"""Near-duplicate groups and the signatures (perceptual hash, content thumbnail) they are found from.

Regrouping is a recorded step: whoever commits a change the groups depend on (vectors,
signatures, OCR text, deletions) marks the groups pending in the same transaction, and
only storing new groups clears the mark. The groups also remember the store generation
they were found at, so a vector change by any writer makes them pending too. A run that
dies between its last commit and regrouping leaves the mark, and the next run (or
``searchengine duplicates``) regroups although it has nothing else to do.

Pairs the user marked "not duplicates" are kept by content (the two files' sha256), not by
image id: the mark outlives a move, a re-index and a regrouping with other thresholds, and
every copy of a file shares it. Stored groups never hold such a pair (see :meth:`Duplicates.replace`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from searchengine.store.sql import now, rows_for

if TYPE_CHECKING:
    from searchengine.store.db import Store


#: Meta keys: the pending mark (a fresh token per mark) and the generation grouped at.
PENDING_KEY = "regroup_pending"
GROUPED_KEY = "grouped_generation"

#: Ids per query when reading the rows of many images.
ID_CHUNK = 50_000

#: A pair of image ids, smaller first.
Pair = tuple[int, int]

#: What the groups were found from: (pending token, store generation), see :meth:`Duplicates.state`.
GroupState = tuple[str | None, str]


class Duplicates:
    """The stored near-duplicate groups (group id: the smallest member id)."""

    def __init__(self, store: Store) -> None:
        self.store, self.db = store, store.db

    # -- is regrouping due? ---------------------------------------------------------
    def mark_pending(self) -> None:
        """Record that the groups must be found again (inside the caller's transaction, the
        one that commits the change)."""
        self.db.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", [PENDING_KEY, uuid.uuid4().hex]
        )

    def state(self) -> GroupState:
        """The pending token and generation now; read it in the snapshot the groups are found
        from and hand it to :meth:`replace`."""
        return self.store.get_meta(PENDING_KEY), self.store.generation()

    def pending(self) -> bool:
        """Tell whether a change since the stored groups were found awaits regrouping."""
        with self.store.snapshot():
            token, generation = self.state()
            return token is not None or self.store.get_meta(GROUPED_KEY) != generation

    def phashes(self) -> dict[int, str]:
        """Return the duplicate signature of every searchable image that has one (older
        versions stored a 16-hex-digit hash alone)."""
        rows = self.db.execute("SELECT id, phash FROM images WHERE status = 'ok' AND phash IS NOT NULL")
        return dict(rows.fetchall())

    def texts(self, ids: Sequence[int] | None = None) -> dict[int, str]:
        """Return the OCR text of every image that has some (with ``ids``: of those of them)."""
        if ids is None:
            return dict(self.db.execute("SELECT image_id, text FROM ocr WHERE text != ''").fetchall())
        out: dict[int, str] = {}
        for start in range(0, len(ids), ID_CHUNK):
            out.update(
                rows_for(
                    self.db,
                    ids[start : start + ID_CHUNK],
                    "SELECT image_id, text FROM ocr",
                    " AND text != ''",
                )
            )
        return out

    def signature_arrays(self, sig_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The ids (int64, ascending), 64-bit frame hashes ((N, 8) uint8) and content thumbnails
        ((N, 192) uint8) of every searchable image that has a vector and a signature of the
        current form (``sig_len`` hex characters): the images near duplicates are found
        among. Read in one snapshot, chunk by chunk into arrays allocated once: 200 bytes an
        image, not the signatures' text."""
        where = "FROM images WHERE status = 'ok' AND length(phash) = ? AND id IN "
        where += "(SELECT image_id FROM embeddings)"
        width = (sig_len - 1) // 2  # bytes: the hash, then the thumbnail (after the "-")
        with self.store.snapshot():
            n = self.db.execute("SELECT count(*) FROM images").fetchone()[0]  # at most; an index counts it
            ids, codes = np.empty(n, dtype=np.int64), np.empty((n, 8), dtype=np.uint8)
            thumbs = np.empty((n, width - 8), dtype=np.uint8)
            cursor = self.db.execute(f"SELECT id, phash {where} ORDER BY id", [sig_len])
            at = 0
            while batch := cursor.fetchmany(8192):  # 8,192 signatures as text: 4 MB at a time
                end = at + len(batch)
                ids[at:end] = [r[0] for r in batch]
                codes[at:end] = np.frombuffer(
                    bytes.fromhex("".join(r[1][:16] for r in batch)), np.uint8
                ).reshape(-1, 8)
                raw = bytes.fromhex("".join(r[1][17:] for r in batch))
                thumbs[at:end] = np.frombuffer(raw, np.uint8).reshape(len(batch), width - 8)
                at = end
        return ids[:at], codes[:at], thumbs[:at]  # untouched rows past ``at`` were never resident

    def stale(self, stage: str, tool: str) -> list[str]:
        """Return the paths of the searchable images whose ``stage`` (the duplicate signature)
        was computed by another tool than ``tool``, or whose signature is missing although
        the stage ran without error."""
        rows = self.db.execute(
            "SELECT i.path FROM images i JOIN stages s ON s.image_id = i.id AND s.stage = ? "
            "WHERE i.status = 'ok' AND (s.tool != ? OR (s.error IS NULL AND i.phash IS NULL)) ORDER BY i.id",
            [stage, tool],
        )
        return [r[0] for r in rows]

    def replace(self, groups: Sequence[Sequence[int]], params: dict, seen: GroupState | None = None) -> None:
        """Store near-duplicate groups (each a list of image ids) and how they were found.

        :param seen: the :meth:`state` the groups were found from: the pending mark is
            cleared only if no change marked it again since (a run committing meanwhile).
        """
        with self.db.atomic():
            self.db.execute("DELETE FROM duplicates")  # a write first: the write lock, waited for
            if seen is not None:
                token, generation = seen
                self.db.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", [GROUPED_KEY, generation]
                )
                if token is not None:
                    self.db.execute("DELETE FROM meta WHERE key = ? AND value = ?", [PENDING_KEY, token])
            self._insert(split_groups(groups, self.apart()))  # a mark made since they were found holds
            self.db["meta"].upsert({"key": "duplicates", "value": json.dumps(params)}, pk="key")

    def _insert(self, groups: Sequence[Sequence[int]]) -> None:
        self.db.conn.executemany(
            "INSERT INTO duplicates(image_id, group_id) VALUES (?, ?)",
            ((i, low) for group in groups for low in (min(group),) for i in group),
        )

    def groups(self) -> list[list[int]]:
        """Every group, members by id, groups by their smallest id."""
        groups: dict[int, list[int]] = {}
        for image_id, gid in self.db.execute(
            "SELECT image_id, group_id FROM duplicates ORDER BY group_id, image_id"
        ):
            groups.setdefault(gid, []).append(image_id)
        return list(groups.values())

    def of(self, ids: Sequence[int]) -> dict[int, list[int]]:
        """Return, for each of ``ids`` in a group, the other members of its group."""
        rows = rows_for(self.db, ids, "SELECT image_id, group_id FROM duplicates")
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

    # -- "not duplicates", as the user said ------------------------------------------
    def apart(self) -> set[Pair]:
        """Every pair of indexed images whose contents the user marked as not duplicates."""
        rows = self.db.execute(
            "SELECT x.id, y.id FROM not_duplicates n JOIN images x ON x.sha256 = n.a "
            "JOIN images y ON y.sha256 = n.b WHERE x.id != y.id"
        )
        return {(min(x, y), max(x, y)) for x, y in rows}

    def contents(self, ids: Sequence[int]) -> dict[int, str]:
        """The content hash (sha256) of each of ``ids`` that is a searchable image."""
        rows = self.db.execute(
            "SELECT id, sha256 FROM images WHERE id IN (SELECT value FROM json_each(?)) "
            "AND status = 'ok' AND sha256 IS NOT NULL",
            [json.dumps([int(i) for i in ids])],
        )
        return dict(rows.fetchall())

    def mark_apart(self, pairs: Sequence[tuple[str, str]]) -> int:
        """Remember that each pair of contents (sha256) is not a duplicate, and split the stored
        groups at once; returns how many pairs were new."""
        with self.store.writing():
            added = 0
            for a, b in pairs:
                cur = self.db.execute(
                    "INSERT OR IGNORE INTO not_duplicates(a, b, added_at) VALUES (?, ?, ?)",
                    [min(a, b), max(a, b), now()],
                )
                added += cur.rowcount
            groups = self.groups()
            self.db.execute("DELETE FROM duplicates")
            self._insert(split_groups(groups, self.apart()))
        return added

    def unmark_apart(self, pairs: Sequence[tuple[str, str]]) -> int:
        """Forget "not duplicates" marks; returns how many there were. The groups are marked
        pending: only finding them again can join those images."""
        with self.store.writing():
            gone = sum(
                self.db.execute(
                    "DELETE FROM not_duplicates WHERE a = ? AND b = ?", [min(a, b), max(a, b)]
                ).rowcount
                for a, b in pairs
            )
            if gone:
                self.mark_pending()
        return gone

    def apart_count(self) -> int:
        """How many pairs of contents are marked as not duplicates."""
        return self.db.execute("SELECT count(*) FROM not_duplicates").fetchone()[0]


def complete_groups(pairs: Sequence[Pair]) -> list[list[int]]:
    """Join linked pairs into groups, in the order given (closest first), only while every member
    of a group stays linked to every other one (complete linkage).

    :returns: groups of two or more ids, each sorted, groups sorted by first id.
    """
    linked = {(min(a, b), max(a, b)) for a, b in pairs}
    group: dict[int, list[int]] = {}
    for a, b in pairs:
        ga, gb = group.get(a, [a]), group.get(b, [b])
        if ga is gb or not all((min(x, y), max(x, y)) in linked for x in ga for y in gb):
            continue
        ga.extend(gb)
        for x in ga:
            group[x] = ga
    unique = {id(g): g for g in group.values()}
    return sorted((sorted(g) for g in unique.values()), key=lambda g: g[0])


def split_groups(groups: Sequence[Sequence[int]], apart: set[Pair]) -> list[list[int]]:
    """``groups`` (each complete) without the pairs marked ``apart``: a group holding such a pair
    splits into the complete groups its other pairs still form (members by id)."""
    if not apart:
        return sorted((sorted(g) for g in groups), key=lambda g: g[0])
    out: list[list[int]] = []
    for g in groups:
        g = sorted(g)
        pairs = [(x, y) for n, x in enumerate(g) for y in g[n + 1 :]]
        if not any(p in apart for p in pairs):
            out.append(g)
        else:
            out.extend(complete_groups([p for p in pairs if p not in apart]))
    return sorted(out, key=lambda g: g[0])
