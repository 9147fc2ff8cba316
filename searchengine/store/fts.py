"""The keyword index: one FTS5 document per image, its columns and their BM25 weights.

The document of an image is rebuilt from its current rows whenever anything in it
changes (an index run, a catalogue import, a user tag). Letters and digits are split
apart in every column (:func:`searchengine.text.split_letters_digits`) exactly as in
queries, so codes match however they are typed.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from searchengine.text import name_and_folder, split_letters_digits

if TYPE_CHECKING:
    from searchengine.query import ParsedQuery

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


# -- BM25 top-k without scoring every match ----------------------------------------------
#
# FTS5's bm25() scores every row the MATCH expression finds, and a query's words are common
# in a shop catalogue ("men" is in half of it): at 100k images a query scored 50k rows, at
# 1M 500k. The ranking below gives the same ids, order and scores from far fewer rows. It
# reproduces fts5_aux.c's bm25 exactly (the same IEEE operations in the same order, so the
# same doubles): for phrase i of the expression, in expression order,
#
#   score += idf_i * (f_i * (K1 + 1)) / (f_i + K1 * (1 - B + B * D / avgdl))
#
# with f_i the phrase's instances in the row, each counted with its column's weight, D the
# row's tokens (all columns), avgdl and idf_i = log((N - n_i + 0.5) / (n_i + 0.5)) (at least
# 1e-6) from the whole table. A phrase adds less than mult * idf * (K1 + 1) (its copies
# times that), so rows are read by "signature" (exactly which of the query's words they
# hold), the richest bound first, and the search stops when the page's last score beats
# the bound of every signature not read yet: the result is then exact. A budget of rows
# caps the work; a search that reaches it before that proof returns the best of the rows
# it scored and says it is not exact (:meth:`Bm25Ranker.top`).

K1, B = 1.2, 0.75
#: Signatures are the non-empty subsets of a query's distinct words: up to 63 for six.
MAX_WORDS = 6
#: Rows read from FTS5 (ids only, cheap) and rows scored (in Python, costly) per search.
FETCH_BUDGET, SCORE_BUDGET = 20_000, 1_500
#: Ids read from FTS5 at a time within one signature.
CHUNK = 1000
#: A filtered search whose first this many ids kept fewer than SCORE_BUDGET / FETCH_BUDGET
#: of them would spend its budgets on a thin sample: it says so (:data:`THIN`) instead.
THIN_AFTER = 2 * CHUNK
#: What a page of :meth:`Bm25Ranker.top` is: FTS5's own ranking; the best of the rows scored
#: (each score exact, a row not read may be missing); a sample too thin to keep.
EXACT, BEST, THIN = "exact", "best", "thin"
_AVERAGES_ROWID, _STRUCTURE_ROWID = 1, 10  # FTS5's own records in <table>_data
_MARK = "\x02"


def _varints(blob: bytes) -> list[int]:
    """Decode SQLite varints (FTS5's averages and docsize records are sequences of them)."""
    out, i = [], 0
    while i < len(blob):
        value = 0
        for j in range(9):
            byte = blob[i]
            i += 1
            if j == 8:
                value = (value << 8) | byte
                break
            value = (value << 7) | (byte & 0x7F)
            if byte < 0x80:
                break
        out.append(value)
    return out


def _plain(text: object) -> bool:
    """True for a column that :meth:`Bm25Ranker._plain_counts` reads as FTS5 does: none, or
    ASCII text without the NUL and mark characters it uses itself."""
    return text is None or (
        isinstance(text, str) and text.isascii() and "\x00" not in text and _MARK not in text
    )


def _phrase(tokens: tuple[str, ...]) -> str:
    return '"' + " ".join(tokens) + '"'


def _instance_pattern(tokens: tuple[str, ...]) -> re.Pattern:
    """The instances of a phrase in lower-cased ASCII text: its tokens, whole, separated by
    anything but letters, digits and NUL (matches do not overlap: see :func:`_overlaps_itself`).
    A single word starts with its letters (the regex engine then looks for them fast) and
    checks the character before it afterwards."""
    if len(tokens) == 1:
        word = re.escape(tokens[0])
        return re.compile(f"{word}(?![0-9a-z])(?<![0-9a-z]{word})")
    return re.compile(r"(?<![0-9a-z])" + "[^0-9a-z\x00]+".join(map(re.escape, tokens)) + r"(?![0-9a-z])")


def _overlaps_itself(tokens: tuple[str, ...]) -> bool:
    """True when two instances of the phrase can overlap ("a a" in "a a a"): FTS5 counts
    both, highlight() marks one span, so such a phrase is not counted here."""
    return any(tokens[:n] == tokens[-n:] for n in range(1, len(tokens)))


@dataclass(frozen=True, slots=True)
class KeywordQuery:
    """A query's keyword expression as phrases: the OR'ed ones in expression order (a
    weighted word repeated, as :meth:`~searchengine.query.ParsedQuery.fts_match` writes it)
    and the excluded ones. Tokens are lower case ASCII, as FTS5 folds them."""

    phrases: tuple[tuple[str, ...], ...]
    negative: tuple[tuple[str, ...], ...] = ()

    @classmethod
    def of(cls, parsed: ParsedQuery) -> KeywordQuery | None:
        """The query's phrases, or None when :class:`Bm25Ranker` cannot rank it exactly as
        FTS5 does: quoted phrases that every result must hold, a word that is not ASCII,
        a phrase that can overlap itself, more than :data:`MAX_WORDS` distinct words, or
        an expression that is not the one ``parsed.fts_match()`` gives."""
        if parsed.required:
            return None
        optional = [t for t in parsed.positive if t.content] or parsed.positive
        phrases: list[tuple[str, ...]] = []
        for t in optional:
            phrases += [tuple(w.lower() for w in t.tokens)] * min(5, max(1, round(t.weight)))
        negative = tuple(tuple(w.lower() for w in t.tokens) for t in parsed.negative)
        words = [w for p in (*phrases, *negative) for w in p]
        if not phrases or not all(w.isascii() for w in words) or len(set(phrases)) > MAX_WORDS:
            return None
        if any(_overlaps_itself(p) for p in phrases):
            return None
        query = cls(tuple(phrases), negative)
        return query if query.match().lower() == (parsed.fts_match() or "").lower() else None

    def match(self) -> str:
        """The FTS5 expression of the whole query (every row it finds has a score)."""
        expr = "(" + " OR ".join(_phrase(p) for p in self.phrases) + ")"
        if self.negative:
            expr += " NOT (" + " OR ".join(_phrase(p) for p in self.negative) + ")"
        return expr

    def signature_match(self, present: Sequence[tuple[str, ...]]) -> str:
        """The FTS5 expression of the rows holding exactly the distinct phrases ``present``."""
        absent = [p for p in dict.fromkeys(self.phrases) if p not in present] + list(self.negative)
        expr = "(" + " AND ".join(_phrase(p) for p in present) + ")"
        return expr + (" NOT (" + " OR ".join(_phrase(p) for p in absent) + ")" if absent else "")


def _page(
    pool: list[tuple[int, float]], k: int, passing: Callable[[list[int]], list[int]], known: dict[int, bool]
) -> tuple[list[tuple[int, float]], int]:
    """The first ``k`` rows of ``pool`` that pass, and how far into it they reach; ``passing``
    is asked only about rows not in ``known`` that it must see, a few at a time."""
    page, start = [], 0
    while len(page) < k and start < len(pool):
        window = pool[start : start + 2 * (k - len(page))]
        unknown = [i for i, _ in window if i not in known]
        if unknown:
            kept = set(passing(unknown))
            known.update((i, i in kept) for i in unknown)
        for n, hit in enumerate(window):
            if known[hit[0]]:
                page.append(hit)
                if len(page) == k:
                    return page, start + n + 1
        start += len(window)
    return page, len(pool)


@dataclass(frozen=True, slots=True)
class _Totals:
    """What bm25() reads of the whole table, at one version of the index: its rows, their
    average tokens, and each phrase's row count as far as asked."""

    version: tuple | None
    rows: int
    avgdl: float
    counts: dict[tuple[str, ...], int]


class Bm25Ranker:
    """FTS5's BM25 ranking of a :class:`KeywordQuery` (``-bm25(table, *weights)``, ties by
    rowid) from the rows that can reach the page, not from every match (see above).

    Each phrase's row count (its idf) is kept until the keyword index changes: FTS5 counts
    a phrase by reading its whole posting list, at 1M images about 10 ms for a common word.
    """

    def __init__(self, conn: sqlite3.Connection, table: str = "search_fts") -> None:
        self.conn, self.table = conn, table
        self.weights = tuple(COLUMN_WEIGHTS.values())
        self.totals = _Totals(None, 0, 0.0, {})

    @property
    def rows(self) -> int:
        """Rows in the table when :meth:`refresh` last read it."""
        return self.totals.rows

    def refresh(self) -> None:
        """Read the table's row and token totals (FTS5's averages record, what bm25() reads);
        forget the phrase counts when the index changed (that record or the structure one).
        A search keeps the totals it started with (one object, replaced whole)."""
        blocks = dict(
            self.conn.execute(
                f"SELECT id, block FROM {self.table}_data WHERE id IN (?, ?)",
                [_AVERAGES_ROWID, _STRUCTURE_ROWID],
            )
        )
        version = (blocks.get(_AVERAGES_ROWID), blocks.get(_STRUCTURE_ROWID))
        if version != self.totals.version:
            totals = _varints(version[0] or b"")
            rows = totals[0] if totals else 0
            self.totals = _Totals(version, rows, float(sum(totals[1:])) / float(rows) if rows else 0.0, {})

    def idf(self, phrase: tuple[str, ...], totals: _Totals | None = None) -> float:
        """The phrase's idf as bm25() computes it from the rows holding it."""
        totals = totals or self.totals
        n = totals.counts.get(phrase)
        if n is None:
            sql = f"SELECT count(*) FROM {self.table} WHERE {self.table} MATCH ?"
            n = totals.counts[phrase] = self.conn.execute(sql, [_phrase(phrase)]).fetchone()[0]
        idf = math.log((totals.rows - n + 0.5) / (n + 0.5))
        return idf if idf > 0.0 else 1e-6

    def top(
        self, query: KeywordQuery, k: int, passing: Callable[[list[int]], list[int]], prefilter: bool = True
    ) -> tuple[list[tuple[int, float]], str]:
        """Return the ``k`` best ``(rowid, score)`` among rows that ``passing`` keeps, and
        what that page is. Rows are read signature by signature, richest bound first, until
        the k-th score beats every bound left or every signature is read (:data:`EXACT`),
        the budgets run out (:data:`BEST`: the best rows scored, each score exact), or, with
        ``prefilter``, the filter keeps so few of the first rows read that the budgets would
        leave a thin sample (:data:`THIN`: better ranked in full).

        :param passing: the ids, of those given, that may be returned, in the order given.
        :param prefilter: ask ``passing`` before scoring (a filter that drops many rows);
            False asks it only about rows that would enter the page (drops few).
        """
        totals = self.totals
        if k <= 0:
            return [], EXACT
        distinct = list(dict.fromkeys(query.phrases))
        bound = {p: query.phrases.count(p) * self.idf(p, totals) * (K1 + 1.0) for p in distinct}
        signatures = sorted(
            (s for n in range(len(distinct), 0, -1) for s in itertools.combinations(distinct, n)),
            key=lambda s: -sum(bound[p] for p in s),
        )
        pool: list[tuple[int, float]] = []  # rows scored, best first, as far as the page may reach
        known: dict[int, bool] = {}  # rows asked of passing
        page: list[tuple[int, float]] = []
        fetched = scored = 0
        t = self.table
        sql = f"SELECT rowid FROM {t} WHERE {t} MATCH ? AND rowid > ? ORDER BY rowid LIMIT ?"
        for present in signatures:
            reach = sum(bound[p] for p in present) * (1 + 1e-9)  # every row of this signature scores less
            expr, after, more = query.signature_match(present), -(1 << 63), True
            while more:
                if len(page) >= k and page[k - 1][1] > reach:
                    return page, EXACT  # no row left, here or in a later signature, reaches the page
                if prefilter and fetched >= THIN_AFTER and scored * FETCH_BUDGET < fetched * SCORE_BUDGET:
                    return page, THIN
                room = min(CHUNK, FETCH_BUDGET - fetched)
                if room <= 0 or scored >= SCORE_BUDGET:
                    return page, BEST
                ids = [r[0] for r in self.conn.execute(sql, [expr, after, room])]
                more, fetched, after = len(ids) == room, fetched + len(ids), ids[-1] if ids else after
                if prefilter:
                    ids = passing(ids)
                    known.update(dict.fromkeys(ids, True))
                cut = len(ids) > SCORE_BUDGET - scored
                ids = ids[: SCORE_BUDGET - scored]
                scored += len(ids)
                pool = sorted([*pool, *self.scores(ids, query, totals).items()], key=lambda h: (-h[1], h[0]))
                page, end = _page(pool, k, passing, known)
                pool = pool[:end]
                if cut:  # rows of this signature left unscored
                    return page, EXACT if len(page) >= k and page[k - 1][1] > reach else BEST
        return page, EXACT

    def scores(
        self, ids: Sequence[int], query: KeywordQuery, totals: _Totals | None = None
    ) -> dict[int, float]:
        """Each row's ``-bm25()`` for the query's expression, computed as fts5_aux.c does:
        float64 operations in its order, one row per array element."""
        if not ids:
            return {}
        distinct = list(dict.fromkeys(query.phrases))
        columns = ", ".join(f"c.c{i}" for i in range(len(self.weights)))
        rows = self.conn.execute(
            f"SELECT c.id, d.sz, {columns} FROM {self.table}_content c "
            f"JOIN {self.table}_docsize d ON d.id = c.id WHERE c.id IN (SELECT value FROM json_each(?))",
            [json.dumps([int(i) for i in ids])],
        ).fetchall()
        if all(map(_plain, ("".join(x or "" for r in rows for x in r[2:]),))):  # the usual case, at once
            plain, other = rows, []
        else:
            plain = [r for r in rows if all(map(_plain, r[2:]))]
            other = [r for r in rows if not all(map(_plain, r[2:]))]
        counts = self._plain_counts(plain, distinct)
        for p, found in self._fts_counts(other, distinct).items():
            counts[p] = np.concatenate([counts[p], found])
        rows = plain + other
        size = np.array([float(sum(sz) if sz.isascii() else sum(_varints(sz))) for _, sz, *_ in rows])
        freq = {p: self._weighted(counts[p]) for p in distinct}
        totals = totals or self.totals
        norm = K1 * (1 - B + B * size / totals.avgdl)
        score = np.zeros(len(rows))
        for p in query.phrases:
            score = score + self.idf(p, totals) * ((freq[p] * (K1 + 1.0)) / (freq[p] + norm))
        out = dict(zip((r[0] for r in rows), score.tolist(), strict=True))
        with_nul = [r[0] for r in other if any(isinstance(x, str) and "\x00" in x for x in r[2:])]
        if with_nul:  # highlight() stops at a NUL: FTS5's own bm25() scores these few rows
            out.update(self._fts_scores(with_nul, query))
        return out

    def _fts_scores(self, ids: list[int], query: KeywordQuery) -> dict[int, float]:
        """FTS5's own ``-bm25()`` of ``ids`` for the query (slow per row: for rare rows only)."""
        rows = self.conn.execute(
            f"SELECT rowid, {bm25_expression(self.table)} FROM {self.table} WHERE {self.table} MATCH ? "
            "AND rowid IN (SELECT value FROM json_each(?))",
            [query.match(), json.dumps(ids)],
        )
        return {int(r[0]): float(r[1]) for r in rows}

    def _weighted(self, counts: np.ndarray) -> np.ndarray:
        """A phrase's frequency in each row: its instances (rows x columns) added one by one
        with their column's weight, columns in order, as bm25() adds them (so the same sum)."""
        freq = np.zeros(len(counts))
        for c, weight in enumerate(self.weights):
            for n in range(int(counts[:, c].max(initial=0))):
                freq = freq + np.where(counts[:, c] > n, weight, 0.0)
        return freq

    def _plain_counts(self, rows: list, distinct: list[tuple[str, ...]]) -> dict[tuple[str, ...], np.ndarray]:
        """Instances of each phrase per row and column (rows x columns) in rows whose text is
        ASCII (:func:`_plain`), where FTS5's unicode61 tokenizer is exactly this: runs of ASCII
        letters and digits, lower-cased. All rows' columns are joined into one text, NUL
        between columns; each instance is marked in one pass and counted by column."""
        ncols = len(self.weights)
        text = "\x00".join(x or "" for r in rows for x in r[2:]).lower()
        out = {}
        for p in distinct:
            marked = np.frombuffer(_instance_pattern(p).sub(_MARK, text).encode("ascii"), dtype=np.uint8)
            column = np.cumsum(marked == 0)[marked == ord(_MARK)]
            out[p] = np.bincount(column, minlength=len(rows) * ncols).reshape(len(rows), ncols)
        return out

    def _fts_counts(self, rows: list, distinct: list[tuple[str, ...]]) -> dict[tuple[str, ...], np.ndarray]:
        """Instances of each phrase per row and column in rows with other text, as FTS5 finds
        them: highlight() marks each one (phrases that overlap themselves are never asked)."""
        ncols = len(self.weights)
        out = {p: np.zeros((len(rows), ncols), dtype=np.int64) for p in distinct}
        if not rows:
            return out
        at = {r[0]: n for n, r in enumerate(rows)}
        marked = ", ".join(f"highlight({self.table}, {c}, ?, '')" for c in range(ncols))
        sql = (
            f"SELECT rowid, {marked} FROM {self.table} WHERE {self.table} MATCH ? "
            "AND rowid IN (SELECT value FROM json_each(?))"
        )
        for p in distinct:
            for image_id, *columns in self.conn.execute(
                sql, [*[_MARK] * ncols, _phrase(p), json.dumps(list(at))]
            ):
                before = rows[at[image_id]][2:]
                for c, (text, was) in enumerate(zip(columns, before, strict=True)):
                    was = was if isinstance(was, str) else ""
                    out[p][at[image_id], c] = (text or "").count(_MARK) - was.count(_MARK)
        return out
