"""Filtered vector search against a brute-force reference, at every index type the store can choose.

A few passing images are searched through a selector; many by an unfiltered search with
over-fetch, filtered after; either way the answer is the exact top ``k`` of the passing
images (up to the recall of an approximate index), filled whenever that many pass.
"""

from __future__ import annotations

import numpy as np
import pytest

from searchengine.models.base import l2_normalize
from searchengine.records import Filters
from searchengine.search.legs import vector_leg
from searchengine.store.db import Store
from searchengine.store.filters import FilterPassing
from searchengine.store.images import ImageWrite
from searchengine.store.vectors import (
    PassingIds,
    VectorIndex,
    build_index,
    overfetch,
    selector_limit,
)

DIM, N, K = 32, 3000, 50
KEYS = ["Flat", "HNSW32,Flat", "IVF64_HNSW32,Flat"]  # what choose_index_key picks, by size
MIN_RECALL = {"Flat": 1.0, "HNSW32,Flat": 0.95, "IVF64_HNSW32,Flat": 0.9}


def _vectors(n: int = N, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, DIM))  # clustered, as real embeddings are
    return l2_normalize(centres[rng.integers(0, 40, n)] + 0.6 * rng.normal(size=(n, DIM))).astype(np.float32)


@pytest.fixture(scope="module")
def data():
    vecs = _vectors()
    ids = np.arange(1, N + 1, dtype=np.int64) * 3  # ids are not row numbers
    queries = _vectors(12, seed=1)
    return ids, vecs, queries


@pytest.fixture(scope="module", params=KEYS)
def index(request, data):
    ids, vecs, _ = data
    return request.param, VectorIndex.of(build_index(request.param, ids, vecs), request.param, "g")


def _exact(data, passing: np.ndarray, k: int) -> list[list[int]]:
    """The reference: exact inner product over the passing ids."""
    ids, vecs, queries = data
    mask = np.isin(ids, passing)
    scores = queries @ vecs[mask].T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return [ids[mask][row].tolist() for row in order]


class Counting(PassingIds):
    """Records whether the search asked for every passing id."""

    listed = 0

    def ids(self) -> np.ndarray:
        self.listed += 1
        return super().ids()


class FromFirstIds(Counting):
    """Estimates as SQL does: the share of the images up to the last id read that pass."""

    def __init__(self, ids: np.ndarray, all_ids: np.ndarray) -> None:
        super().__init__(ids)
        self.all_ids = all_ids

    def first(self, limit: int, among: int) -> tuple[np.ndarray, float]:
        got, exact = super().first(limit, among)
        if len(got) < limit:
            return got, exact
        scanned = np.count_nonzero(self.all_ids <= got[-1])
        return got, len(got) / scanned * among


def _check(index, data, passing: np.ndarray, k: int = K, estimate: str = "exact") -> Counting:
    key, vi = index
    ids, vecs, queries = data
    counting = Counting(passing) if estimate == "exact" else FromFirstIds(passing, ids)
    scores, found = vi.search_passing(queries, k, counting)
    want = _exact(data, passing, k)
    allowed = set(passing.tolist())
    hits = 0
    for row, expected in enumerate(want):
        got = [int(i) for i in found[row] if i >= 0]
        assert len(got) == len(expected) == min(k, len(np.intersect1d(passing, ids)))  # filled
        assert set(got) <= allowed and len(set(got)) == len(got)
        true = vecs[np.searchsorted(ids, got)] @ queries[row]
        np.testing.assert_allclose(scores[row][: len(got)], true, atol=1e-5)  # true cosines, best first
        assert np.all(np.diff(scores[row][: len(got)]) <= 1e-6)
        hits += len(set(got) & set(expected))
    wanted = sum(len(e) for e in want)
    recall = hits / wanted if wanted else 1.0
    assert recall >= MIN_RECALL[key], f"{key}: recall {recall:.3f}"
    return counting


def test_selective_filter_uses_the_id_list(index, data):
    ids = data[0]
    passing = ids[np.random.default_rng(2).random(N) < 0.03]  # ~90 of 3000: below the selector limit
    assert len(passing) < selector_limit(N, K)
    _check(index, data, passing)


def test_broad_filter_searches_unfiltered_and_never_lists_every_id(index, data):
    ids = data[0]
    passing = ids[np.random.default_rng(3).random(N) < 0.5]
    assert len(passing) > selector_limit(N, K)
    assert _check(index, data, passing).listed == 0  # the over-fetch sufficed: no id list


def test_broad_filter_leaning_away_from_the_query_still_fills(index, data):
    """A filter that passes many images, none of them near the queries: the over-fetch finds
    too few, so the selector answers after all."""
    ids, vecs, queries = data
    far = (vecs @ queries.T).max(axis=1)
    passing = ids[far < np.quantile(far, 0.4)]  # 40%, the ones least like any query
    assert len(passing) > selector_limit(N, K)
    assert _check(index, data, passing).listed <= 1  # (a second over-fetch may suffice)


