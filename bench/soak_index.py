"""Soak test: index runs killed (SIGKILL) at random moments while searches run; the index
must stay consistent after every kill.

On a temporary copy of a gallery (``data/sample`` plus generated images, some of them
near-duplicate copies), each cycle changes the files (adds, rewrites, deletes, copies,
moves some), starts ``searchengine index`` as a subprocess and kills it with SIGKILL at a
random moment after it has planned (some cycles finish first; every ``--complete-every``
th cycle runs to the end). A thread searches the same index the whole time (text,
keyword and hybrid queries through :class:`SearchEngine`, its own connection). After
each cycle it checks:

* ``PRAGMA integrity_check`` is ok; no path has two rows;
* every searchable image has a vector and only those; the FAISS index loaded from the
  folder holds exactly the stored vectors; the keyword index has one document per image;
* the near-duplicate groups, unless marked pending, are the groups the stored data gives
  now; after a complete run nothing is pending;
* the index lock is free (a killed run leaves none).

Finally one complete run, a second one that must find nothing to do, and the full check.
It prints the inconsistencies (must be 0) and the search errors (must be 0).

The encoder is a tiny random open_clip model (``tests.conftest``): what is measured is
the crash safety of the store, not search quality, and it keeps cycles short.

    nice -n 10 .venv/bin/python bench/soak_index.py --cycles 20 --images 300
    nice -n 10 .venv/bin/python bench/soak_index.py --two-runs --images 300   # fault 10
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from searchengine.duplicates import DuplicateRule, find_groups  # noqa: E402
from searchengine.errors import IndexNotBuilt  # noqa: E402
from searchengine.store.db import DB_NAME, Store  # noqa: E402
from searchengine.store.lock import IndexBusy, IndexLock  # noqa: E402
from searchengine.store.vectors import VectorIndex  # noqa: E402

#: Runs the real CLI with the tiny test encoder registered (argv: config folder, CLI args).
RUNNER = """
import sys
from pathlib import Path
from tests.conftest import register_tiny_clip
register_tiny_clip(Path(sys.argv[1]))
from searchengine.cli import main
main(sys.argv[2:])
"""
SPEC = "clip:se-tiny:random"
DIM = 64
QUERIES = ["a red square", "receipt total", "blue sky", "shoe", "photo", "document", "green texture"]


# -- the gallery --------------------------------------------------------------------------
def _image(rng: random.Random) -> Image.Image:
    w, h = rng.randrange(64, 320), rng.randrange(64, 320)
    im = Image.new("RGB", (w, h), tuple(rng.randrange(256) for _ in range(3)))
    for _ in range(rng.randrange(4, 16)):
        block = Image.new(
            "RGB", (rng.randrange(8, w), rng.randrange(8, h)), tuple(rng.randrange(256) for _ in range(3))
        )
        im.paste(block, (rng.randrange(w), rng.randrange(h)))
    return im


def _save(im: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    im.save(path, quality=90) if path.suffix == ".jpg" else im.save(path)


def make_gallery(folder: Path, total: int, rng: random.Random) -> None:
    shutil.copytree(REPO / "data" / "sample", folder)
    have = sum(
        1 for p in folder.rglob("*") if p.suffix.lower() in {".jpg", ".png", ".webp", ".gif", ".bmp", ".tiff"}
    )
    for n in range(max(0, total - have)):
        _save(_image(rng), folder / "gen" / f"d{n % 7}" / f"g{n:05d}.{rng.choice(['png', 'jpg'])}")


def _generated(folder: Path) -> list[Path]:
    return sorted(p for p in (folder / "gen").rglob("*") if p.is_file())


def change(folder: Path, rng: random.Random, cycle: int) -> dict:
    """Add, rewrite, delete, copy (near duplicates) and move some generated files."""
    files = _generated(folder)
    rng.shuffle(files)
    counts = {"added": 24, "rewritten": 8, "deleted": 6, "copied": 4, "moved": 2}  # about 3 batches
    for n in range(counts["added"]):
        _save(_image(rng), folder / "gen" / "new" / f"c{cycle:02d}-{n}.{rng.choice(['png', 'jpg'])}")
    for p in files[:8]:
        _save(_image(rng), p)
    for p in files[8:14]:
        p.unlink()
    for n, p in enumerate(files[14:18]):
        dst = folder / "gen" / "copies" / f"c{cycle:02d}-{n}-{p.stem}.jpg"
        _save(Image.open(p).convert("RGB"), dst)  # re-encoded: a near duplicate
    for moved in files[18:20]:
        target = folder / "gen" / "moved" / f"c{cycle:02d}-{moved.name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        moved.rename(target)
    return counts


# -- the index run ------------------------------------------------------------------------
def start_index(folder: Path, index: Path, cfg: Path, code: Path = REPO, extra=()) -> subprocess.Popen:
    env = {**os.environ, "SE_OCR": "none", "SE_CAPTIONER": "none", "PYTHONPATH": str(code)}
    args = ["index", str(folder), "--index", str(index), "--model", SPEC, "-q", *extra]
    return subprocess.Popen(
        [sys.executable, "-c", RUNNER, str(cfg), *args],
        cwd=code,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


class Run:
    """A running index subprocess whose stderr is read as it comes (plan line, report line)."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc, self.lines, self.planned = proc, [], threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line.rstrip())
            if "to process" in line:
                self.planned.set()
        self.planned.set()


