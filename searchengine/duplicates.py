"""Near-duplicate groups: a perceptual hash, confirmed by the content and by the text.

Each image gets a signature at index time: a 64-bit perceptual hash of the whole frame
(``imagehash``'s DCT hash) and an 8x8 colour thumbnail of its *content*, the image
cropped to what differs from its background colour. Two images are near duplicates
when

1. their hashes differ in at most ``hamming`` bits, or in at most ``hamming_loose``
   bits while their embeddings' cosine is at least ``cosine``;
2. their content thumbnails differ by at most ``content`` (the mean over the 64 cells
   of the largest channel difference, 0-255). On a white background the frame hash
   sees mostly the background, so different products photographed in the same pose
   collide; cropped to the product, a re-encoded or resized copy still matches cell
   for cell, while another shoe, shade or shirt does not;
3. where both images carry enough readable text (OCR), the numbers in it agree: two
   invoices of one shop look alike, but their numbers, dates and totals differ.

Groups are *complete*: every member is a near duplicate of every other one (pairs
join, closest first, only while that holds), so one look-alike pair can't chain
different items into one large group. Candidates are every pair of hashes within the loose
distance, found exactly (no pair missed) by multi-index hashing (:class:`JoinPlan`): sorts
on substrings of the hashes instead of comparing every hash with every other, so regrouping
grows about linearly with the index where look-alike hashes are rare (1M random-like hashes:
about 10 s, where the all-against-all scan took 10 minutes; catalogue photos shot on white
collide more, and their pairs grow with the square of the index), and vectors are read only
for the pairs the cosine decides. (A hash many images share, blank scans say, is still
paired by every substring join: quadratic in that group.)

On near_duplicates the defaults find 98.0% of the true pairs (588 of 600) with no false
pair, where version 1 (hash and cosine only, connected components) found 99.5% at 92.6%
precision. Among 3,100 distinct catalogue photos and receipts they form 5 false groups
of two images, where version 1 formed 73, the largest of 57 (docs/evaluation.md,
``bench/eval_duplicates.py``).
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import re
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)

#: The stage name and tool recorded for the signature (a new tool means: compute again).
PHASH_STAGE = "phash"
PHASH_TOOL = "phash-64+content-8x8-v2"

#: Side of the content thumbnail, and how far (0-255, any channel) a pixel may be from
#: the background colour and still count as background.
CONTENT_SIDE = 8
BACKGROUND_TOLERANCE = 32
_SIG_LEN = 16 + 1 + CONTENT_SIDE * CONTENT_SIDE * 3 * 2  # "hash-thumbnail", hex

#: Texts are compared only when both images have at least this many numbers.
MIN_NUMBERS = 4


@dataclass(frozen=True, slots=True)
class DuplicateRule:
    """Thresholds of the near-duplicate test (see the module docstring).

    :param content: largest mean difference of the content thumbnails (0-255).
    :param numbers: least share (Jaccard) of the numbers read on both images, when both
        have at least ``MIN_NUMBERS``.
    """

    hamming: int = 2
    hamming_loose: int = 4
    cosine: float = 0.90
    content: float = 10.0
    numbers: float = 0.45

    def as_dict(self) -> dict:
        return {"method": PHASH_TOOL, **asdict(self)}

    def is_stored(self, store) -> bool:
        """Tell whether the index's groups were last found with this rule."""
        return store.get_meta("duplicates") == json.dumps(self.as_dict())

    @classmethod
    def of_index(cls, store) -> DuplicateRule:
        """The rule an index was last grouped with (``searchengine duplicates`` may set
        other thresholds; a threshold it lacks takes its default), else the default."""
        try:
            stored = json.loads(store.get_meta("duplicates") or "{}")
            return cls(**{f.name: stored[f.name] for f in fields(cls) if f.name in stored})
        except (TypeError, ValueError):
            return cls()


DEFAULT_RULE = DuplicateRule()


