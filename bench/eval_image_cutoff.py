"""The image-query cutoff (searchengine.search.cutoff.NEIGHBOURHOODS), both sides, through
``SearchEngine.run`` exactly as ``search --image``/``--like`` and ``/api/search`` run it.

Kept (queries whose image is there):

* *same photo*: a near_duplicates re-encoding of a photo that an eval index holds, uploaded
  to that index; the original is the one relevant image (Recall@1/10).
* *detail photo*: coco_cbir_pairs' logo/detail photos against their scenes (Recall@10).
* *find similar*: ``like`` = a fashion product; precision@10 of the same articleType, and how
  many hits a query keeps.

Rejected (queries whose kind of image is not there): receipts uploaded to the fashion and
flickr indexes, products and photos uploaded to the receipts index, COCO photos uploaded to
the fashion index; the share that returns nothing.

    python bench/eval_image_cutoff.py --indexes /work/evalidx [--datasets ../shared/datasets]

``--indexes`` holds eval indexes built by ``searchengine eval DATASET --index DIR`` named after
their dataset (flickr8k_dev1k, fashion_products_3k, sroie_dev100, coco_cbir_pairs).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from searchengine.evaluation import indexed_path, load_annotations  # noqa: E402
from searchengine.models.adapter import split_spec  # noqa: E402
from searchengine.records import SearchRequest  # noqa: E402
from searchengine.search import SearchEngine, cutoff  # noqa: E402
from searchengine.search.engine import open_store, resolve_embedder  # noqa: E402

SWEEP = tuple(float(x) for x in os.environ.get("SWEEP", "0.005,0.01,0.02,0.05").split(","))
SAMPLE = 200


class ImageCache:
    """The index's encoder with each query image encoded once (the sweep asks many times)."""

    def __init__(self, embedder) -> None:
        self.inner, self.id, self._seen = embedder, embedder.id, {}

    def embed_texts(self, texts):
        return self.inner.embed_texts(texts)

    def embed_images(self, images):
        keys = [getattr(im, "info", {}).get("bench_key") for im in images]
        todo = [im for im, k in zip(images, keys, strict=True) if k not in self._seen]
        if todo:
            for im, vec in zip(todo, self.inner.embed_images(todo), strict=True):
                self._seen[im.info["bench_key"]] = vec
        return np.stack([self._seen[k] for k in keys])


def load(path: Path) -> Image.Image:
    im = Image.open(path).convert("RGB")
    im.info["bench_key"] = str(path)
    return im


def gather(indexes: Path, datasets: Path):
    """Return the engines and the queries: present sets, absent queries, find-similar ids."""
    rng = random.Random(0)
    engines = {}
    for name in ("flickr8k_dev1k", "fashion_products_3k", "sroie_dev100", "coco_cbir_pairs"):
        store = open_store(indexes / name)
        engines[name] = SearchEngine(store, ImageCache(resolve_embedder(store, None)))
    names = (*engines, "near_duplicates", "coco_mini")
    ann = {n: load_annotations(datasets / n / "annotations.jsonl") for n in names}

    def files(name: str, n: int | None = None) -> list[Path]:
        folder, recs = ann[name]
        paths = [folder / r["file"] for r in recs]
        return sorted(rng.sample(paths, n)) if n and n < len(paths) else paths

    present: dict[str, list[tuple[str, Path, str]]] = {"same photo": [], "detail photo": []}
    nd_folder, nd = ann["near_duplicates"]
    for target in ("flickr8k_dev1k", "fashion_products_3k"):
        folder, recs = ann[target]
        held = {Path(r["file"]).name: str(indexed_path(folder, r["file"])) for r in recs}
        for r in nd:
            if r["source_id"] in held:
                present["same photo"].append((target, nd_folder / r["file"], held[r["source_id"]]))
    cb_folder, cb = ann["coco_cbir_pairs"]
    for r in cb:
        scene = str(indexed_path(cb_folder, r["file"]))
        present["detail photo"].append(("coco_cbir_pairs", cb_folder / r["query_file"], scene))
    absent = [("fashion_products_3k", p) for p in files("sroie_dev100")]
    absent += [("flickr8k_dev1k", p) for p in files("sroie_dev100")]
    absent += [("sroie_dev100", p) for p in files("fashion_products_3k", SAMPLE)]
    absent += [("sroie_dev100", p) for p in files("flickr8k_dev1k", SAMPLE)]
    absent += [("fashion_products_3k", p) for p in files("coco_mini")]
    f_folder, f_recs = ann["fashion_products_3k"]
    kind = {str(indexed_path(f_folder, r["file"])): r["attributes"]["articleType"] for r in f_recs}
    store = engines["fashion_products_3k"].store
    likes = {store.images.by_path(p).id: kind[p] for p in rng.sample(sorted(kind), SAMPLE)}
    return engines, present, absent, likes, kind


