"""The signature ranker (:class:`searchengine.store.fts.Bm25Ranker`) against FTS5's own
``bm25()``: the same ids, order and scores (bit for bit) on random corpora, and a page
it calls exact only when it is."""

from __future__ import annotations

import random

import pytest

from searchengine.query import parse_query
from searchengine.records import Filters
from searchengine.search import legs
from searchengine.store import fts, text
from searchengine.store.db import Store
from searchengine.store.fts import Bm25Ranker, KeywordQuery
from searchengine.store.sql import now

COMMON = ["men", "women", "shirt", "blue", "casual"]  # in most documents
RARE = ["nike", "puma", "check", "solid", "denim", "socks", "watch", "slim", "navy", "red"]
ODD = ["Café", "café", "CAFE", "straße", "naïve", "İstanbul", "ÉTÉ", "x\x02y"]  # FTS5 decides these
CODES = ["QX-7781-B", "qx7781b", "INV2018", "25/12/2018", "snake_case", "A1B2"]
PNG_EVERY = 3


def _field(rng: random.Random, odd: bool) -> str:
    words = rng.choices(COMMON, k=rng.randint(0, 4)) + rng.choices(RARE, k=rng.randint(0, 3))
    words += rng.choices(CODES, k=rng.randint(0, 1))
    if odd and rng.random() < 0.5:
        words.append(rng.choice(ODD))
    rng.shuffle(words)
    seps = [" ", "  ", ", ", "\n", "-", "/"]
    return "".join(w.upper() if rng.random() < 0.2 else w for w in _join(words, seps, rng))


def _join(words: list[str], seps: list[str], rng: random.Random):
    for n, w in enumerate(words):
        if n:
            yield rng.choice(seps)
        yield w


def _corpus(tmp_path, seed: int, n: int = 300) -> Store:
    """``n`` images with random keyword documents (a tenth with accents and the like, a
    twentieth failed), written straight into the tables the keyword leg reads."""
    rng = random.Random(seed)
    store = Store(tmp_path / f"idx{seed}")
    with store.writing():
        for i in range(1, n + 1):
            status = "failed" if rng.random() < 0.05 else "ok"
            fmt = "PNG" if i % PNG_EVERY == 0 else "JPEG"
            store.db.execute(
                "INSERT INTO images(id, path, root, size, mtime_ns, format, status, indexed_at) "
                "VALUES (?, ?, '/r', ?, 0, ?, ?, ?)",
                [i, f"/r/{i}.jpg", 1000 + i, fmt, status, now()],
            )
            odd = rng.random() < 0.1
            fields = [_field(rng, odd) if rng.random() < 0.8 else "" for _ in fts.COLUMNS]
            store.db.execute(
                f"INSERT INTO search_fts(rowid, {', '.join(fts.COLUMNS)}) VALUES (?,?,?,?,?,?,?)",
                [i, *fields],
            )
    return store


def _queries(seed: int, count: int = 40) -> list[str]:
    rng = random.Random(seed + 1000)
    out = []
    for _ in range(count):
        words = rng.sample(COMMON + RARE, rng.randint(1, 4)) + rng.choices(CODES, k=rng.random() < 0.2)
        words = [f"{rng.choice([2, 3])}:{w}" if rng.random() < 0.15 else w for w in words]
        if rng.random() < 0.15:
            words.append("-" + rng.choice(RARE))
        out.append(" ".join(words))
    return out


def _passing(store: Store, filters: Filters | None):
    where, params = text.filter_sql(filters)

    def passing(ids: list[int]) -> list[int]:
        sql = f"SELECT i.id FROM images i WHERE i.id IN ({','.join('?' * len(ids))}) AND {where}"
        keep = {r[0] for r in store.db.execute(sql, [*ids, *params])} if ids else set()
        return [i for i in ids if i in keep]

    return passing