# -- searches meanwhile -------------------------------------------------------------------
class Searcher(threading.Thread):
    """Searches the index without pause (one query every ~100 ms); counts errors."""

    def __init__(self, index: Path, embedder) -> None:
        super().__init__(daemon=True)
        self.index, self.embedder = index, embedder
        self.stop, self.done, self.not_yet, self.errors = threading.Event(), 0, 0, []

    def run(self) -> None:
        from searchengine.search import SearchEngine

        store, engine, n = None, None, 0
        while not self.stop.is_set():
            n += 1
            try:
                if engine is None:
                    store = Store(self.index)
                    if store.encoder() is None:
                        raise IndexNotBuilt("nothing indexed yet")
                    engine = SearchEngine(store, self.embedder)
                mode = ("hybrid", "vector", "keyword")[n % 3]
                engine.query(QUERIES[n % len(QUERIES)], limit=20, mode=mode, min_score=-1)
                self.done += 1
            except IndexNotBuilt:
                self.not_yet += 1
            except Exception as exc:  # noqa: BLE001 - every error is a finding
                self.errors.append(f"{type(exc).__name__}: {exc}")
            time.sleep(0.1)


# -- the checks ---------------------------------------------------------------------------
def check(index: Path, complete: bool) -> list[str]:
    """Every inconsistency of the index (empty: consistent)."""
    problems = []
    conn = sqlite3.connect(f"file:{index / DB_NAME}?mode=ro", uri=True, timeout=30)
    try:
        integrity = conn.execute("PRAGMA integrity_check").fetchall()
        if integrity != [("ok",)]:
            problems.append(f"integrity_check: {integrity[:5]}")
        q = conn.execute
        if q("SELECT count(*) FROM (SELECT path FROM images GROUP BY path HAVING count(*) > 1)").fetchone()[
            0
        ]:
            problems.append("a path has two rows")
        if n := q("SELECT count(*) FROM images i WHERE status = 'ok' AND NOT EXISTS "
                  "(SELECT 1 FROM embeddings e WHERE e.image_id = i.id)").fetchone()[0]:  # fmt: skip
            problems.append(f"{n} searchable images without a vector")
        if n := q("SELECT count(*) FROM embeddings e JOIN images i ON i.id = e.image_id "
                  "WHERE i.status != 'ok'").fetchone()[0]:  # fmt: skip
            problems.append(f"{n} vectors of images that are not searchable")
        image_ids = {r[0] for r in q("SELECT id FROM images")}
        fts_ids = [r[0] for r in q("SELECT rowid FROM search_fts")]
        if sorted(fts_ids) != sorted(image_ids):
            problems.append(f"keyword index: {len(fts_ids)} documents for {len(image_ids)} images")
    finally:
        conn.close()
    problems += _check_derived(index, complete)
    try:
        IndexLock(index).acquire().release()
    except IndexBusy as exc:
        problems.append(f"lock still held: {exc}")
    return problems


def _check_derived(index: Path, complete: bool) -> list[str]:
    problems = []
    store = Store(index)
    try:
        if store.encoder() is None:
            return problems
        vectors = VectorIndex.open(store, DIM)
        import faiss

        with store.snapshot():
            ids, vecs = store.embeddings.all(DIM)
            pending = store.duplicates.pending()
            stored = store.duplicates.groups()
            hashes, texts = store.duplicates.phashes(), store.duplicates.texts()
        in_faiss = set(faiss.vector_to_array(vectors.index.id_map).tolist()) if vectors.ntotal else set()
        if in_faiss != set(ids.tolist()):
            problems.append(f"FAISS holds {len(in_faiss)} ids, the store {len(ids)} vectors")
        if complete and pending:
            problems.append("duplicate groups still pending after a complete run")
        if not pending and store.get_meta("duplicates"):
            fresh = find_groups(ids, vecs, hashes, DuplicateRule.of_index(store), texts)
            if fresh != stored:
                problems.append(f"duplicate groups stale: {len(stored)} stored, {len(fresh)} now")
    finally:
        store.close()
    return problems


def _pending(index: Path) -> bool:
    """Whether the groups await regrouping (a kill after a commit, before regrouping)."""
    store = Store(index)
    try:
        return store.duplicates.pending()
    finally:
        store.close()


def stray_temp_files(index: Path) -> int:
    return sum(1 for p in index.iterdir() if p.name.endswith(".tmp"))


