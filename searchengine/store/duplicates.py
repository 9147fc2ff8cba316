"""Near-duplicate groups and the signatures (perceptual hash, content thumbnail) they are found from.

Regrouping is a recorded step: whoever commits a change the groups depend on (vectors,
signatures, OCR text, deletions) marks the groups pending in the same transaction, and
only storing new groups clears the mark. The groups also remember the store generation
they were found at, so a vector change by any writer makes them pending too. A run that
dies between its last commit and regrouping leaves the mark, and the next run (or
``searchengine duplicates``) regroups although it has nothing else to do.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from searchengine.store.sql import rows_for

if TYPE_CHECKING:
    from searchengine.store.db import Store


#: Meta keys: the pending mark (a fresh token per mark) and the generation grouped at.
PENDING_KEY = "regroup_pending"
GROUPED_KEY = "grouped_generation"

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

    def texts(self) -> dict[int, str]:
        """Return the OCR text of every image that has some."""
        return dict(self.db.execute("SELECT image_id, text FROM ocr WHERE text != ''").fetchall())

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
            for group in groups:
                gid = min(group)
                for image_id in group:
                    self.db.execute(
                        "INSERT INTO duplicates(image_id, group_id) VALUES (?, ?)", [image_id, gid]
                    )
            self.db["meta"].upsert({"key": "duplicates", "value": json.dumps(params)}, pk="key")

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
