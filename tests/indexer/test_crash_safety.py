"""SIGKILL the indexer midway; a rerun must give the index an uninterrupted run gives."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np

from indexer.pipeline import Indexer, IndexReport
from indexer.prepare import Preparer
from searchengine.store.db import DB_NAME, Store
from searchengine.store.vectors import VectorIndex
from tests.conftest import REPO, write_images

WORKER = """
import sys, time
from pathlib import Path
from tests.conftest import register_tiny_clip
from searchengine.models.registry import create_embedder
from searchengine.store.db import Store
from indexer.pipeline import Indexer

spec = register_tiny_clip(Path(sys.argv[3]))
emb = create_embedder(spec)
slow = float(sys.argv[4])
real = emb.embed_images
def embed_images(images):
    time.sleep(slow)  # give the test time to kill us between commits
    return real(images)
emb.embed_images = embed_images
Indexer(Store(sys.argv[2]), emb, batch_size=3).run(sys.argv[1])
"""


def _index(folder, index, cfg, slow=0.0):
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, str(folder), str(index), str(cfg), str(slow)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _committed(index) -> int:
    try:
        conn = sqlite3.connect(f"file:{index / DB_NAME}?mode=ro", uri=True, timeout=1)
        try:
            return conn.execute("SELECT count(*) FROM images").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def _snapshot(index, dim):
    store = Store(index)
    rows = store.db.execute(
        "SELECT i.path, i.sha256, i.status, e.vector FROM images i "
        "LEFT JOIN embeddings e ON e.image_id = i.id ORDER BY i.path"
    ).fetchall()
    return store, rows


def test_sigkill_midway_then_rerun_equals_clean_run(tmp_path):
    folder = tmp_path / "imgs"
    write_images(folder, 30)
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    killed, clean = tmp_path / "killed", tmp_path / "clean"

    proc = _index(folder, killed, cfg, slow=0.3)
    deadline = time.monotonic() + 120
    while _committed(killed) < 6:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "indexer made no progress"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = _committed(killed)
    assert 6 <= partial < 30, "the kill did not land midway"

    for index in (killed, clean):
        p = _index(folder, index, cfg)
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()

    store_k, rows_k = _snapshot(killed, 64)
    store_c, rows_c = _snapshot(clean, 64)
    assert len(rows_k) == len(rows_c) == 30
    assert len({r[0] for r in rows_k}) == 30  # no duplicates
    for rk, rc in zip(rows_k, rows_c, strict=True):
        assert rk[:3] == rc[:3] and rk[2] == "ok"
        np.testing.assert_allclose(
            np.frombuffer(rk[3], np.float32), np.frombuffer(rc[3], np.float32), atol=1e-5
        )
    assert VectorIndex.open(store_k, 64).ntotal == 30


def test_resume_only_processes_what_was_not_committed(tmp_path, tiny_embedder):
    folder = tmp_path / "imgs"
    write_images(folder, 10)
    store = Store(tmp_path / "idx")
    indexer = Indexer(store, tiny_embedder, batch_size=4)
    todo, _, _ = indexer.plan(folder)
    # commit the first batch by hand, as an interrupted run would have
    prepare = Preparer(indexer.tools, {}, None, indexer.max_pixels)
    indexer._commit([prepare(job) for job in todo[:4]], IndexReport(root=str(folder.resolve())))
    report = indexer.run(folder)
    assert (report.unchanged, report.embedded) == (4, 6)
