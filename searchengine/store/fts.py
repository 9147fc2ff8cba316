"""The keyword index: one FTS5 document per image, its columns and their BM25 weights.

The document of an image is rebuilt from its current rows whenever anything in it
changes (an index run, a catalogue import, a user tag). Letters and digits are split
apart in every column (:func:`searchengine.text.split_letters_digits`) exactly as in
queries, so codes match however they are typed.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable

from searchengine.text import name_and_folder, split_letters_digits

#: The FTS5 columns, in table order, with their BM25 weights: a word in the file name
#: counts double, in product metadata one and a half, in the folder path half.
COLUMN_WEIGHTS: dict[str, float] = {
    "name": 2.0,
    "folder": 0.5,
    "caption": 1.0,
    "tags": 1.0,
    "ocr": 1.0,
    "meta": 1.5,
}
COLUMNS = tuple(COLUMN_WEIGHTS)


def bm25_expression(table: str = "search_fts") -> str:
    """The SQL that scores a MATCH row, higher is better (negated BM25 with the column weights)."""
    return f"-bm25({table}, {', '.join(str(w) for w in COLUMN_WEIGHTS.values())})"


def document_sql() -> str:
    """The SQL expression that joins every column of a row into one text."""
    return " || ' ' || ".join(COLUMNS)


def refresh_document(conn: sqlite3.Connection, image_id: int) -> None:
    """Rebuild the keyword document of one image from its current rows.

    Fields: file name, folder (below the indexed root), caption, caption and user
    tags, OCR text, metadata values. An image that no longer exists loses its document.
    """
    row = conn.execute(
        "SELECT i.path, i.root, coalesce(c.text, ''), coalesce(c.tags, '[]'), coalesce(o.text, '') "
        "FROM images i LEFT JOIN captions c ON c.image_id = i.id "
        "LEFT JOIN ocr o ON o.image_id = i.id WHERE i.id = ?",
        [image_id],
    ).fetchone()
    conn.execute("DELETE FROM search_fts WHERE rowid = ?", [image_id])
    if row is None:
        return
    path, root, caption, tags, ocr = row
    user = [
        t for (t,) in conn.execute("SELECT tag FROM user_tags WHERE image_id = ? ORDER BY tag", [image_id])
    ]
    meta = [
        v for (v,) in conn.execute("SELECT value FROM metadata WHERE image_id = ? ORDER BY key", [image_id])
    ]
    name, folder = name_and_folder(path, root)
    fields = (name, folder, caption, " ".join(json.loads(tags) + user), ocr, "\n".join(meta))
    conn.execute(
        f"INSERT INTO search_fts(rowid, {', '.join(COLUMNS)}) VALUES (?,?,?,?,?,?,?)",
        [image_id, *(split_letters_digits(t) for t in fields)],
    )


def refresh_all(conn: sqlite3.Connection, progress: Callable[[int, int], None] | None = None) -> int:
    """Rebuild every image's keyword document (:func:`refresh_document`); returns how many.

    :param progress: called with (done, total) every 5,000 documents.
    """
    ids = [r[0] for r in conn.execute("SELECT id FROM images ORDER BY id")]
    for n, image_id in enumerate(ids, 1):
        refresh_document(conn, image_id)
        if progress and n % 5000 == 0:
            progress(n, len(ids))
    return len(ids)
