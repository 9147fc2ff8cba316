"""Near-duplicate regrouping at scale: time and peak RSS of ``regroup``, now and before.

Before (``--impl before``): the module as it was at a git revision (``--before-rev``, read
with ``git show``): every vector read (``Embeddings.all``), every signature, then an
all-against-all ``IndexBinaryFlat.range_search`` and a Python loop over its pairs. Now
(``--impl now``, the working tree): the frame hashes and thumbnails only, candidates by
multi-index hashing (``candidate_blocks``), vectors of the loose pairs only.

Synthetic catalogue, deterministic per image (``Catalogue``): families of three images;
the first an original product, the second a re-encoded copy of it 30% of the time (0-2
hash bits flipped, thumbnail within 2 levels, cosine about 0.98), the third a variant 20% of
the time (2-4 bits, the same thumbnail within 6 levels, cosine about 0.9: some pass the rule,
some not), every other image another product. Originals' hashes are either

* ``uniform``: random 64-bit codes (a varied photo library: look-alikes are rare), or
* ``catalogue``: 300 "poses" with each bit flipped with probability 7.3%, which gives about
  the share of pairs within 4 bits of the real fashion_products_3k photos (851 of its 4.5M
  pairs, 1.9e-4, measured 2026-12-02): products shot in one pose on white collide.

Thumbnails and vectors (384-d) of different products are unrelated, OCR numbers on 10%.

Phases (each its own process, so that its peak RSS is its own):

* ``build``: write the images into ``OUT/nN-CODES/base`` (SQLite rows, vectors, signatures,
  OCR) as an index run does, 5,000 per transaction; once per size;
* ``regroup``: ``regroup`` on that store (``--impl``), ``--repeat`` runs, median and all;
* ``memory``: no SQLite: ``_pairs`` on the catalogue generated in memory (``--impl``), for
  sizes whose store takes too long to write; its RSS includes the catalogue.

    python bench/bench_duplicates.py --n 100000 --codes catalogue --phase build
    python bench/bench_duplicates.py --n 100000 --codes catalogue --phase regroup --impl now --repeat 3
    python bench/bench_duplicates.py --n 100000 --codes catalogue --phase regroup --impl before
    python bench/bench_duplicates.py --n 1000000 --codes uniform --phase memory --impl now

Each run prints one JSON line and appends it to ``OUT/results.jsonl``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from bench_scale import peak_mb, rss_mb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DIM = 384
BATCH = 5000
POSES, POSE_FLIP = 300, 0.073


class Catalogue:
    """Images ``start .. start+count-1`` of the synthetic catalogue (see the module docstring);
    the same rows whatever the batch they are made in, as long as batches start at multiples
    of 3 (a family never spans two batches)."""

    def __init__(self, codes: str) -> None:
        self.codes = codes
        self.poses = np.random.default_rng(1).integers(0, 2, (POSES, 64), dtype=np.uint8)

    def _originals(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
        if self.codes == "uniform":
            bits = rng.integers(0, 2, (n, 64), dtype=np.uint8)
        else:
            bits = self.poses[rng.integers(0, POSES, n)] ^ (rng.random((n, 64)) < POSE_FLIP)
        thumbs = rng.integers(0, 256, (n, 192)).astype(np.int16)
        vecs = rng.normal(size=(n, DIM)).astype(np.float32)
        return bits.astype(np.uint8), thumbs, vecs / np.linalg.norm(vecs, axis=1, keepdims=True)

    @staticmethod
    def _near(rng, base, flips: tuple[int, int], level: int, noise: float) -> tuple[np.ndarray, ...]:
        bits, thumbs, vecs = (x.copy() for x in base)
        count = rng.integers(flips[0], flips[1] + 1, len(bits))  # that many distinct bits flipped
        bits ^= (rng.random(bits.shape).argsort(axis=1).argsort(axis=1) < count[:, None]).astype(np.uint8)
        thumbs = thumbs + rng.integers(-level, level + 1, thumbs.shape)
        vecs = vecs + rng.normal(scale=noise, size=vecs.shape).astype(np.float32)
        return bits, thumbs, vecs / np.linalg.norm(vecs, axis=1, keepdims=True)

    def rows(self, start: int, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, list]:
        """``(codes (count, 8) uint8, thumbnails (count, 192) uint8, vectors, texts)``."""
        rng = np.random.default_rng([17, start])
        fams = count // 3
        orig = self._originals(rng, count)
        copy = self._near(rng, tuple(x[0::3][:fams] for x in orig), (0, 2), 2, 0.009)
        variant = self._near(rng, tuple(x[0::3][:fams] for x in orig), (2, 4), 6, 0.024)
        is_copy, is_variant = rng.random(fams) < 0.3, rng.random(fams) < 0.2
        out = [x.copy() for x in orig]
        for k in range(3):
            out[k][1::3][:fams][is_copy] = copy[k][is_copy]
            out[k][2::3][:fams][is_variant] = variant[k][is_variant]
        bits, thumbs, vecs = out
        texts = [
            " ".join(map(str, rng.integers(10, 99, 6))) if rng.random() < 0.1 else "" for _ in range(count)
        ]
        return (
            np.packbits(bits, axis=1),
            np.clip(thumbs, 0, 255).astype(np.uint8),
            vecs.astype(np.float32),
            texts,
        )


def digest(groups: list[list[int]]) -> str:
    """A fingerprint of the groups, to tell two implementations' results equal."""
    import hashlib

    return hashlib.sha1(json.dumps(groups).encode()).hexdigest()[:12]


