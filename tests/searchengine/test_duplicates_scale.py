"""Near duplicates found without an all-against-all scan are exactly the pairs the scan finds.

The candidate search (:func:`candidate_pairs`, multi-index hashing as sorted joins) is
compared with a brute-force distance matrix on random codes, on clustered codes (many
pairs at every small distance) and on pairs planted at exactly the radius and one bit past
it, for every exact plan; the whole rule (:func:`_pairs`) with the brute-force algorithm it
replaced; and ``regroup`` on a store with :func:`find_groups`, reading no vector but those of
the pairs that need the cosine.
"""

from __future__ import annotations

import numpy as np
import pytest

from searchengine.duplicates import (
    DEFAULT_RULE,
    PHASH_STAGE,
    PHASH_TOOL,
    DuplicateRule,
    JoinPlan,
    _joined_pairs,
    _pairs,
    _texts_differ,
    candidate_pairs,
    find_groups,
    numbers,
    regroup,
)
from searchengine.records import EncoderId, OcrLine, OcrResult
from searchengine.store.db import Store
from searchengine.store.images import ImageWrite


# -- codes ----------------------------------------------------------------------------------
def pack(bits: np.ndarray) -> np.ndarray:
    """(N, 64) 0/1 -> (N, 8) uint8 codes, as FAISS and the signatures hold them."""
    return np.packbits(bits.astype(np.uint8), axis=1)


def random_codes(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 8), dtype=np.uint8)


def clustered_codes(n: int, seed: int) -> np.ndarray:
    """Codes around 12 centres, 3% of bits flipped: thousands of pairs at each distance 0-6."""
    rng = np.random.default_rng(seed)
    centres = rng.integers(0, 2, (12, 64))
    return pack(centres[rng.integers(0, 12, n)] ^ (rng.random((n, 64)) < 0.03))


def planted_codes(radius: int, seed: int) -> np.ndarray:
    """Random codes, each followed by copies with exactly 0, ``radius`` and ``radius + 1`` bits
    flipped, the flips spread over different substrings (the pigeonhole's worst case)."""
    rng = np.random.default_rng(seed)
    out = []
    for base in rng.integers(0, 2, (150, 64)):
        out.append(base)
        for k in (0, radius, radius + 1):
            flipped = base.copy()
            flipped[rng.choice(64, k, replace=False)] ^= 1
            out.append(flipped)
        spread = base.copy()  # one flip in each of the first ``radius`` eighths
        spread[[8 * j + int(rng.integers(8)) for j in range(min(radius, 8))]] ^= 1
        out.append(spread)
    return pack(np.array(out))


def brute_force(codes: np.ndarray, radius: int) -> set[tuple[int, int, int]]:
    """Every pair (a < b, distance) within ``radius`` bits, from the full distance matrix."""
    bits = np.unpackbits(codes, axis=1).astype(np.int32)
    dist = bits @ (1 - bits).T + (1 - bits) @ bits.T
    a, b = np.nonzero(np.triu(dist <= radius, k=1))
    return {(int(x), int(y), int(dist[x, y])) for x, y in zip(a, b, strict=True)}


def found(codes: np.ndarray, radius: int, plan: JoinPlan | None) -> set[tuple[int, int, int]]:
    a, b, d = candidate_pairs(codes, radius, plan)
    pairs = list(zip(a.tolist(), b.tolist(), d.tolist(), strict=True))
    assert len(pairs) == len(set(pairs)), "a pair came twice"
    return set(pairs)


CODES = {
    "random": lambda r: random_codes(3000, 1),
    "clustered": lambda r: clustered_codes(1500, 2),
    "planted": lambda r: planted_codes(r, 3),
}


@pytest.mark.parametrize("kind", list(CODES))
@pytest.mark.parametrize("radius", [0, 2, 4, 6])
def test_every_exact_plan_finds_exactly_the_pairs_of_the_full_scan(kind, radius):
    codes = CODES[kind](radius)
    truth = brute_force(codes, radius)
    assert kind == "random" or {d for *_, d in truth} >= {0, radius}, "no pair at the radius to test"
    plans = [
        JoinPlan(parts, match) for parts in range(radius + 1, radius + 5) for match in (1, parts - radius)
    ]
    for plan in [None, *{p for p in plans if p.is_exact(radius)}]:
        assert found(codes, radius, plan) == truth, plan


def test_the_chosen_plan_is_a_join_at_scale_and_the_flat_scan_for_few_codes():
    assert JoinPlan.best(4, 1_000_000) == JoinPlan(6, 2)
    assert JoinPlan.best(4, 100) is None
    assert JoinPlan.best(64, 1_000_000) is None  # every pair: no substring can agree
    codes = planted_codes(4, 5)[:60]
    assert found(codes, 4, None) == brute_force(codes, 4)


