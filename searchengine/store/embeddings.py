"""The embeddings table: one float32 vector per searchable image."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from searchengine.records import EncoderId

if TYPE_CHECKING:
    from searchengine.store.db import Store


CHUNK_ROWS = 4096  # rows per fetch: 6 MB of vectors at 384 dimensions


def _fill(rows: list, ids: np.ndarray, vecs: np.ndarray) -> None:
    """Copy fetched ``(image_id, blob)`` rows into ``ids`` and ``vecs`` (views of the same length)."""
    dim = vecs.shape[1]
    for n, (image_id, blob) in enumerate(rows):
        ids[n] = image_id
        vecs[n] = np.frombuffer(blob, dtype=np.float32).reshape(dim)  # a short blob fails, never broadcasts


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

    def count(self) -> int:
        """How many embeddings are stored."""
        return int(self.db.execute("SELECT count(*) FROM embeddings").fetchone()[0])

    def chunks(self, dim: int, rows: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(ids int64 (r,), vectors float32 (r, dim))`` of every embedding by id, ``rows``
        (default :data:`CHUNK_ROWS`) at a time, so that a reader holds one chunk rather than
        the whole table (call it inside :meth:`Store.snapshot` for one consistent view).

        :raises ValueError: a stored vector is not ``dim`` float32 values.
        """
        cursor = self.db.execute("SELECT image_id, vector FROM embeddings ORDER BY image_id")
        while batch := cursor.fetchmany(rows or CHUNK_ROWS):
            ids = np.empty(len(batch), dtype=np.int64)
            vecs = np.empty((len(batch), dim), dtype=np.float32)
            _fill(batch, ids, vecs)
            yield ids, vecs

    def all(self, dim: int) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(ids int64 (N,), vectors float32 (N, dim))`` of every embedding, by id.

        Read in one snapshot, streamed chunk by chunk into arrays allocated once: the peak is
        one copy of the vectors plus a chunk of rows (not every row and their joined bytes).

        :raises ValueError: a stored vector is not ``dim`` float32 values.
        """
        with self.store.snapshot():
            n = self.count()
            ids = np.empty(n, dtype=np.int64)
            vecs = np.empty((n, dim), dtype=np.float32)
            cursor = self.db.execute("SELECT image_id, vector FROM embeddings ORDER BY image_id")
            at = 0
            while batch := cursor.fetchmany(CHUNK_ROWS):
                _fill(batch, ids[at : at + len(batch)], vecs[at : at + len(batch)])
                at += len(batch)
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
