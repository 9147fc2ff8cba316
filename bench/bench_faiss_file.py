"""What the checksum costs: saving and loading a Flat FAISS index with and without it.

    .venv/bin/python bench/bench_faiss_file.py [--n 50000] [--dim 512] [--repeat 3]

Compares plain ``faiss.write_index``/``read_index`` with the checksummed save (sha256 of
the bytes as they are written, temporaries, lock, two renames) and the verified load
(sha256 of the file, then FAISS reads the same open file). Prints the best of
``--repeat`` runs of each, in seconds, and the file size.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from searchengine.models.base import l2_normalize  # noqa: E402
from searchengine.store import vector_file  # noqa: E402
from searchengine.store.vectors import build_index  # noqa: E402


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    vecs = l2_normalize(np.random.default_rng(0).normal(size=(args.n, args.dim)).astype(np.float32))
    index = build_index("Flat", np.arange(args.n, dtype=np.int64), vecs)
    state = {"generation": "bench", "count": args.n, "key": "Flat", "dim": args.dim}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        plain = folder / "plain.faiss"
        rows = {
            "save, plain write_index": best(lambda: faiss.write_index(index, str(plain)), args.repeat),
            "save, checksummed": best(lambda: vector_file.save(folder, index, state), args.repeat),
            "load, plain read_index": best(lambda: faiss.read_index(str(plain)), args.repeat),
        }
        saved = vector_file.read_state(folder)
        rows["load, verified"] = best(lambda: vector_file.load(folder, saved), args.repeat)
        size = (folder / vector_file.INDEX_NAME).stat().st_size
    print(f"{args.n} vectors x {args.dim} dims, Flat, file {size / 1e6:.1f} MB (best of {args.repeat})")
    for name, seconds in rows.items():
        print(f"  {name:26s} {seconds:7.3f} s  ({size / 1e6 / seconds:6.0f} MB/s)")


if __name__ == "__main__":
    main()
