"""SIGKILL the indexer midway; a rerun must give the index an uninterrupted run gives."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from indexer.pipeline import Indexer, IndexReport
from indexer.prepare import Preparer
from searchengine import derived
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


# -- regrouping is a recorded step (a crash between the last commit and regrouping) -------
DIE_IN_REGROUP = """
import os, signal, sys
from pathlib import Path
from tests.conftest import register_tiny_clip
from searchengine import derived
from searchengine.models.registry import create_embedder
from searchengine.store.db import Store
from indexer.pipeline import Indexer

def regroup(store, rule):
    os.kill(os.getpid(), signal.SIGKILL)  # every batch is committed; the groups are not

derived.regroup = regroup
spec = register_tiny_clip(Path(sys.argv[3]))
Indexer(Store(sys.argv[2]), create_embedder(spec), batch_size=3).run(sys.argv[1])
"""


def _groups_by_path(store) -> list[list[str]]:
    groups = store.duplicates.groups()
    records = store.images.by_id([i for g in groups for i in g])
    return sorted(sorted(records[i].path for i in g) for g in groups)


def _copy_two(folder) -> None:
    """Copy two of the images: two groups of near duplicates to find."""
    for n, name in enumerate(("copy-a.png", "copy-b.png")):
        (folder / name).write_bytes((folder / f"img{n:03d}.png").read_bytes())


def test_kill_between_last_commit_and_regroup_is_repaired_by_a_plain_run(tmp_path, tiny_embedder):
    folder, index = tmp_path / "imgs", tmp_path / "idx"
    write_images(folder, 8)
    store = Store(index)
    Indexer(store, tiny_embedder, batch_size=3).run(folder)
    assert store.duplicates.groups() == [] and not store.duplicates.pending()

    _copy_two(folder)  # the copies arrive; the next run dies before regrouping
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", DIE_IN_REGROUP, str(folder), str(index), str(cfg)],
        cwd=REPO, capture_output=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    assert store.images.counts().ok == 10  # every batch was committed ...
    assert store.duplicates.groups() == [] and store.duplicates.pending()  # ... the groups are stale

    report = Indexer(store, tiny_embedder, batch_size=3).run(folder)  # nothing new to do
    assert (report.embedded, report.reused, report.deleted) == (0, 0, 0)
    clean = Store(tmp_path / "clean")
    Indexer(clean, tiny_embedder, batch_size=3).run(folder)
    assert _groups_by_path(store) == _groups_by_path(clean)
    assert [sorted(Path(p).name for p in g) for g in _groups_by_path(store)] == [
        ["copy-a.png", "img000.png"],
        ["copy-b.png", "img001.png"],
    ]
    assert not store.duplicates.pending()


def test_failed_regroup_in_process_is_done_by_the_next_run(tmp_path, tiny_embedder, monkeypatch):
    folder = tmp_path / "imgs"
    write_images(folder, 8)
    store = Store(tmp_path / "idx")
    Indexer(store, tiny_embedder).run(folder)
    _copy_two(folder)
    (folder / "img007.png").unlink()  # a deletion is recorded too

    def crash(store, rule):
        raise MemoryError("simulated crash while regrouping")

    monkeypatch.setattr(derived, "regroup", crash)
    with pytest.raises(MemoryError):
        Indexer(store, tiny_embedder).run(folder)
    assert store.duplicates.pending()
    monkeypatch.undo()

    calls = []
    real = derived.regroup
    monkeypatch.setattr(derived, "regroup", lambda s, r: calls.append(1) or real(s, r))
    Indexer(store, tiny_embedder).run(folder)
    assert len(calls) == 1 and len(store.duplicates.groups()) == 2
    Indexer(store, tiny_embedder).run(folder)  # done: a run with nothing to do does not regroup
    assert len(calls) == 1


def test_duplicates_command_regroups_when_pending(tmp_path, tiny_embedder, tiny_spec, monkeypatch):
    from click.testing import CliRunner

    from searchengine.cli import cli

    folder, index = tmp_path / "imgs", tmp_path / "idx"
    write_images(folder, 6)
    store = Store(index)
    Indexer(store, tiny_embedder).run(folder)
    _copy_two(folder)
    monkeypatch.setattr(derived, "regroup", lambda s, r: None)  # the run "dies" before regrouping
    Indexer(store, tiny_embedder).run(folder)
    monkeypatch.undo()
    assert store.duplicates.pending() and store.duplicates.groups() == []

    r = CliRunner().invoke(cli, ["duplicates", "--index", str(index), "--json"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert len(json.loads(r.stdout)["groups"]) == 2
    assert not store.duplicates.pending()


def test_tune_style_vector_swap_makes_groups_pending(tmp_path, tiny_embedder):
    """Any writer that changes vectors (``tune`` swaps them all) makes the groups due,
    through the generation the groups were found at."""
    folder = tmp_path / "imgs"
    write_images(folder, 4)
    store = Store(tmp_path / "idx")
    Indexer(store, tiny_embedder).run(folder)
    assert not store.duplicates.pending()
    ids, vecs = store.embeddings.all(64)
    store.embeddings.replace(store.encoder(), [(int(i), v.tobytes()) for i, v in zip(ids, vecs, strict=True)])
    assert store.duplicates.pending()


def test_due_regroup_on_an_unwritable_index_keeps_the_groups_and_warns(tmp_path, tiny_embedder, caplog):
    from searchengine.duplicates import DuplicateRule, regroup_if_due

    folder = tmp_path / "imgs"
    write_images(folder, 4)
    _copy_two(folder)
    store = Store(tmp_path / "idx")
    Indexer(store, tiny_embedder).run(folder)
    with store.db.atomic():
        store.duplicates.mark_pending()

    def readonly(*args, **kw):
        raise sqlite3.OperationalError("attempt to write a readonly database")

    store.duplicates.replace = readonly
    assert regroup_if_due(store, DuplicateRule.of_index(store)) is False
    assert len(store.duplicates.groups()) == 2 and "may be out of date" in caplog.text
