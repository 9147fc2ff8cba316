"""Time and peak memory of `searchengine tune` for 1k and 5k pairs (2 cores, CPU).

Pairs come from flickr8k_dev1k: 200 images x 5 captions = 1,000 pairs and
1,000 images x 5 captions = 5,000 pairs. Each run is a fresh process (`--no-apply`:
encoding the pairs with the frozen encoder, then training), measured from outside:
wall time and peak resident memory (ru_maxrss of the child).

    python bench/bench_tune.py ../shared/datasets/flickr8k_dev1k
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXE = str(Path(sys.executable).with_name("searchengine"))


def measured(args: list[str]) -> tuple[float, float, str]:
    """Run a command; return (wall seconds, peak RSS MiB, stdout)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    out, err = proc.stdout.read(), proc.stderr.read()
    if status:
        raise SystemExit(f"{' '.join(args)} failed:\n{err}")
    return wall, usage.ru_maxrss / 1024, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", type=Path, help="flickr8k_dev1k folder")
    args = ap.parse_args()
    args.dataset = args.dataset.resolve()
    records = [json.loads(line) for line in (args.dataset / "annotations.jsonl").open()]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # an index to tune: a few sample images are enough with --no-apply
        sample = Path(__file__).resolve().parent.parent / "data" / "sample" / "photos"
        subprocess.run(
            [EXE, "index", str(sample), "--index", str(tmp / "index"), "-q"],
            check=True,
            env={**os.environ, "SE_OCR": "none", "SE_CAPTIONER": "none"},
            capture_output=True,
        )
        rows = [
            "| pairs | images | wall (s) | peak RSS (MiB) | val R@1 before -> after |",
            "|---:|---:|---:|---:|---|",
        ]
        for n_images in (200, 1000):
            pairs = tmp / f"pairs-{n_images}.jsonl"
            pairs.write_text(
                "".join(
                    json.dumps({"file": str(args.dataset / r["file"]), "captions": r["captions"]}) + "\n"
                    for r in records[:n_images]
                )
            )
            report = tmp / f"report-{n_images}.json"
            wall, rss, _ = measured(
                [
                    EXE,
                    "tune",
                    str(pairs),
                    "--index",
                    str(tmp / "index"),
                    "--no-apply",
                    "-q",
                    "--report",
                    str(report),
                ]
            )
            rep = json.loads(report.read_text())
            n_pairs = rep["train"]["texts"] + rep["validation"]["texts"]
            rows.append(
                f"| {n_pairs:,} | {n_images:,} | {wall:.1f} | {rss:.0f} | "
                f"{rep['before']['R@1']:.3f} -> {rep['after']['R@1']:.3f} |"
            )
            print(rows[-1], file=sys.stderr)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