def signature(code: np.ndarray, thumb: np.ndarray) -> str:
    return f"{code.tobytes().hex()}-{thumb.tobytes().hex()}"


def load_impl(impl: str, rev: str):
    """The duplicates module now, or as it was at git revision ``rev``."""
    if impl == "now":
        import searchengine.duplicates as mod

        return mod
    src = subprocess.run(
        ["git", "show", f"{rev}:searchengine/duplicates.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    spec = importlib.util.spec_from_loader("duplicates_before", loader=None)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["duplicates_before"] = mod
    exec(compile(src, f"{rev}:searchengine/duplicates.py", "exec"), mod.__dict__)
    return mod


def phase_build(args, base: Path) -> dict:
    import shutil

    from searchengine.duplicates import PHASH_STAGE, PHASH_TOOL
    from searchengine.records import EncoderId, OcrLine, OcrResult
    from searchengine.store.db import Store
    from searchengine.store.images import ImageWrite

    if base.exists():
        shutil.rmtree(base)
    store = Store(base)
    store.bind_encoder(EncoderId("synthetic", "bench", DIM))
    cat, box = Catalogue(args.codes), ((0, 0), (1, 0), (1, 1), (0, 1))
    t0 = time.perf_counter()
    for start in range(0, args.n, BATCH):
        codes, thumbs, vecs, texts = cat.rows(start, min(BATCH, args.n - start))
        writes = []
        for j in range(len(codes)):
            i = start + j
            row = {"path": f"/c/{i:08d}.jpg", "root": "/c", "sha256": f"{i:064x}", "size": 1, "mtime_ns": 1,
                   "width": 8, "height": 8, "format": "JPEG", "status": "ok", "error": None}  # fmt: skip
            ocr = OcrResult((OcrLine(texts[j], 0.9, box),)) if texts[j] else None
            stages = {PHASH_STAGE: (PHASH_TOOL, None), **({"ocr": ("synthetic", None)} if ocr else {})}
            writes.append(ImageWrite(row["path"], row=row, vector=vecs[j].tobytes(), ocr=ocr,
                                     phash=signature(codes[j], thumbs[j]), stages=stages))  # fmt: skip
        store.images.write_batch(writes)
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return {
        "build_s": round(time.perf_counter() - t0, 1),
        "db_mb": round((base / "index.db").stat().st_size / 2**20),
    }


def phase_regroup(args, base: Path) -> dict:
    from searchengine.store.db import Store

    mod = load_impl(args.impl, args.before_rev)
    times, groups = [], []
    before = rss_mb()
    for _ in range(args.repeat):
        store = Store(base)
        store.duplicates.mark_pending()  # as an index run leaves it
        t0 = time.perf_counter()
        groups = mod.regroup(store, mod.DEFAULT_RULE)
        times.append(time.perf_counter() - t0)
        store.close()
    return {"regroup_s": round(statistics.median(times), 2), "runs_s": [round(t, 2) for t in times],
            "groups": len(groups), "groups_sha1": digest(groups), "rss_before_mb": before,
            "peak_mb": peak_mb()}  # fmt: skip


def phase_memory(args, base: Path) -> dict:
    mod = load_impl(args.impl, args.before_rev)
    cat = Catalogue(args.codes)
    parts = [cat.rows(s, min(BATCH * 20, args.n - s)) for s in range(0, args.n, BATCH * 20)]
    codes, thumbs, vecs = (np.concatenate([p[k] for p in parts]) for k in range(3))
    texts = {i: t for i, t in enumerate(t for p in parts for t in p[3]) if t}
    hashes = {i: signature(codes[i], thumbs[i]) for i in range(args.n)}
    ids = np.arange(args.n, dtype=np.int64)
    del parts
    before = rss_mb()
    times, found = [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        found = mod.find_groups(ids, vecs, hashes, mod.DEFAULT_RULE, texts)
        times.append(time.perf_counter() - t0)
    return {"regroup_s": round(statistics.median(times), 2), "runs_s": [round(t, 2) for t in times],
            "groups": len(found), "groups_sha1": digest(found), "rss_before_mb": before,
            "peak_mb": peak_mb()}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--codes", choices=("uniform", "catalogue"), default="catalogue")
    ap.add_argument("--phase", choices=("build", "regroup", "memory"), required=True)
    ap.add_argument("--impl", choices=("now", "before"), default="now")
    ap.add_argument("--before-rev", default="5217085")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--out-dir", type=Path, default=Path("/tmp/dupbench"))
    args = ap.parse_args()
    args.n -= args.n % 3  # whole families
    base = args.out_dir / f"n{args.n}-{args.codes}" / "base"
    base.parent.mkdir(parents=True, exist_ok=True)
    run = {"build": phase_build, "regroup": phase_regroup, "memory": phase_memory}[args.phase]
    out = {"n": args.n, "codes": args.codes, "phase": args.phase, "impl": args.impl, **run(args, base)}
    out["at"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    print(json.dumps(out), flush=True)
    with (args.out_dir / "results.jsonl").open("a") as f:
        f.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