def test_a_plan_that_can_miss_pairs_is_refused_and_would_miss_them():
    """Four flips in four of five substrings leave one agreeing: a join on two misses it."""
    codes = planted_codes(4, 7)
    with pytest.raises(ValueError):
        candidate_pairs(codes, 4, JoinPlan(5, 2))
    x = codes.view(np.uint64).ravel()
    loose = {
        (int(a), int(b)) for blk in _joined_pairs(x, 4, JoinPlan(5, 2)) for a, b in zip(*blk[:2], strict=True)
    }
    assert {(a, b) for a, b, _ in brute_force(codes, 4)} - loose


def test_pairs_come_in_blocks_when_there_are_many(monkeypatch):
    import searchengine.duplicates as dup

    monkeypatch.setattr(dup, "_PAIR_BLOCK", 500)
    codes = pack(np.zeros((80, 64)))  # 80 equal codes: 3,160 pairs in one run of one key
    codes = np.concatenate([codes, clustered_codes(800, 9)])
    assert len(list(dup.candidate_blocks(codes, 4, JoinPlan(6, 2)))) > 6
    assert found(codes, 4, JoinPlan(6, 2)) == brute_force(codes, 4)


# -- the whole rule --------------------------------------------------------------------------
def features(n: int, seed: int, dim: int = 24):
    """Families of look-alikes: codes a few bits apart around a few centres, thumbnails a few
    levels apart, vectors around a family's (cosines about 0.9), numbers on a third."""
    rng = np.random.default_rng(seed)
    fam = n // 3
    centres = rng.integers(0, 2, (25, 64))
    fbits = centres[rng.integers(0, 25, fam)] ^ (rng.random((fam, 64)) < 0.04)
    of = rng.integers(0, fam, n)
    codes = pack(fbits[of] ^ (rng.random((n, 64)) < 0.03))
    thumbs = np.clip(rng.integers(0, 256, (fam, 192))[of] + rng.integers(-5, 6, (n, 192)), 0, 255).astype(
        np.uint8
    )
    vecs = (rng.normal(size=(fam, dim))[of] + rng.normal(scale=0.35, size=(n, dim))).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ids = np.sort(rng.choice(10 * n, n, replace=False)).astype(np.int64)
    hashes = {int(i): codes[k].tobytes().hex() + "-" + thumbs[k].tobytes().hex() for k, i in enumerate(ids)}
    texts = {int(i): " ".join(map(str, rng.integers(10, 25, 6))) for i in ids if rng.random() < 0.3}
    return ids, vecs, hashes, texts


def scan_pairs(ids, vectors, hashes, rule, texts) -> list[tuple[float, int, int]]:
    """The rule as it was applied before: every pair of the full distance matrix, one by one."""
    codes = pack(np.array([[int(c) for c in f"{int(hashes[int(i)][:16], 16):064b}"] for i in ids]))
    thumbs = np.array([np.frombuffer(bytes.fromhex(hashes[int(i)][17:]), np.uint8) for i in ids], np.float32)
    out = []
    for a, b, d in sorted(brute_force(codes, rule.hamming_loose)):
        if d > rule.hamming and float(vectors[a] @ vectors[b]) < rule.cosine:
            continue
        diff = float(np.abs(thumbs[a] - thumbs[b]).reshape(64, 3).max(axis=1).mean())
        na, nb = numbers(texts.get(int(ids[a]), "")), numbers(texts.get(int(ids[b]), ""))
        if diff > rule.content or _texts_differ(na, nb, rule):
            continue
        out.append((diff, int(ids[a]), int(ids[b])))
    return sorted(out)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_rule_keeps_exactly_the_pairs_of_the_full_scan(seed):
    ids, vecs, hashes, texts = features(1200, seed)
    rule = DuplicateRule(hamming=2, hamming_loose=5, cosine=0.9, content=9.0)
    expected = scan_pairs(ids, vecs, hashes, rule, texts)
    assert len(expected) > 100 and len({p[0] for p in expected}) > 20
    assert _pairs(ids, vecs, hashes, rule, texts) == expected


