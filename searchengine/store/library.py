"""What users and imports add to images: metadata fields, user tags, collections."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from searchengine.records import Library as LibraryRecord
from searchengine.store.fts import refresh_document
from searchengine.store.sql import now, rows_for

if TYPE_CHECKING:
    from searchengine.store.db import Store


class Library:
    """Metadata (with provenance), user tags and named collections; every change keeps
    the image's keyword document in step."""

    def __init__(self, store: Store) -> None:
        self.store, self.db = store, store.db

    # -- metadata -------------------------------------------------------------------
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
                refresh_document(self.db.conn, image_id)

    def metadata_of(self, ids: Sequence[int]) -> dict[int, dict[str, str]]:
        """Return each image's metadata fields (key -> value)."""
        out: dict[int, dict[str, str]] = {}
        for image_id, key, value in rows_for(self.db, ids, "SELECT image_id, key, value FROM metadata"):
            out.setdefault(image_id, {})[key] = value
        return out

    def sources_of(self, ids: Sequence[int]) -> dict[int, dict[str, str]]:
        """Return, per image, which import each of its fields came from (key -> source)."""
        out: dict[int, dict[str, str]] = {}
        for image_id, key, source in rows_for(self.db, ids, "SELECT image_id, key, source FROM metadata"):
            out.setdefault(image_id, {})[key] = source
        return out

    def facets(
        self, ids: Sequence[int], keys: Sequence[str], top: int = 20
    ) -> dict[str, list[tuple[str, int]]]:
        """Count each field's values among ``ids`` (a result set), most frequent first."""
        out: dict[str, list[tuple[str, int]]] = {k: [] for k in keys}
        if not keys:
            return out
        marks = ",".join("?" * len(keys))
        rows = rows_for(
            self.db,
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

    def field_kinds(self, keys: Sequence[str]) -> dict[str, bool]:
        """Return, for each of ``keys`` some image has, whether any of its values is a number."""
        out = {}
        for key in dict.fromkeys(keys):
            has, numeric = self.db.execute(
                "SELECT EXISTS (SELECT 1 FROM metadata WHERE key = ?), "
                "EXISTS (SELECT 1 FROM metadata WHERE key = ? AND num IS NOT NULL)",
                [key, key],
            ).fetchone()
            if has:
                out[key] = bool(numeric)
        return out

    def of(self, image_id: int) -> LibraryRecord:
        """What users and imports added to one image, and the ids of its near duplicates."""
        return LibraryRecord(
            metadata=self.metadata_of([image_id]).get(image_id, {}),
            metadata_sources=self.sources_of([image_id]).get(image_id, {}),
            user_tags=tuple(self.user_tags(image_id)),
            collections=tuple(self.collections_of(image_id)),
            duplicates=tuple(self.store.duplicates.of([image_id]).get(image_id, [])),
        )

    # -- user tags ------------------------------------------------------------------
    def user_tags(self, image_id: int) -> list[str]:
        return self.user_tags_of([image_id]).get(image_id, [])

    def user_tags_of(self, ids: Sequence[int]) -> dict[int, list[str]]:
        """Return each image's user tags, sorted."""
        out: dict[int, list[str]] = {}
        for image_id, tag in rows_for(self.db, ids, "SELECT image_id, tag FROM user_tags", " ORDER BY tag"):
            out.setdefault(image_id, []).append(tag)
        return out

    def add_tags(self, image_id: int, tags: Sequence[str]) -> None:
        with self.db.atomic():
            for tag in tags:
                self.db.execute(
                    "INSERT OR IGNORE INTO user_tags(image_id, tag, added_at) VALUES (?,?,?)",
                    [image_id, tag, now()],
                )
            refresh_document(self.db.conn, image_id)

    def remove_tags(self, image_id: int, tags: Sequence[str]) -> int:
        with self.db.atomic():
            gone = sum(
                self.db.execute(
                    "DELETE FROM user_tags WHERE image_id = ? AND lower(tag) = lower(?)", [image_id, t]
                ).rowcount
                for t in tags
            )
            refresh_document(self.db.conn, image_id)
        return gone

    # -- collections ----------------------------------------------------------------
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
                "INSERT OR IGNORE INTO collections(name, created_at) VALUES (?, ?)", [name, now()]
            )
            cid = self.db.execute("SELECT id FROM collections WHERE name = ?", [name]).fetchone()[0]
            return sum(
                self.db.execute(
                    "INSERT OR IGNORE INTO collection_items(collection_id, image_id, added_at) "
                    "VALUES (?,?,?)",
                    [cid, int(i), now()],
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

    # -- many images at once (the page's selection) -----------------------------------
    def tag_images(self, ids: Sequence[int], add: Sequence[str] = (), remove: Sequence[str] = ()) -> int:
        """Add and remove user tags on many images in one transaction; returns how many
        (image, tag) pairs changed. A tag an image already has in any case is not added again;
        removal ignores case, as :meth:`remove_tags`."""
        changed = 0
        with self.db.atomic():
            for image_id in dict.fromkeys(int(i) for i in ids):
                for tag in add:
                    changed += self.db.execute(
                        "INSERT INTO user_tags(image_id, tag, added_at) SELECT ?, ?, ? WHERE NOT EXISTS "
                        "(SELECT 1 FROM user_tags WHERE image_id = ? AND lower(tag) = lower(?))",
                        [image_id, tag, now(), image_id, tag],
                    ).rowcount
                for tag in remove:
                    changed += self.db.execute(
                        "DELETE FROM user_tags WHERE image_id = ? AND lower(tag) = lower(?)", [image_id, tag]
                    ).rowcount
                refresh_document(self.db.conn, image_id)
        return changed
