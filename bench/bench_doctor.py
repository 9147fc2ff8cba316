"""How long the database checks and a salvage take on a real index (works on a copy).

    .venv/bin/python bench/bench_doctor.py INDEX_DIR [--repeat 5]

Times ``PRAGMA quick_check`` (what every ``index`` run does before it writes),
``PRAGMA integrity_check``, a whole ``searchengine doctor`` check, and a
``doctor --repair`` of the copy with one page of its ``images`` table overwritten with
4 KB of random bytes. The index given is copied to a temporary folder first and never
touched. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from searchengine import doctor  # noqa: E402
from searchengine.store.db import quick_check  # noqa: E402


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def damage_images(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages = [p for (p,) in conn.execute("SELECT pageno FROM dbstat WHERE name = 'images' ORDER BY pageno")]
    size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    with open(db, "r+b") as f:
        f.seek((pages[len(pages) // 2] - 1) * size)
        f.write(random.Random(0).randbytes(size))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("index", type=Path)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "index"
        shutil.copytree(args.index, copy)
        db = copy / "index.db"
        first = doctor.examine(copy)
        if first.areas() == {"vectors"}:  # an older FAISS file without a checksum: bring it up to date
            doctor.repair(copy, first)
        conn = sqlite3.connect(db)
        images = conn.execute("SELECT count(*) FROM images").fetchone()[0]
        mb = db.stat().st_size / 1e6
        quick = best_of(args.repeat, lambda: quick_check(conn))
        full = best_of(args.repeat, lambda: conn.execute("PRAGMA integrity_check").fetchall())
        conn.close()
        check = best_of(args.repeat, lambda: doctor.examine(copy))
        damage_images(db)
        report = doctor.examine(copy)
        started = time.perf_counter()
        doctor.repair(copy, report)
        repair = time.perf_counter() - started
        healthy = doctor.examine(copy).healthy
    print(f"index: {args.index} ({images} images, index.db {mb:.1f} MB); median of {args.repeat}")
    print("| step | seconds |")
    print("|---|---:|")
    print(f"| PRAGMA quick_check (before every index run) | {quick:.3f} |")
    print(f"| PRAGMA integrity_check | {full:.3f} |")
    print(f"| searchengine doctor (all checks, FAISS checksum included) | {check:.3f} |")
    print(f"| doctor --repair, one images page damaged (salvage, FTS, FAISS) | {repair:.3f} |")
    print(f"sound after the repair: {healthy}")


if __name__ == "__main__":
    main()
