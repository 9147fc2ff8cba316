"""Seconds per image for each indexing stage, and a whole-pipeline run with CPU use.

Stages are timed alone on already-decoded images (decode, embed in batches of 16,
offline caption in batches of 16, rapidocr one image at a time) on flickr8k photos
and sroie receipts; then a full default index run (offline encoder + rapidocr +
offline captioner) of a folder reports images/s and CPU utilisation: process CPU
seconds / (wall seconds x cores).

    python bench/bench_stages.py ../shared/datasets [--images 64] [--pipeline flickr8k_dev1k]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

from indexer.pipeline import Indexer
from searchengine.imaging import load_image
from searchengine.models.ocr import OCR_SIDE
from searchengine.models.registry import create_captioner, create_embedder, create_ocr
from searchengine.store.db import Store


def _files(dataset: Path, n: int) -> list[Path]:
    recs = [json.loads(line) for line in (dataset / "annotations.jsonl").open()][:n]
    return [dataset / r["file"] for r in recs]


def per_image(fn, items, batch: int) -> float:
    """Median seconds per image over batches of ``batch`` (first batch is warm-up)."""
    fn(items[:batch])
    times = []
    for i in range(0, len(items), batch):
        chunk = items[i : i + batch]
        t = time.perf_counter()
        fn(chunk)
        times.append((time.perf_counter() - t) / len(chunk))
    return statistics.median(times)


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("datasets", type=Path)
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--pipeline", default="flickr8k_dev1k")
    args = ap.parse_args()
    embedder, captioner, ocr = create_embedder("offline"), create_captioner("offline"), create_ocr("rapidocr")
    embedder.load()
    rows = []
    for name in ("flickr8k_dev1k", "sroie_dev100"):
        files = _files(args.datasets / name, args.images)
        t = time.perf_counter()
        small = [load_image(f)[0] for f in files]
        decode = (time.perf_counter() - t) / len(files)
        big = [load_image(f, max_side=OCR_SIDE)[0] for f in files]
        rows.append(
            {
                "set": name,
                "decode": decode,
                "embed": per_image(embedder.embed_images, small, 16),
                "caption": per_image(lambda ims: captioner.caption(ims, [""] * len(ims)), small, 16),
                "ocr": per_image(lambda ims: [ocr.read(im) for im in ims], big, 1),
            }
        )
    print("| images | decode (s/img) | embed (s/img) | caption (s/img) | OCR (s/img) |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['set']} (first {args.images}) | {r['decode']:.4f} | {r['embed']:.4f} | "
            f"{r['caption']:.4f} | {r['ocr']:.3f} |"
        )
    folder = args.datasets / args.pipeline
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "index")
        c0, t0 = cpu_seconds(), time.perf_counter()
        report = Indexer(store, embedder, ocr=ocr, captioner=captioner).run(folder)
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    cores = os.cpu_count() or 1
    print(
        f"\nfull default pipeline on {args.pipeline}: {report.embedded} images in {wall:.1f} s "
        f"= {report.embedded / wall:.1f} images/s ({wall / report.embedded:.3f} s/img); "
        f"CPU {cpu:.0f} s over {cores} cores = {100 * cpu / (wall * cores):.0f}% utilisation; "
        f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
    )


if __name__ == "__main__":
    main()