def test_broad_filter_that_follows_the_ids_needs_no_id_list(index, data):
    """The first third of the ids pass (a folder indexed first): the estimate from the first
    ids says "nearly all", the first over-fetch falls short, the second, with the share the
    candidates showed, fills every query: no list of every passing id."""
    ids = data[0]
    passing = ids[: N // 3]
    assert len(passing) > selector_limit(N, K)
    assert _check(index, data, passing, estimate="from the first ids").listed == 0


def test_ivf_with_many_lists_fills_a_selective_filter():
    """With 1,024 lists the HNSW quantiser returns only some of them unless its own search
    widens too: a search among 60 ids must still find 50."""
    n, dim = 30_000, 16
    rng = np.random.default_rng(5)
    vecs = l2_normalize(rng.normal(size=(n, dim))).astype(np.float32)
    ids = np.arange(n, dtype=np.int64)
    vi = VectorIndex.of(build_index("IVF1024_HNSW32,Flat", ids, vecs), "IVF1024_HNSW32,Flat", "g")
    allowed = rng.choice(ids, 60, replace=False)
    queries = l2_normalize(rng.normal(size=(5, dim))).astype(np.float32)
    _, found = vi.search_passing(queries, 50, PassingIds(allowed))
    for row in range(len(queries)):
        got = found[row][found[row] >= 0]
        assert len(got) == 50 and set(got.tolist()) <= set(allowed.tolist())
        want = allowed[np.argsort(-(vecs[allowed] @ queries[row]))[:50]]
        assert set(got.tolist()) == set(want.tolist())  # every list searched: exact


@pytest.mark.parametrize("case", ["nothing", "everything", "fewer than k", "unknown ids"])
def test_edges(index, data, case):
    ids = data[0]
    passing = {
        "nothing": np.zeros(0, np.int64),
        "everything": ids,
        "fewer than k": ids[[5, 80, 700, 2999]],
        "unknown ids": np.concatenate([ids[[1, 2, 3]], [1, 2, 10**7]]),  # not (or no longer) indexed
    }[case]
    _check(index, data, passing)
    if case == "nothing":
        scores, found = index[1].search_passing(data[2], K, PassingIds(passing))
        assert found.shape == (len(data[2]), 0)


def test_empty_index_finds_nothing():
    empty = VectorIndex.of(
        build_index("Flat", np.zeros(0, np.int64), np.zeros((0, DIM), np.float32)), "Flat", "g"
    )
    scores, found = empty.search_passing(_vectors(2), K, PassingIds(np.arange(5)))
    assert found.shape == (2, 0)


@pytest.mark.parametrize(
    ("n", "k", "limit"),
    [(3000, 50, 548), (100_000, 100, 4473), (1_000_000, 100, 14143), (10, 10, 15), (1, 1, 2)],
)
def test_selector_limit_is_where_both_costs_meet(n, k, limit):
    assert selector_limit(n, k) == limit
    assert overfetch(n, k, limit) <= limit + 1  # a broad filter never fetches more than the limit


def test_overfetch_scales_with_the_share_that_passes():
    assert overfetch(100_000, 100, 50_000) == 400  # 50%: k / share * margin
    assert overfetch(100_000, 100, 10) == 100_000  # at most every vector
    assert overfetch(100_000, 100, 0) == 100_000


# -- the SQL side: a store whose filters pass a few or many images -------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("filtered") / "index")
    vecs = _vectors(2000, seed=4)
    formats = np.random.default_rng(5).choice(["JPEG", "PNG", "GIF"], size=2000, p=[0.47, 0.5, 0.03])
    writes = []
    for i, (vec, fmt) in enumerate(zip(vecs, formats, strict=True)):
        path = f"/synthetic/{i % 7}/{i}.img"
        row = {
            "path": path,
            "root": "/synthetic",
            "sha256": f"{i:064x}",
            "size": 1000 + i,
            "mtime_ns": i,
            "width": 10,
            "height": 10,
            "format": str(fmt),
            "status": "failed" if i % 97 == 0 else "ok",
            "error": None,
        }
        writes.append(ImageWrite(path, row=row, vector=vec.tobytes()))
    store.images.write_batch(writes)
    return store


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("fmt", ["PNG", "GIF"])  # ~50%: over-fetch; ~3%: the selector
def test_sql_filters_match_brute_force(store, key, fmt):
    ids, vecs = store.embeddings.all(DIM)
    vi = VectorIndex.of(build_index(key, ids, vecs), key, "g")
    filters = Filters(formats=(fmt,))
    passing = store.images.filtered_ids(filters)
    assert (len(passing) > selector_limit(len(ids), 100)) == (fmt == "PNG")
    for q in _vectors(5, seed=6):
        got = [i for i, _ in vector_leg(store, vi, q[None, :], 100, filters, None)]
        mask = np.isin(ids, passing)
        want = ids[mask][np.argsort(-(vecs[mask] @ q), kind="stable")[:100]].tolist()
        assert len(got) == len(want) == min(100, len(passing)) and set(got) <= set(passing.tolist())
        assert len(set(got) & set(want)) / len(want) >= MIN_RECALL[key]


def test_filter_passing_reads_only_what_it_needs(store):
    passing = FilterPassing(store.db, Filters(formats=("PNG",)))
    every = store.images.filtered_ids(Filters(formats=("PNG",)))
    first, estimate = passing.first(50, 2000)
    assert first.tolist() == sorted(every.tolist())[:50]
    assert 0.5 * len(every) < estimate < 1.5 * len(every)  # an estimate from the rows scanned
    few, exact = passing.first(5000, 2000)
    assert sorted(few.tolist()) == sorted(every.tolist()) and exact == len(every)
    candidates = np.array([[every[0], 10**6, every[3]]])
    assert passing.keep(candidates).tolist() == [[True, False, True]]
    assert sorted(passing.ids().tolist()) == sorted(every.tolist())
    failed = store.db.execute("SELECT id FROM images WHERE status = 'failed'").fetchone()[0]
    assert not passing.keep(np.array([failed]))[0]  # unsearchable images never pass
