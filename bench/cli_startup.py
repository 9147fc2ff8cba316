"""CLI start-up: whole-process wall clock of the everyday commands, median of N runs.

Builds an index of a folder (default data/sample) in a temporary directory with a
temporary XDG_DATA_HOME (a user's index is never touched), runs one untimed warm-up
of each command (the OS file cache, and the label-embedding cache in
XDG_CACHE_HOME on a first run ever), then times each command N times as a fresh
``python -m searchengine`` process and prints the medians (and min/max).

    python bench/cli_startup.py                 # data/sample, 5 runs
    python bench/cli_startup.py --runs 9 --folder data/sample --json out.json

The machine's load average is printed with the figures: on a shared machine they
are upper bounds of the idle figures.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: label -> arguments after ``python -m searchengine`` ({folder} is the indexed folder)
COMMANDS: dict[str, list[str]] = {
    "search (hybrid, offline encoder)": ["search", "red car"],
    "search --mode keyword": ["search", "--mode", "keyword", "red car"],
    "info": ["info"],
    "models": ["models"],
    "index (unchanged)": ["index", "-q", "{folder}"],
}


def run(args: list[str], env: dict[str, str]) -> float:
    """Run one CLI process; return its wall clock in seconds (it must exit 0)."""
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "searchengine", *args], env=env, cwd=ROOT, capture_output=True, text=True
    )
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return seconds


def load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folder", type=Path, default=ROOT / "data" / "sample")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--json", type=Path, default=None, help="Also write the figures here.")
    opts = ap.parse_args()
    folder = str(opts.folder.resolve())
    with tempfile.TemporaryDirectory(prefix="cli-startup-") as tmp:
        env = {**os.environ, "XDG_DATA_HOME": str(Path(tmp) / "data"), "SE_INDEX": str(Path(tmp) / "index")}
        env.pop("SE_MODEL", None)
        t0 = time.perf_counter()
        run(["index", "-q", folder], env)
        print(f"built the index of {folder} in {time.perf_counter() - t0:.1f}s; load average {load()}")
        results = {}
        for label, template in COMMANDS.items():
            args = [a.format(folder=folder) for a in template]
            run(args, env)  # warm-up, not timed
            times = [run(args, env) for _ in range(opts.runs)]
            results[label] = {
                "command": "searchengine " + shlex.join(args),
                "median_s": round(statistics.median(times), 2),
                "min_s": round(min(times), 2),
                "max_s": round(max(times), 2),
            }
            r = results[label]
            print(f"{label:34s} median {r['median_s']:6.2f}s  (min {r['min_s']:.2f}, max {r['max_s']:.2f})")
    print(f"runs per command: {opts.runs}; load average after: {load()}; cpus: {os.cpu_count()}")
    if opts.json:
        opts.json.write_text(json.dumps({"runs": opts.runs, "load": load(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
