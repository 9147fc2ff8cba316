"""Before/after figures for `searchengine tune` on images it was not trained on.

Two experiments, each through the real CLI, with the default offline encoder:

* ``coco``: tune on flickr8k_dev1k (5,000 caption pairs), then evaluate caption
  retrieval on coco_mini (never seen in training);
* ``fashion``: split fashion_products_3k in two halves of products (seeded); tune on
  the titles of one half, evaluate title and attribute queries on the other half,
  from the images alone (no metadata imported).

    python bench/eval_tuning.py ../shared/datasets [--only coco|fashion]

Writes markdown tables to stdout and JSON to bench/out/tuning-*.json.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from gallery import place

OUT = Path(__file__).parent / "out"
EXE = str(Path(sys.executable).with_name("searchengine"))


def cli(*args: str) -> str:
    done = subprocess.run([EXE, *map(str, args)], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"searchengine {' '.join(map(str, args))} failed:\n{done.stderr}")
    return done.stdout


def evaluate(annotations: Path, index: Path) -> dict:
    return json.loads(cli("eval", annotations, "--index", index, "--json"))["results"]


def table(before: dict, after: dict) -> str:
    rows = ["| query set | leg | | R@1 | R@5 | R@10 | MRR |", "|---|---|---|---:|---:|---:|---:|"]
    for name in before:
        for leg in ("vector", "keyword", "fused"):
            if leg not in before[name]:
                continue
            for label, res in (("before", before), ("after", after)):
                m = res[name][leg]
                rows.append(
                    f"| {name} | {leg} | {label} | {m['R@1']:.3f} | {m['R@5']:.3f} | {m['R@10']:.3f} | "
                    f"{m['MRR']:.3f} |"
                )
    return "\n".join(rows)


def experiment(name: str, pairs: Path, annotations: Path, work: Path) -> dict:
    index = work / f"{name}-index"
    t0 = time.perf_counter()
    before = evaluate(annotations, index)  # builds the index (plain encoder)
    t1 = time.perf_counter()
    tune_out = cli("tune", pairs, "--index", index, "--report", work / f"{name}-tune.json", "-q")
    t2 = time.perf_counter()
    after = evaluate(annotations, index)
    tune = json.loads((work / f"{name}-tune.json").read_text())
    result = {
        "experiment": name,
        "pairs": str(pairs),
        "evaluated_on": str(annotations),
        "tune": tune,
        "tune_seconds": round(t2 - t1, 1),
        "index_and_eval_seconds": round(t1 - t0, 1),
        "before": before,
        "after": after,
    }
    OUT.mkdir(exist_ok=True)
    (OUT / f"tuning-{name}.json").write_text(json.dumps(result, indent=2))
    print(f"\n### {name}: tuned on {pairs.parent.name}, evaluated on unseen images\n")
    print(tune_out)
    print(table(before, after))
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("datasets", type=Path)
    ap.add_argument("--only", choices=["coco", "fashion"], default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.only in (None, "coco"):
            experiment(
                "coco",
                args.datasets / "flickr8k_dev1k" / "annotations.jsonl",
                args.datasets / "coco_mini" / "annotations.jsonl",
                work,
            )
        if args.only in (None, "fashion"):
            src = (args.datasets / "fashion_products_3k").resolve()
            records = [json.loads(line) for line in (src / "annotations.jsonl").open()]
            random.Random(args.seed).shuffle(records)
            half = len(records) // 2
            train_half, test_half = records[:half], records[half:]
            pairs = work / "fashion-train" / "pairs.jsonl"
            pairs.parent.mkdir()
            pairs.write_text(
                "".join(
                    json.dumps({"file": str(src / r["file"]), "captions": [r["title"]]}) + "\n"
                    for r in train_half
                )
            )
            test = work / "fashion-test"
            (test / "images").mkdir(parents=True)
            for r in test_half:  # the unseen half, hard-linked in place
                place(src / r["file"], test / "images" / Path(r["file"]).name)
            (test / "annotations.jsonl").write_text(
                "".join(json.dumps({**r, "file": f"images/{Path(r['file']).name}"}) + "\n" for r in test_half)
            )
            experiment("fashion", pairs, test / "annotations.jsonl", work)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
