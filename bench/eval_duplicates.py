"""Near-duplicate grouping: recall on near_duplicates, false groups on hard negatives.

1. near_duplicates (600 true pairs): indexes the set with the offline encoder (no OCR,
   no captions; the pipeline computes the signatures), then groups it with each rule
   of the table in docs/evaluation.md. Every pair inside a predicted group is one
   predicted pair: pair precision and recall.
2. Hard negatives (``--hard``): indexes already built with OCR (e.g. fashion_products_3k,
   catalogue photos of distinct products on white, and sroie_dev100, receipts, some of
   one shop), grouped together. Their vectors and OCR text are reused; the signatures
   are computed again from the files. A predicted pair is right only when both files
   have the same content (sha256); every group holding another pair is a false group.

The rules: "before" is the rule of version 1 (frame hash and cosine only, groups as
connected components); the others are this version's (complete groups).

    python bench/eval_duplicates.py ../shared/datasets/near_duplicates \\
        --hard /work/evalidx/fashion_products_3k /work/evalidx/sroie_dev100 [--keep /tmp/nd_index]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from searchengine.duplicates import DuplicateRule, _pairs, find_groups, perceptual_hash
from searchengine.imaging import load_image
from searchengine.store.db import Store

OFF = 255.0, 0.0  # content and numbers thresholds that let every pair through
RULES = [
    ("before: hash <= 2, or <= 4 with cosine >= 0.9; connected components", DuplicateRule(2, 4, 0.9, *OFF)),
    ("hash tiers + content <= 10; complete groups (no text)", DuplicateRule(numbers=0.0)),
    ("hash tiers + content <= 8 + numbers >= 0.45", DuplicateRule(content=8.0)),
    ("**hash tiers + content <= 10 + numbers >= 0.45 (default)**", DuplicateRule()),
    ("hash tiers + content <= 12 + numbers >= 0.45", DuplicateRule(content=12.0)),
    ("hash <= 4 alone + content <= 10 + numbers >= 0.45", DuplicateRule(4, 4, 1.0)),
]


def pairs_of(groups: list[list[int]]) -> set[tuple[int, int]]:
    return {(g[i], g[j]) for g in groups for i in range(len(g)) for j in range(i + 1, len(g))}


def components(ids, vecs, hashes, rule, texts=None) -> list[list[int]]:
    """Version 1's grouping: the connected components of the near-duplicate pairs."""
    parent: dict[int, int] = {}

    def root(x: int) -> int:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for _, a, b in _pairs(ids, vecs, hashes, rule, texts or {}):
        parent[root(a)] = root(b)
    groups: dict[int, list[int]] = {}
    for x in parent:
        groups.setdefault(root(x), []).append(x)
    return sorted((sorted(g) for g in groups.values() if len(g) > 1), key=lambda g: g[0])


def group(name, ids, vecs, hashes, rule, texts=None) -> list[list[int]]:
    fn = components if name.startswith("before") else find_groups
    return fn(ids, vecs, hashes, rule, texts)


def near_duplicates(folder: Path, keep: Path | None) -> list[str]:
    from indexer.pipeline import Indexer
    from searchengine.models.registry import create_embedder

    with tempfile.TemporaryDirectory() as tmp:
        index = keep or Path(tmp) / "index"
        store = Store(index)
        Indexer(store, create_embedder("offline"), duplicates=None).run(folder)  # a kept index: no-op
        by_path = {p: i for i, p in store.images.searchable_paths()}
        records = [json.loads(line) for line in (folder / "annotations.jsonl").open()]
        truth = {
            tuple(sorted((by_path[str(folder / r["file"])], by_path[str(folder / r["duplicate_file"])])))
            for r in records
        }
        ids, vecs = store.embeddings.all(store.encoder().dim)
        hashes = store.duplicates.phashes()
    rows = ["| rule | predicted pairs | precision | recall | ms |", "|---|---:|---:|---:|---:|"]
    for name, rule in RULES:
        t0 = time.perf_counter()
        pred = pairs_of(group(name, ids, vecs, hashes, rule))
        ms = (time.perf_counter() - t0) * 1000
        hit = len(pred & truth)
        precision, recall = hit / max(len(pred), 1), hit / len(truth)
        rows.append(f"| {name} | {len(pred)} | {precision:.3f} | {recall:.3f} | {ms:.0f} |")
        print(rows[-1], flush=True)
    return rows


def load_hard(indexes: list[Path]):
    """The images of several indexes together (ids offset by 10^7 per index): ids, vectors,
    signatures computed from the files, OCR texts, sha256 and paths."""
    ids, vecs, sigs, texts, sha, paths = [], [], {}, {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for n, src in enumerate(indexes):
            copy = Path(tmp) / str(n)
            shutil.copytree(src, copy)  # never touch the original
            store = Store(copy)
            off = n * 10_000_000
            i, v = store.embeddings.all(store.encoder().dim)
            ids.append(i + off)
            vecs.append(v)
            texts.update({k + off: t for k, t in store.duplicates.texts().items()})
            query = "SELECT id, path, sha256 FROM images WHERE status = 'ok'"
            for k, path, digest in store.db.execute(query):
                sha[k + off], paths[k + off] = digest, path
                sigs[k + off] = perceptual_hash(load_image(path)[0])
            store.close()
    return np.concatenate(ids), np.concatenate(vecs), sigs, texts, sha, paths


def hard_negatives(indexes: list[Path], show: int) -> list[str]:
    ids, vecs, sigs, texts, sha, paths = load_hard(indexes)
    same = pairs_of([g for g in _by(sha).values() if len(g) > 1])
    rows = [
        "| rule | groups | images | false groups | largest | false pairs | same-file pairs found |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, rule in RULES:
        groups = group(name, ids, vecs, sigs, rule, texts)
        false = [g for g in groups if pairs_of([g]) - same]
        found = len(pairs_of(groups) & same)
        rows.append(
            f"| {name} | {len(groups)} | {sum(map(len, groups))} | {len(false)} | "
            f"{max(map(len, groups), default=0)} | {len(pairs_of(groups) - same)} | {found}/{len(same)} |"
        )
        print(rows[-1], flush=True)
        for g in false[:show]:
            print("   false group:", " ".join(Path(paths[i]).name for i in g), flush=True)
    return rows


def _by(sha: dict[int, str]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for i, digest in sorted(sha.items()):
        out.setdefault(digest, []).append(i)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", type=Path, help="near_duplicates folder")
    ap.add_argument("--hard", type=Path, nargs="*", default=[], help="indexes of distinct images (OCR on)")
    ap.add_argument("--keep", type=Path, help="index near_duplicates here once and reuse it")
    ap.add_argument("--show", type=int, default=0, help="print this many false groups per rule")
    args = ap.parse_args()
    rows = near_duplicates(args.dataset.resolve(), args.keep)
    if args.hard:
        rows += ["", *hard_negatives(args.hard, args.show)]
    print("\n".join(rows))


if __name__ == "__main__":
    main()