def content_box(rgb: np.ndarray) -> tuple[int, int, int, int]:
    """The box (left, top, right, bottom) around what differs from the background.

    The background colour is the median of the border pixels; rows and columns count as
    content when at least 2% of their pixels are further than ``BACKGROUND_TOLERANCE``
    from it. A photo with no uniform background keeps (about) its whole frame.
    """
    a = rgb.astype(np.int16)
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    fg = np.abs(a - np.median(border, axis=0)).max(axis=2) > BACKGROUND_TOLERANCE
    rows = np.flatnonzero(fg.sum(axis=1) >= max(1.0, 0.02 * a.shape[1]))
    cols = np.flatnonzero(fg.sum(axis=0) >= max(1.0, 0.02 * a.shape[0]))
    if not len(rows) or not len(cols):  # blank: the whole frame
        return 0, 0, a.shape[1], a.shape[0]
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def perceptual_hash(image: Image.Image) -> str:
    """Return the signature of ``image``: the 64-bit DCT hash of the frame (16 hex digits),
    "-", and the 8x8 RGB thumbnail of its content box (384 hex digits)."""
    import imagehash

    rgb = image.convert("RGB")
    content = rgb.crop(content_box(np.asarray(rgb)))
    thumb = content.resize((CONTENT_SIDE, CONTENT_SIDE), Image.Resampling.BOX)
    return f"{imagehash.phash(rgb)}-{np.asarray(thumb, dtype=np.uint8).tobytes().hex()}"


def is_current(signature: str) -> bool:
    """Tell whether a stored signature has this version's form (older ones: a hash alone)."""
    return len(signature) == _SIG_LEN


def numbers(text: str) -> frozenset[str]:
    """The numbers of an OCR text, as digit strings of two or more digits: each token that
    holds digits gives its digits ("RM12.50" and "12,50" -> "1250", "12/03/2018" ->
    "12032018"), so currency signs, separators and spacing don't matter."""
    found = ("".join(re.findall(r"\d", tok)) for tok in text.split())
    return frozenset(d for d in found if len(d) >= 2)


def _codes(hashes: list[str]) -> np.ndarray:
    """Signatures -> (N, 8) uint8 codes of their frame hashes for FAISS binary indexes."""
    return np.frombuffer(
        b"".join(bytes.fromhex(h[:16].rjust(16, "0")) for h in hashes), dtype=np.uint8
    ).reshape(len(hashes), 8)


def _thumbs(signatures: list[str]) -> np.ndarray:
    """Signatures -> (N, 192) uint8 content thumbnails (64 cells x RGB)."""
    raw = b"".join(bytes.fromhex(s[17:]) for s in signatures)
    return np.frombuffer(raw, dtype=np.uint8).reshape(len(signatures), -1)


# -- candidate pairs: every pair of hashes within the loose distance, without an all-against-all scan --
#: Rough costs (ns) on one core: sorting, per code and per level of the sort; one candidate
#: pair taken from a run of equal keys and checked; one distance of the flat scan (100k x
#: 100k in 3.0 s). They only choose between exact methods: a wrong guess costs time, never a pair.
_SORT_NS, _CANDIDATE_NS, _FLAT_NS = 4.0, 25.0, 0.3
#: Candidate pairs checked at once, so memory stays bounded at any index size.
_PAIR_BLOCK = 1 << 20
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def _popcount(x: np.ndarray) -> np.ndarray:
    """The set bits of each uint64 of ``x`` (int64); numpy 2 has an instruction for it."""
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x).astype(np.int64)
    return _POPCOUNT[x.view(np.uint8)].reshape(len(x), 8).sum(axis=1, dtype=np.int64)