def test_a_pair_exactly_at_each_threshold_is_kept():
    """Distance exactly ``hamming_loose`` with a cosine exactly the threshold (float32: 0.5),
    and a content difference exactly the limit; one bit, one level further, and it is not."""
    rule = DuplicateRule(hamming=1, hamming_loose=4, cosine=0.5, content=1.0)
    thumb = np.full(192, 100, np.uint8)
    near = thumb.copy()
    near[0::3] += 1  # every cell differs by 1: a difference of exactly 1.0
    far = near.copy()
    far[1] += 2  # one cell's largest difference 2: 65/64
    sig = lambda bits, t: pack(np.array([bits]))[0].tobytes().hex() + "-" + t.tobytes().hex()  # noqa: E731
    base = np.zeros(64, int)
    four, five = base.copy(), base.copy()
    four[[0, 20, 40, 60]] = 1
    five[[0, 20, 40, 60, 63]] = 1
    hashes = {1: sig(base, thumb), 2: sig(four, near), 3: sig(five, thumb), 4: sig(four, far)}
    vecs = np.array([[1, 0], [0.5, np.sqrt(0.75)], [1, 0], [1, 0]], np.float32)
    ids = np.array([1, 2, 3, 4], np.int64)
    assert float(vecs[0] @ vecs[1]) == 0.5
    got = _pairs(ids, vecs, hashes, rule, {})
    assert got == scan_pairs(ids, vecs, hashes, rule, {})
    assert (1.0, 1, 2) in got and not any(p[1:] in {(1, 3), (1, 4)} for p in got)


# -- regroup reads the store ---------------------------------------------------------------
def stored(tmp_path, n: int, seed: int) -> tuple[Store, tuple]:
    """A store of ``n`` images with the :func:`features` signatures, vectors and OCR texts."""
    ids, vecs, hashes, texts = features(n, seed, dim=16)
    store = Store(tmp_path / "index")
    store.bind_encoder(EncoderId("synthetic", "t", 16))
    writes = []
    for k, i in enumerate(ids.tolist()):
        row = {"path": f"/p/{i}.jpg", "root": "/p", "sha256": f"{i:064x}", "size": 1, "mtime_ns": 1,
               "width": 8, "height": 8, "format": "JPEG", "status": "ok", "error": None}  # fmt: skip
        ocr = OcrResult((OcrLine(texts[i], 0.9, ((0, 0), (1, 0), (1, 1), (0, 1))),)) if i in texts else None
        stages = {PHASH_STAGE: (PHASH_TOOL, None), **({"ocr": ("synthetic", None)} if ocr else {})}
        writes.append(
            ImageWrite(
                row["path"], row=row, vector=vecs[k].tobytes(), phash=hashes[i], ocr=ocr, stages=stages
            )
        )
    store.images.write_batch(writes)
    real = dict(store.db.execute("SELECT path, id FROM images").fetchall())
    remap = {i: real[f"/p/{i}.jpg"] for i in ids.tolist()}
    new_ids = np.array([remap[i] for i in ids.tolist()], np.int64)
    return store, (
        new_ids,
        vecs,
        {remap[i]: h for i, h in hashes.items()},
        {remap[i]: t for i, t in texts.items()},
    )


def test_regroup_equals_find_groups_and_reads_only_the_vectors_it_checks(tmp_path, monkeypatch):
    store, (ids, vecs, hashes, texts) = stored(tmp_path, 900, 4)
    first = find_groups(ids, vecs, hashes, DEFAULT_RULE, texts)
    apart = {(g[0], g[1]) for g in first[:5]}  # the user said these are not duplicates
    sha = store.duplicates.contents([i for p in apart for i in p])
    store.duplicates.mark_apart([(sha[a], sha[b]) for a, b in apart])
    expected = find_groups(ids, vecs, hashes, DEFAULT_RULE, texts, store.duplicates.apart())
    assert expected != first and len(expected) > 30

    def no_full_read(*_):
        raise AssertionError("regroup read every vector")

    asked: list[int] = []
    of_many = store.embeddings.of_many
    monkeypatch.setattr(store.embeddings, "all", no_full_read)
    monkeypatch.setattr(
        store.embeddings, "of_many", lambda some, dim: (asked.extend(some), of_many(some, dim))[1]
    )
    assert regroup(store, DEFAULT_RULE) == expected
    assert store.duplicates.groups() == expected
    bits = lambda a, b: bin(int(hashes[a][:16], 16) ^ int(hashes[b][:16], 16)).count("1")  # noqa: E731
    any_cosine = DuplicateRule(cosine=-2.0)  # the pairs left when the vectors are checked
    need = {i for _, a, b in _pairs(ids, vecs, hashes, any_cosine, texts) if bits(a, b) > 2 for i in (a, b)}
    assert 0 < len(asked) == len(set(asked)) < len(ids)
    assert set(asked) == need
