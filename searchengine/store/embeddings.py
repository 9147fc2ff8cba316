"""The embeddings table: one float32 vector per searchable image."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from searchengine.records import EncoderId

if TYPE_CHECKING:
    from searchengine.store.db import Store


class Embeddings:
    """Reads and swaps of stored vectors (float32 little-endian, unit norm)."""

    def __init__(self, store: Store) -> None:
        self.store, self.db = store, store.db

    def for_hash(self, sha256: str) -> bytes | None:
        """Return a stored embedding of a file with this content, if any (moves, copies)."""
        row = self.db.execute(
            "SELECT e.vector FROM images i JOIN embeddings e ON e.image_id = i.id WHERE i.sha256 = ? LIMIT 1",
            [sha256],
        ).fetchone()
        return row[0] if row else None

    def of(self, image_id: int, dim: int) -> np.ndarray | None:
        """Return the stored embedding of one image, float32 (dim,), or None."""
        row = self.db.execute("SELECT vector FROM embeddings WHERE image_id = ?", [image_id]).fetchone()
        return np.frombuffer(row[0], dtype=np.float32).reshape(dim).copy() if row else None

    def of_many(self, image_ids: Sequence[int], dim: int) -> tuple[np.ndarray, np.ndarray]:
        """Return the stored embeddings of ``image_ids``, float32 (len, dim), in that order, and
        which were found (bool (len,); a row of zeros for an id without one)."""
        out = np.zeros((len(image_ids), dim), dtype=np.float32)
        found = np.zeros(len(image_ids), dtype=bool)
        where = {i: n for n, i in enumerate(image_ids)}
        for start in range(0, len(image_ids), 500):
            chunk = list(image_ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT image_id, vector FROM embeddings WHERE image_id IN ({marks})"
            rows = self.db.execute(sql, chunk)
            for image_id, blob in rows.fetchall():
                out[where[image_id]] = np.frombuffer(blob, dtype=np.float32)
                found[where[image_id]] = True
        return out, found

    def all(self, dim: int) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(ids int64 (N,), vectors float32 (N, dim))`` of every embedding, by id."""
        rows = self.db.execute("SELECT image_id, vector FROM embeddings ORDER BY image_id").fetchall()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dim)
        return ids, vecs

    def replace(
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
            self.store.write_encoder(enc)
            self.store.bump_generation()