@dataclass(frozen=True, slots=True)
class JoinPlan:
    """Multi-index hashing as a join: the 64 bits cut into ``parts`` disjoint substrings,
    and for each choice of ``match`` of them, the codes sorted by those bits; codes that
    agree on all of them are candidates, then their full distance is checked.

    Exact for ``radius`` when ``match <= parts - radius``: two codes within ``radius`` bits
    differ in at most ``radius`` substrings, so (pigeonhole) at least ``parts - radius``
    substrings agree exactly and one choice holds only agreeing ones. Each pair is kept
    only by the first choice it agrees on (its ``match`` lowest agreeing substrings), so
    every pair comes once.
    """

    parts: int
    match: int

    def is_exact(self, radius: int) -> bool:
        return 1 <= self.match <= self.parts - radius and self.parts <= 64

    def masks(self) -> list[int]:
        """The bit mask of each substring (nearly equal lengths, together all 64 bits)."""
        cut = [round(64 * k / self.parts) for k in range(self.parts + 1)]
        return [((1 << (hi - lo)) - 1) << lo for lo, hi in itertools.pairwise(cut)]

    def cost_ns(self, n: int) -> float:
        """Estimated time among ``n`` uniformly spread codes: a sort per choice, and the
        pairs that agree by chance on a choice's bits."""
        joins = math.comb(self.parts, self.match)
        by_chance = n * n / 2 ** (1 + 64 * self.match / self.parts)
        return joins * (_SORT_NS * n * math.log2(max(n, 2)) + _CANDIDATE_NS * by_chance)

    @classmethod
    def best(cls, radius: int, n: int) -> JoinPlan | None:
        """The cheapest exact plan for ``radius`` among ``n`` codes, or None when the flat
        all-against-all scan is estimated cheaper (few codes, or a radius so large that the
        substrings get short)."""
        plans = [cls(parts, parts - radius) for parts in range(radius + 1, min(radius + 8, 64) + 1)]
        best = min(plans, key=lambda p: p.cost_ns(n), default=None)
        return best if best is not None and best.cost_ns(n) < _FLAT_NS * n * n / 2 else None