# -- the soak -----------------------------------------------------------------------------
def soak(args, work: Path) -> dict:
    rng = random.Random(args.seed)
    gallery, index, cfg = work / "gallery", work / "index", work / "cfg"
    cfg.mkdir()
    make_gallery(gallery, args.images, rng)
    from tests.conftest import register_tiny_clip

    register_tiny_clip(cfg)
    from searchengine.models.registry import create_embedder

    searcher = Searcher(index, create_embedder(SPEC))
    searcher.start()
    estimate, cycles, inconsistencies, started = 20.0, [], 0, time.perf_counter()
    for cycle in range(args.cycles):
        if cycle:
            change(gallery, rng, cycle)
        complete = (cycle + 1) % args.complete_every == 0
        run = Run(start_index(gallery, index, cfg))
        run.planned.wait(300)
        planned_at = time.perf_counter()
        delay = None if complete else rng.uniform(0, 1.2 * estimate)
        try:
            run.proc.wait(timeout=delay)
            killed = False
        except subprocess.TimeoutExpired:
            os.kill(run.proc.pid, signal.SIGKILL)
            run.proc.wait()
            killed = True
        if not killed and run.proc.returncode != 0:
            raise SystemExit(f"cycle {cycle}: the index run failed:\n" + "\n".join(run.lines[-20:]))
        if not killed:  # from the plan to the end of the process: commits, FAISS, regrouping
            estimate = max(1.0, time.perf_counter() - planned_at)
        problems = check(index, complete=not killed)
        inconsistencies += len(problems)
        row = {
            "cycle": cycle,
            "killed_after_s": round(delay, 2) if killed else None,
            "completed": not killed,
            "problems": problems,
            "stray_tmp": stray_temp_files(index),
            "groups_pending": _pending(index),
        }
        cycles.append(row)
        print(json.dumps(row), flush=True)
    final = Run(start_index(gallery, index, cfg))
    final.proc.wait()
    again = Run(start_index(gallery, index, cfg))
    again.proc.wait()
    searcher.stop.set()
    searcher.join()
    final_problems = check(index, complete=True)
    if final.proc.returncode or again.proc.returncode:
        final_problems.append("the final runs failed: " + " | ".join(final.lines[-3:] + again.lines[-3:]))
    if not any(re.search(r": (\d+) images, \1 unchanged, 0 to process", line) for line in again.lines):
        final_problems.append("a run after the complete one still found work: " + " | ".join(again.lines))
    store = Store(index)
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cycles": len(cycles),
        "killed": sum(1 for c in cycles if not c["completed"]),
        "completed": sum(1 for c in cycles if c["completed"]),
        "inconsistencies": inconsistencies + len(final_problems),
        "final_problems": final_problems,
        "searches": searcher.done,
        "search_errors": len(searcher.errors),
        "search_error_samples": sorted(set(searcher.errors))[:5],
        "images_final": store.images.counts().ok,
        "groups_final": len(store.duplicates.groups()),
        "stray_tmp_max": max(c["stray_tmp"] for c in cycles),
        "kills_leaving_groups_pending": sum(1 for c in cycles if c["groups_pending"]),
        "seconds": round(time.perf_counter() - started, 1),
    }


# -- fault 10: two runs at once -----------------------------------------------------------
def two_runs(args, work: Path) -> dict:
    """Time two index runs started together on one fresh index: with the code at git HEAD
    (before the lock) and with this working tree (after)."""
    rng = random.Random(args.seed)
    gallery, cfg = work / "gallery", work / "cfg"
    cfg.mkdir()
    make_gallery(gallery, args.images, rng)
    head = work / "head"
    head.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "HEAD"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(head)], input=archive.stdout, check=True)
    out = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "images": args.images}
    for label, code in (("before", head), ("after", REPO)):
        out[f"{label}_single"] = _timed_runs(gallery, work / f"{label}-single", cfg, code, 1)
        out[f"{label}_two"] = _timed_runs(gallery, work / f"{label}-two", cfg, code, 2)
    return out


def _timed_runs(gallery: Path, index: Path, cfg: Path, code: Path, n: int) -> dict:
    t0 = time.perf_counter()
    runs = [Run(start_index(gallery, index, cfg, code)) for _ in range(n)]
    ends = []
    for r in runs:
        r.proc.wait()
        ends.append(round(time.perf_counter() - t0, 1))
    embedded = []
    for r in runs:
        m = next((re.search(r"(\d+) embedded", line) for line in r.lines if " embedded, " in line), None)
        embedded.append(int(m.group(1)) if m else None)
    return {
        "wall_s": round(time.perf_counter() - t0, 1),
        "each_s": ends,
        "exit": [r.proc.returncode for r in runs],
        "embedded": embedded,
        "refusal": next((line for r in runs for line in r.lines if "another index run" in line), None),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cycles", type=int, default=20)
    ap.add_argument("--images", type=int, default=300, help="gallery size (data/sample plus generated)")
    ap.add_argument("--complete-every", type=int, default=5, help="every Nth cycle runs to the end")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--two-runs", action="store_true", help="measure two concurrent runs (fault 10) instead")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="soak-"))
    try:
        result = two_runs(args, work) if args.two_runs else soak(args, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))
    if not args.two_runs and (result["inconsistencies"] or result["search_errors"]):
        sys.exit(1)


if __name__ == "__main__":
    main()