def measure(engines, present, absent, likes, kind, extra: dict) -> dict:
    """One setting's figures (``extra``: request fields, e.g. ``min_score=-1``)."""

    def run(name: str, **fields):
        return engines[name].run(SearchRequest(limit=100, **extra, **fields)).hits

    row = {}
    for label, qs in present.items():
        ranks = []
        for name, q, rel in qs:
            paths = [h.path for h in run(name, image=load(q))]
            ranks.append(paths.index(rel) if rel in paths else 10**6)
        ranks = np.array(ranks)
        row[label] = {"n": len(ranks), "R@1": float((ranks < 1).mean()), "R@10": float((ranks < 10).mean())}
    prec, kept = [], []
    for like, article in likes.items():
        hits = run("fashion_products_3k", like=like)
        kept.append(len(hits))
        if hits:
            prec.append(np.mean([kind.get(h.path) == article for h in hits[:10]]))
    row["find similar"] = {
        "n": len(likes),
        "P@10": float(np.mean(prec)) if prec else 0.0,
        "kept (median)": float(np.median(kept)),
        "no results": sum(k == 0 for k in kept) / len(likes),
    }
    rejected = sum(not run(name, image=load(q)) for name, q in absent)
    row["absent"] = {"n": len(absent), "rejected": rejected / len(absent)}
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--indexes", type=Path, required=True)
    shared = Path(__file__).resolve().parents[2] / "shared" / "datasets"
    ap.add_argument("--datasets", type=Path, default=shared)
    args = ap.parse_args()
    material = gather(args.indexes, args.datasets)
    rows = []
    for share in (None, *SWEEP):
        for engine in material[0].values():  # the setting tried, for whichever encoder the indexes have
            base = split_spec(engine.embedder.id.spec)[0]
            cutoff.NEIGHBOURHOODS[base] = share or cutoff.NEIGHBOURHOODS.get(base, cutoff.NEIGHBOURHOOD)
            engine.vectors._memo.clear()  # the sample is kept with its share
        row = measure(*material, {"min_score": -1.0} if share is None else {})
        rows.append({"neighbourhood": share or "no cutoff", **row})
        print(json.dumps(rows[-1]), flush=True)
    print(
        "\n| neighbourhood | same photo R@1 / R@10 | detail photo R@10 | find similar P@10 / kept / none |",
        end="",
    )
    print(" absent rejected |\n|---|---:|---:|---:|---:|")
    for r in rows:
        s, d, f = r["same photo"], r["detail photo"], r["find similar"]
        similar = f"{f['P@10']:.3f} / {f['kept (median)']:.0f} / {f['no results']:.2f}"
        print(
            f"| {r['neighbourhood']} | {s['R@1']:.3f} / {s['R@10']:.3f} | {d['R@10']:.3f} | {similar} | "
            f"{r['absent']['rejected']:.3f} |"
        )
    chosen = max(rows[1:], key=lambda r: min(kept_share(r, rows[0]) / 0.9, r["absent"]["rejected"] / 0.7))
    print(f"\nchosen (max of min(kept / 0.9, rejected / 0.7), as the text cutoff): {chosen['neighbourhood']}")


def kept_share(row: dict, free: dict) -> float:
    """The share of the no-cutoff same-photo Recall@10 a setting keeps."""
    return row["same photo"]["R@10"] / max(free["same photo"]["R@10"], 1e-9)


if __name__ == "__main__":
    main()