def _run_pairs(sorted_keys: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Every pair of positions (left < right) holding equal ``sorted_keys``, a block at a time."""
    n = len(sorted_keys)
    change = np.flatnonzero(sorted_keys[1:] != sorted_keys[:-1]) + 1
    ends = np.repeat(np.append(change, n), np.diff(np.concatenate([[0], change, [n]])))
    later = ends - np.arange(n) - 1  # partners after each position in its run
    at = np.flatnonzero(later)
    total = np.cumsum(later[at])
    start = 0
    while start < len(at):
        stop = int(np.searchsorted(total, (total[start - 1] if start else 0) + _PAIR_BLOCK, "right"))
        stop = max(stop, start + 1)
        pos, count = at[start:stop], later[at[start:stop]]
        left = np.repeat(pos, count)
        right = left + 1 + np.arange(len(left)) - np.repeat(np.cumsum(count) - count, count)
        yield left, right
        start = stop


def _joined_pairs(x: np.ndarray, radius: int, plan: JoinPlan) -> Iterator[tuple[np.ndarray, ...]]:
    """The pairs (a < b, distance) within ``radius`` bits among the uint64 codes ``x``, each
    once, by the joins of ``plan``. Pairs are compared in key order (codes of a run side by
    side); only those within ``radius`` go back to rows."""
    masks = [np.uint64(m) for m in plan.masks()]
    for choice in itertools.combinations(range(plan.parts), plan.match):
        keys = x & np.uint64(sum(int(masks[s]) for s in choice))
        order = np.argsort(keys)
        xs = x[order]
        for left, right in _run_pairs(keys[order]):
            xor = xs[left] ^ xs[right]
            near = np.flatnonzero(_popcount(xor) <= radius)
            xor, left, right = xor[near], left[near], right[near]
            keep = np.ones(len(near), dtype=bool)
            for s in set(range(choice[-1])) - set(choice):  # found first by this choice: no
                keep &= (xor & masks[s]) != 0  # substring below its last one agrees but its own
            p, q = order[left[keep]], order[right[keep]]
            yield np.minimum(p, q), np.maximum(p, q), _popcount(xor[keep])


def candidate_blocks(
    codes: np.ndarray, radius: int, plan: JoinPlan | None = None
) -> Iterator[tuple[np.ndarray, ...]]:
    """Every pair of rows of ``codes`` ((N, 8) uint8) whose codes differ in at most ``radius``
    bits, each once, a block at a time: ``(a, b, distance)`` int64 arrays with ``a < b``.

    The same pairs as the all-against-all scan (``faiss.IndexBinaryFlat.range_search``), in
    time about linear in N where the scan is quadratic (:class:`JoinPlan`), and in blocks of
    at most about a million pairs, so that a caller that keeps few of them holds few. ``plan``
    None picks the cheapest, the flat scan itself for few codes.

    :raises ValueError: ``plan`` is not exact for ``radius``.
    """
    n = len(codes)
    plan = plan or JoinPlan.best(max(radius, 0), n)
    if plan is not None and not plan.is_exact(radius):
        raise ValueError(f"{plan} can miss pairs within {radius} bits")
    if n < 2 or radius < 0:
        return
    if plan is None:
        yield _flat_pairs(codes, radius)
    else:
        yield from _joined_pairs(np.ascontiguousarray(codes).view(np.uint64).ravel(), radius, plan)


def candidate_pairs(
    codes: np.ndarray, radius: int, plan: JoinPlan | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`candidate_blocks` all at once, sorted by ``a`` then ``b``."""
    blocks = list(candidate_blocks(codes, radius, plan))
    a, b, d = (
        (np.concatenate([np.empty(0, dtype=np.int64), *x]) for x in zip(*blocks, strict=True))
        if blocks
        else (np.empty(0, dtype=np.int64),) * 3
    )
    order = np.lexsort((b, a))
    return a[order], b[order], d[order]


def _flat_pairs(codes: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pairs within ``radius`` bits by FAISS's all-against-all scan (few codes)."""
    import faiss

    index = faiss.IndexBinaryFlat(64)
    index.add(np.ascontiguousarray(codes))
    lims, dist, other = index.range_search(np.ascontiguousarray(codes), radius + 1)  # distance < radius + 1
    rows = np.repeat(np.arange(len(codes), dtype=np.int64), np.diff(lims).astype(np.int64))
    keep = other > rows  # each pair once, never a code with itself
    return rows[keep], other[keep].astype(np.int64), dist[keep].astype(np.int64)


# -- which candidates are near duplicates -------------------------------------------------------
@dataclass(slots=True)
class _Features:
    """What the checks need beyond the hashes and thumbnails, read for the pairs still
    standing only (by image id): their vectors ((len, dim) float32) and OCR texts."""

    vectors: Callable[[np.ndarray], np.ndarray]
    texts: Callable[[np.ndarray], dict[int, str]]


def _cell_sums(cells: np.ndarray, a: np.ndarray, b: np.ndarray, part: slice) -> np.ndarray:
    """For each pair of rows (``a[k]``, ``b[k]``) of ``cells`` ((N, 64, 3) uint8), the sum over
    the cells ``part`` of the largest channel difference (int64)."""
    x, y = cells[a, part], cells[b, part]
    d = np.maximum(x, y) - np.minimum(x, y)
    return np.maximum(np.maximum(d[..., 0], d[..., 1]), d[..., 2]).sum(axis=1, dtype=np.int64)


def _content_diffs(thumbs: np.ndarray, a: np.ndarray, b: np.ndarray, limit: float) -> np.ndarray:
    """The content difference of each pair of rows (``a[k]``, ``b[k]``) of ``thumbs`` ((N, 192)
    uint8): the mean over the 64 cells of the largest channel difference, exact (integers
    over 64: the float32 mean the rule was tuned with) for every pair within ``limit``.

    The first 8 cells are summed first: a pair they already put past ``limit`` (most chance
    collisions of the hashes) gets that partial, larger, value without reading the rest.
    """
    cells = thumbs.reshape(len(thumbs), CONTENT_SIDE**2, 3)
    out = np.empty(len(a), dtype=np.float64)
    for s in range(0, len(a), 1 << 16):
        pa, pb = a[s : s + (1 << 16)], b[s : s + (1 << 16)]
        total = _cell_sums(cells, pa, pb, slice(0, 8))
        rest = np.flatnonzero(total <= limit * CONTENT_SIDE**2)
        total[rest] += _cell_sums(cells, pa[rest], pb[rest], slice(8, None))
        out[s : s + len(pa)] = total / CONTENT_SIDE**2
    return out


def _cosines(feats: _Features, ia: np.ndarray, ib: np.ndarray, threshold: float) -> np.ndarray:
    """The cosine of each pair's vectors (ids ``ia[k]``, ``ib[k]``), the vectors read for 20,000
    pairs at a time. Those within rounding of ``threshold`` are computed again one by one as
    a float32 dot product, the way the rule was always applied, so a pair at the threshold
    falls on the same side as before."""
    cos = np.empty(len(ia), dtype=np.float64)
    for s in range(0, len(ia), 20_000):
        a, b = ia[s : s + 20_000], ib[s : s + 20_000]
        uniq, inv = np.unique(np.concatenate([a, b]), return_inverse=True)
        vecs = feats.vectors(uniq)
        va, vb = vecs[inv[: len(a)]], vecs[inv[len(a) :]]
        part = np.einsum("ij,ij->i", va, vb).astype(np.float64)
        for k in np.flatnonzero(~(np.abs(part - threshold) > 1e-4)):  # NaN too
            part[k] = float(va[k] @ vb[k])
        cos[s : s + len(a)] = part
    return cos


def _texts_agree(feats: _Features, ia: np.ndarray, ib: np.ndarray, rule: DuplicateRule) -> np.ndarray:
    """Whether each pair's OCR numbers agree (see :func:`_texts_differ`)."""
    nums = {i: numbers(t) for i, t in feats.texts(np.unique(np.concatenate([ia, ib]))).items()}
    agree = np.ones(len(ia), dtype=bool)
    for k, (a, b) in enumerate(zip(ia.tolist(), ib.tolist(), strict=True)):
        if a in nums and b in nums:
            agree[k] = not _texts_differ(nums[a], nums[b], rule)
    return agree


def _checked_pairs(ids, codes, thumbs, rule: DuplicateRule, feats: _Features) -> list[tuple[float, int, int]]:
    """The near-duplicate pairs (content difference, id, id) among ``ids`` (rows of ``codes``
    and ``thumbs``), each in row order, closest first, ties by the ids.

    Candidates (within ``rule.hamming_loose`` bits, :func:`candidate_blocks`) are checked a
    block at a time against the thumbnails; only the pairs left read texts, and only those
    beyond ``rule.hamming`` bits read vectors.
    """
    kept = []
    for a, b, dist in candidate_blocks(codes, rule.hamming_loose):
        diff = _content_diffs(thumbs, a, b, rule.content)
        near = diff <= rule.content
        kept.append((a[near], b[near], dist[near], diff[near]))
    a, b, dist, diff = (
        (np.concatenate([np.empty(0, dtype=x[0].dtype), *x]) for x in zip(*kept, strict=True))
        if kept
        else (np.empty(0, dtype=np.int64),) * 4
    )
    ia, ib = ids[a], ids[b]
    keep = _texts_agree(feats, ia, ib, rule)
    loose = np.flatnonzero(keep & (dist > rule.hamming))
    keep[loose] = ~(_cosines(feats, ia[loose], ib[loose], rule.cosine) < rule.cosine)
    ia, ib, diff = ia[keep], ib[keep], diff[keep]
    order = np.lexsort((ib, ia, diff))
    return list(zip(diff[order].tolist(), ia[order].tolist(), ib[order].tolist(), strict=True))


def _pairs(ids, vectors, hashes, rule, texts) -> list[tuple[float, int, int]]:
    """Every near-duplicate pair (content difference, id, id) among ``ids`` (rows of unit
    ``vectors``) with a current signature in ``hashes``, each once, closest first."""
    rows = np.array([n for n, i in enumerate(ids.tolist()) if is_current(hashes.get(i, ""))], dtype=np.int64)
    if len(rows) < 2:
        return []
    kept = np.asarray(ids)[rows].astype(np.int64)
    sigs = [hashes[int(i)] for i in kept]
    row_of = {int(i): int(r) for i, r in zip(kept, rows, strict=True)}
    feats = _Features(
        vectors=lambda some: np.asarray(vectors)[[row_of[int(i)] for i in some]],
        texts=lambda some: {int(i): texts[int(i)] for i in some if texts.get(int(i))},
    )
    return _checked_pairs(kept, _codes(sigs), _thumbs(sigs), rule, feats)


def _stored_pairs(store, dim: int, rule: DuplicateRule) -> list[tuple[float, int, int]]:
    """:func:`_pairs` of the whole index, read from ``store`` (call it inside one snapshot):
    the hash and thumbnail of every image (200 bytes each), then the texts and vectors of
    the pairs left after the thumbnails only, never every vector."""
    ids, codes, thumbs = store.duplicates.signature_arrays(_SIG_LEN)

    def vectors(some: np.ndarray) -> np.ndarray:
        vecs, found = store.embeddings.of_many(some.tolist(), dim)
        if not found.all():  # the ids come from the same snapshot, joined with the embeddings
            raise RuntimeError("a vector vanished inside the regrouping snapshot")
        return vecs

    feats = _Features(vectors=vectors, texts=lambda some: store.duplicates.texts(some.tolist()))
    return _checked_pairs(ids, codes, thumbs, rule, feats)


def _texts_differ(a: frozenset[str], b: frozenset[str], rule: DuplicateRule) -> bool:
    if len(a) < MIN_NUMBERS or len(b) < MIN_NUMBERS:
        return False  # too little text on one of them to tell
    return len(a & b) / len(a | b) < rule.numbers


def find_groups(
    ids: np.ndarray,
    vectors: np.ndarray,
    hashes: dict[int, str],
    rule: DuplicateRule,
    texts: dict[int, str] | None = None,
    apart: set[tuple[int, int]] | None = None,
) -> list[list[int]]:
    """Group near duplicates among ``ids`` (int64, rows of unit ``vectors``) by their
    signatures (images without a current one are left out) and OCR ``texts``.

    :param apart: pairs of ids (smaller first) the user marked as not duplicates: never linked.
    :returns: groups of two or more ids, each sorted, groups sorted by first id.
    """
    from searchengine.store.duplicates import complete_groups

    pairs = _pairs(ids, vectors, hashes, rule, texts or {})
    return complete_groups([(a, b) for _, a, b in pairs if (a, b) not in (apart or ())])


def rehash_stale(store) -> tuple[int, int]:
    """Compute again, from the files, the signatures an older version stored (an index
    built before this one). Returns (rehashed, unreadable); unreadable images keep their
    old hash and stay out of the groups until they are indexed again."""
    from searchengine.errors import UnsupportedImage
    from searchengine.imaging import load_image
    from searchengine.store.images import ImageWrite

    stale = store.duplicates.stale(PHASH_STAGE, PHASH_TOOL)
    if stale:
        log.info("computing the duplicate signatures of %d images again (older version)", len(stale))
    done, failed, writes = 0, 0, []
    for path in stale:
        try:
            sig = perceptual_hash(load_image(path)[0])
        except (UnsupportedImage, OSError):
            failed += 1
            continue
        writes.append(ImageWrite(path, phash=sig, stages={PHASH_STAGE: (PHASH_TOOL, None)}))
        if len(writes) >= 256:
            store.images.write_batch(writes)
            done, writes = done + len(writes), []
    store.images.write_batch(writes)
    return done + len(writes), failed


def regroup(store, rule: DuplicateRule) -> list[list[int]]:
    """Find the near-duplicate groups of the whole index with ``rule`` and store them, with
    the rule (an index with no vectors yet has none). Signatures an older version stored
    are computed again first.

    Everything is read in one snapshot with the pending mark, so storing the groups clears
    the mark only when nothing changed meanwhile (see :mod:`searchengine.store.duplicates`).
    What is read is each image's frame hash and thumbnail (200 bytes an image), then only
    what the candidate pairs need (:func:`_stored_pairs`): about 200 MB at 1M images, where
    every vector was 1.5 GB. The pairs are found and checked inside the read snapshot (the
    vectors are read lazily), so it stays open for the whole search: WAL checkpoints wait
    meanwhile, writers do not.
    """
    from searchengine.store.duplicates import complete_groups

    enc = store.encoder()
    if enc is None:
        return []
    rehash_stale(store)
    with store.snapshot():
        seen = store.duplicates.state()
        pairs = _stored_pairs(store, enc.dim, rule)
        apart = store.duplicates.apart()
    groups = complete_groups([(a, b) for _, a, b in pairs if (a, b) not in apart])
    store.duplicates.replace(groups, rule.as_dict(), seen)
    return groups


def regroup_if_due(store, rule: DuplicateRule) -> bool:
    """Regroup when a change awaits it (a run that died before regrouping) or the groups
    were found with another rule; returns whether it did.

    Only due (same rule) and the index cannot be written (a read-only folder, a full
    disk): the stored groups stay, with a warning, rather than failing a read.
    """
    if not rule.is_stored(store):
        regroup(store, rule)
        return True
    if not store.duplicates.pending():
        return False
    try:
        regroup(store, rule)
    except (sqlite3.OperationalError, OSError) as exc:
        log.warning("the duplicate groups may be out of date (a change awaits regrouping): %s", exc)
        return False
    return True


def _content_pairs(store, ids: list[int], image: int | None) -> list[tuple[str, str]]:
    """The pairs of contents (sha256) that ``ids`` name: every pair among them, or, with
    ``image``, the image and each of them. Unknown or unsearchable ids are a NotFound."""
    from searchengine.errors import NotFound, SearchEngineError

    members = list(dict.fromkeys(i for i in ids if i != image))
    if image is None and len(members) < 2:
        raise SearchEngineError("name at least two different images to mark as not duplicates")
    if image is not None and not members:
        raise SearchEngineError("name the images that this image is not a duplicate of")
    wanted = members + ([image] if image is not None else [])
    sha = store.duplicates.contents(wanted)
    missing = [str(i) for i in wanted if i not in sha]
    if missing:
        raise NotFound(f"not searchable indexed images: {', '.join(missing[:20])}")
    if image is not None:
        return [(sha[image], sha[m]) for m in members]
    return [(sha[x], sha[y]) for n, x in enumerate(members) for y in members[n + 1 :]]


def mark_not_duplicates(store, ids: list[int], image: int | None = None) -> int:
    """Remember that the images ``ids`` are not duplicates of each other (with ``image``: that
    it is not a duplicate of any of them). Kept by content, so it outlives moves, re-indexing
    and regrouping; the stored groups split at once. Returns how many pairs were new."""
    return store.duplicates.mark_apart(_content_pairs(store, ids, image))


def unmark_not_duplicates(store, ids: list[int], image: int | None = None) -> int:
    """Undo :func:`mark_not_duplicates` for the same images; returns how many marks went.
    The groups are found again (they are pending until then)."""
    gone = store.duplicates.unmark_apart(_content_pairs(store, ids, image))
    if gone:
        regroup_if_due(store, DuplicateRule.of_index(store))
    return gone
