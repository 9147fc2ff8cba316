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
different items into one large group. Candidates come from an exact binary FAISS
range search over the hashes, so no pair within the loose distance is missed.

On near_duplicates the defaults find 98.0% of the true pairs (588 of 600) with no false
pair, where version 1 (hash and cosine only, connected components) found 99.5% at 92.6%
precision. Among 3,100 distinct catalogue photos and receipts they form 5 false groups
of two images, where version 1 formed 73, the largest of 57 (docs/evaluation.md,
``bench/eval_duplicates.py``).
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
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
    """Signatures -> (N, 64, 3) float32 content thumbnails."""
    raw = b"".join(bytes.fromhex(s[17:]) for s in signatures)
    return np.frombuffer(raw, dtype=np.uint8).reshape(len(signatures), -1, 3).astype(np.float32)


def _bits(hashes: list[str]) -> np.ndarray:
    """Signatures -> (N, 64) uint8 bit matrix of their frame hashes."""
    raw = np.array([int(h[:16], 16) for h in hashes], dtype=np.uint64)
    return ((raw[:, None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)).astype(np.uint8)


def _pairs(ids, vectors, hashes, rule, texts) -> list[tuple[float, int, int]]:
    """Every near-duplicate pair (content difference, id, id), each once, closest first."""
    import faiss

    rows = [n for n, i in enumerate(ids.tolist()) if is_current(hashes.get(i, ""))]
    if len(rows) < 2:
        return []
    sigs = [hashes[int(ids[n])] for n in rows]
    index = faiss.IndexBinaryFlat(64)
    index.add(_codes(sigs))
    lims, dist, found = index.range_search(_codes(sigs), rule.hamming_loose + 1)  # distance < radius
    thumbs = _thumbs(sigs)
    nums = {n: numbers(texts.get(int(ids[rows[n]]), "")) for n in range(len(rows))} if texts else {}
    pairs = []
    for a in range(len(rows)):
        for d, b in zip(dist[lims[a] : lims[a + 1]], found[lims[a] : lims[a + 1]], strict=True):
            b = int(b)
            if b <= a:  # each pair once, never itself
                continue
            if d > rule.hamming and float(vectors[rows[a]] @ vectors[rows[b]]) < rule.cosine:
                continue
            diff = float(np.abs(thumbs[a] - thumbs[b]).max(axis=1).mean())
            if diff > rule.content or (nums and _texts_differ(nums[a], nums[b], rule)):
                continue
            pairs.append((diff, int(ids[rows[a]]), int(ids[rows[b]])))
    return sorted(pairs)


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
    """
    enc = store.encoder()
    if enc is None:
        return []
    rehash_stale(store)
    with store.snapshot():
        seen = store.duplicates.state()
        ids, vecs = store.embeddings.all(enc.dim)
        hashes, texts = store.duplicates.phashes(), store.duplicates.texts()
        apart = store.duplicates.apart()
    groups = find_groups(ids, vecs, hashes, rule, texts, apart)
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