FILTERS = [None, Filters(formats=("PNG",)), Filters(min_bytes=1150)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_scores_are_fts5_bm25_bit_for_bit(tmp_path, seed):
    store = _corpus(tmp_path, seed)
    ranker = Bm25Ranker(store.db.conn)
    ranker.refresh()
    checked = 0
    for q in _queries(seed):
        query = KeywordQuery.of(parse_query(q))
        assert query is not None, q
        expected = dict(
            store.db.execute(
                f"SELECT rowid, {fts.bm25_expression()} FROM search_fts WHERE search_fts MATCH ?",
                [query.match()],
            ).fetchall()
        )
        assert ranker.scores(list(expected), query) == expected, q
        checked += len(expected)
    assert checked > 1000  # the queries find rows, plain and accented ones alike


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("prefilter", [True, False])
def test_pages_proved_exact_equal_fts5_ranking(tmp_path, seed, prefilter, monkeypatch):
    """Small chunks and budgets make the ranker stop early often: whatever page it calls
    exact must be FTS5's (ties by id), and it must call most of them exact."""
    monkeypatch.setattr(fts, "CHUNK", 7)
    store = _corpus(tmp_path, seed)
    ranker = Bm25Ranker(store.db.conn)
    ranker.refresh()
    proved = total = 0
    for q in _queries(seed):
        parsed = parse_query(q)
        query = KeywordQuery.of(parsed)
        for filters in FILTERS:
            for k in (1, 5, 20):
                page, status = ranker.top(query, k, _passing(store, filters), prefilter=prefilter)
                expected = store.text.keyword_search(parsed.fts_match(), k, filters)
                total += 1
                if status == fts.EXACT:
                    proved += 1
                    assert page == expected, (q, filters, k)
                else:  # the best of what it read: true scores, in order, all passing
                    truth = dict(store.text.keyword_search(parsed.fts_match(), 10_000, filters))
                    assert all(truth[i] == s for i, s in page) and page == sorted(
                        page, key=lambda h: (-h[1], h[0])
                    )
    assert proved >= 0.8 * total


def test_a_spent_budget_is_not_called_exact(tmp_path, monkeypatch):
    monkeypatch.setattr(fts, "SCORE_BUDGET", 5)
    monkeypatch.setattr(fts, "CHUNK", 3)
    store = _corpus(tmp_path, 4)
    ranker = Bm25Ranker(store.db.conn)
    ranker.refresh()
    parsed = parse_query("men women shirt")
    page, status = ranker.top(KeywordQuery.of(parsed), 20, _passing(store, None))
    assert status == fts.BEST and len(page) <= 5
    # then every match is ranked, however large the table
    assert legs.keyword_leg(store, parsed, 20, None) == store.text.keyword_search(parsed.fts_match(), 20)


def test_phrase_counts_follow_the_index(tmp_path):
    """A phrase's row count (its idf) is cached only until the keyword index changes."""
    store = _corpus(tmp_path, 5)
    parsed = parse_query("nike socks")
    query = KeywordQuery.of(parsed)
    assert store.text.keyword_top(query, 10) == store.text.keyword_search(parsed.fts_match(), 10)
    with store.writing():
        for i in range(1000, 1040):
            store.db.execute(
                "INSERT INTO images(id, path, root, size, mtime_ns, format, status, indexed_at) "
                "VALUES (?, ?, '/r', 1, 0, 'PNG', 'ok', ?)",
                [i, f"/r/{i}.png", now()],
            )
            store.db.execute(
                "INSERT INTO search_fts(rowid, name, meta) VALUES (?, 'nike', 'nike socks')", [i]
            )
    assert store.text.keyword_top(query, 10) == store.text.keyword_search(parsed.fts_match(), 10)
    with store.writing():
        store.db.execute("DELETE FROM search_fts WHERE rowid >= 1000")
    assert store.text.keyword_top(query, 10) == store.text.keyword_search(parsed.fts_match(), 10)


@pytest.mark.parametrize(
    "q, eligible",
    [
        ("nike men socks", True),
        ("2:nike -puma men", True),
        ("QX-7781-B red", True),  # a code is a phrase of tokens
        ('"nike socks" men', False),  # a phrase every result must hold
        ("café men", False),  # FTS5 folds it, not this reader
        ("AA-AA men", False),  # "aa aa" can overlap itself
        ("one two three four five six seven", False),  # 127 signatures
    ],
)
def test_which_queries_the_ranker_takes(q, eligible):
    parsed = parse_query(q)
    query = KeywordQuery.of(parsed)
    assert (query is not None) == eligible
    if query is not None:
        assert query.match().lower() == parsed.fts_match().lower()  # FTS5 folds the case itself


def test_a_filter_that_keeps_few_rows_is_ranked_in_full(tmp_path, monkeypatch):
    """The budgets would find a few of the rows the filter keeps and miss the rest: the
    ranker says so, and the keyword leg ranks every match, however large the table."""
    for name, value in (("SCORE_BUDGET", 5), ("FETCH_BUDGET", 30), ("CHUNK", 3), ("THIN_AFTER", 6)):
        monkeypatch.setattr(fts, name, value)
    store = _corpus(tmp_path, 6)
    rare = Filters(min_bytes=1290)  # the last ten images
    parsed = parse_query("men women shirt")
    ranker = Bm25Ranker(store.db.conn)
    ranker.refresh()
    assert ranker.top(KeywordQuery.of(parsed), 20, _passing(store, rare))[1] == fts.THIN
    expected = store.text.keyword_search(parsed.fts_match(), 20, rare)
    assert expected and legs.keyword_leg(store, parsed, 20, rare) == expected


# -- pages the ranker cannot prove are ranked in full (found by review) --------------------
BIG = 25_000  # a table large enough that the ranker's budgets run out on a common word


def _ordered_store(tmp_path, folder_of) -> Store:
    """Every document holds "men"; the old images (ids <= 22000) have long captions, the
    newest 3,000 a short one, so BM25 puts the newest first."""
    store = Store(tmp_path / "idx")
    filler = " ".join(f"w{j}" for j in range(20))
    with store.writing():
        store.db.conn.executemany(
            "INSERT INTO images(id, path, root, size, mtime_ns, format, status, indexed_at) "
            "VALUES (?, ?, '/r', 1000, ?, 'JPEG', 'ok', 'x')",
            ((i, f"/r/{folder_of(i)}/{i}.jpg", i) for i in range(1, BIG + 1)),
        )
        store.db.conn.executemany(
            "INSERT INTO search_fts(rowid, name, caption) VALUES (?, ?, ?)",
            ((i, f"{i}.jpg", "men" if i > 22000 else f"men {filler}") for i in range(1, BIG + 1)),
        )
    return store


def test_unfiltered_common_word_finds_the_best_rows_not_the_oldest(tmp_path):
    store = _ordered_store(tmp_path, lambda i: "a")
    parsed = parse_query("men")
    old = store.text.keyword_search(parsed.fts_match(), 100)
    assert old[0][0] == 22001
    assert legs.keyword_leg(store, parsed, 100, None) == old  # new: ids 1..100 (overlap 0)


def test_deep_page_is_not_truncated_at_the_score_budget(tmp_path):
    """offset 1500, limit 100 -> depth 1600 (the web allows offset up to 10,000)."""
    store = _ordered_store(tmp_path, lambda i: "a")
    parsed = parse_query("men")
    assert len(legs.keyword_leg(store, parsed, 1600, None)) == 1600  # new: 1500


def test_id_correlated_filter_is_not_a_fair_sample(tmp_path):
    """A folder imported in two batches (ids 1..1600 and 22001..25000): the first chunks
    all pass, so THIN never fires, and the page is the oldest 1,500 rows of the folder."""
    store = _ordered_store(tmp_path, lambda i: "a" if i <= 1600 or i > 22000 else "b")
    parsed, folder = parse_query("men"), Filters(folder="/r/a")
    old = store.text.keyword_search(parsed.fts_match(), 100, folder)
    assert legs.keyword_leg(store, parsed, 100, folder) == old  # new: ids 1..100


def test_nul_then_mark_in_a_column_is_counted_as_fts5_does(tmp_path):
    """highlight() drops the text after a NUL, so the marks already in it are not there to
    subtract: the instance is lost and the score differs from bm25()."""
    store = Store(tmp_path / "idx")
    with store.writing():
        for i, cap in ((1, "men\x00x\x02 y"), (2, "men shirt")):
            store.db.execute(
                "INSERT INTO images(id, path, root, size, mtime_ns, format, status, indexed_at) "
                "VALUES (?, ?, '/r', 1, 0, 'PNG', 'ok', 'x')",
                [i, f"/r/{i}.png"],
            )
            store.db.execute("INSERT INTO search_fts(rowid, caption) VALUES (?, ?)", [i, cap])
    parsed = parse_query("men")
    expected = dict(
        store.db.execute(
            f"SELECT rowid, {fts.bm25_expression()} FROM search_fts WHERE search_fts MATCH ?",
            [parsed.fts_match()],
        ).fetchall()
    )
    ranker = Bm25Ranker(store.db.conn)
    ranker.refresh()
    assert ranker.scores(list(expected), KeywordQuery.of(parsed)) == expected
