"""One index run per index: a second one is refused with who runs it, and a killed run
leaves no lock behind."""

import errno
import fcntl
import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from indexer.pipeline import Indexer
from searchengine.cli import cli
from searchengine.store.db import Store
from searchengine.store.lock import IndexBusy, IndexLock, holder
from tests.conftest import REPO, write_images
from tests.indexer.test_crash_safety import _committed, _index

HOLDER = """
import sys, time
from searchengine.store.lock import IndexLock
IndexLock(sys.argv[1]).acquire()
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""


def _hold(index, seconds=120.0) -> subprocess.Popen:
    """Another process that takes the index's lock and keeps it."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(index), str(seconds)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "held"
    return proc


def _kill9(proc) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


def test_second_run_is_refused_with_who_runs_and_changes_nothing(tmp_path, tiny_embedder, tiny_spec):
    folder, index = tmp_path / "imgs", tmp_path / "idx"
    write_images(folder, 5)
    proc = _hold(index)
    try:
        with pytest.raises(IndexBusy, match=rf"another index run \(pid {proc.pid}, started \d\d:\d\d"):
            Indexer(Store(index), tiny_embedder).run(folder)
        r = CliRunner().invoke(cli, ["index", str(folder), "--index", str(index), "--model", tiny_spec, "-q"])
        assert r.exit_code == 1
        assert f"another index run (pid {proc.pid}, started " in r.output
        assert "is updating the index" in r.output and "--wait" in r.output
        assert Store(index).images.counts().ok == 0  # nothing changed, not even the encoder binding
        assert Store(index).encoder() is None
    finally:
        _kill9(proc)
    # kill -9 left no stale lock: the next run goes through
    report = Indexer(Store(index), tiny_embedder).run(folder)
    assert report.embedded == 5
    assert holder(index) is None  # released: nobody is named


def test_two_real_runs_at_once_the_first_completes(tmp_path, tiny_embedder):
    folder, index = tmp_path / "imgs", tmp_path / "idx"
    write_images(folder, 12)
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    first = _index(folder, index, cfg, slow=0.3)  # a slow run in another process
    deadline = time.monotonic() + 120
    while _committed(index) < 3:
        assert first.poll() is None, first.stderr.read().decode()
        assert time.monotonic() < deadline, "the first run made no progress"
        time.sleep(0.02)
    with pytest.raises(IndexBusy, match=rf"pid {first.pid}"):
        Indexer(Store(index), tiny_embedder).run(folder)
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err.decode()
    assert Store(index).images.counts().ok == 12


def test_cli_wait_waits_for_the_other_run(tmp_path, tiny_spec):
    folder, index = tmp_path / "imgs", tmp_path / "idx"
    write_images(folder, 3)
    proc = _hold(index, seconds=1.5)
    r = CliRunner().invoke(
        cli, ["index", str(folder), "--index", str(index), "--model", tiny_spec, "-q", "--wait"]
    )
    proc.wait()
    assert r.exit_code == 0, r.output
    assert "waiting: another index run" in r.output
    assert Store(index).images.counts().ok == 3


def test_service_index_run_is_busy_while_a_cli_run_holds_the_lock(tmp_path, tiny_spec):
    from searchengine.config import Settings
    from web.service import Busy, Service

    folder, index = tmp_path / "imgs", tmp_path / "idx"
    write_images(folder, 3)
    settings = Settings(index_path=index, model=tiny_spec, roots=(str(folder),), captioner="none", ocr="none")
    service = Service(settings, indexer_factory=Indexer.from_settings)
    proc = _hold(index)
    try:
        with pytest.raises(Busy, match=rf"another index run \(pid {proc.pid}"):
            service.start_index()
    finally:
        _kill9(proc)
    assert service.start_index().state == "running"
    assert service.wait_for_index(120).state == "done"
    assert holder(index) is None  # the service gave its lock back (it is re-entrant in-process)


def test_lock_is_reentrant_in_one_process_and_released_last(tmp_path):
    outer = IndexLock(tmp_path).acquire()
    inner = IndexLock(tmp_path).acquire()
    inner.release()
    assert holder(tmp_path)["pid"] == os.getpid()
    outer.release()
    assert holder(tmp_path) is None


def test_a_file_system_without_locks_runs_unguarded_with_a_warning(tmp_path, monkeypatch, caplog):
    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with IndexLock(tmp_path):  # no traceback where runs worked before the lock existed
        pass
    assert "two index runs are not kept apart" in caplog.text


def test_a_web_run_that_cannot_open_its_store_gives_the_lock_back(tmp_path, tiny_spec, monkeypatch):
    import web.service
    from searchengine.config import Settings
    from searchengine.errors import SearchEngineError
    from web.service import Service

    folder, index = tmp_path / "photos", tmp_path / "index"
    write_images(folder, 1)
    settings = Settings(index_path=index, model=tiny_spec, roots=(str(folder),), captioner="none", ocr="none")
    service = Service(settings, indexer_factory=Indexer.from_settings)

    def damaged(index_dir):
        raise SearchEngineError("the index database is damaged")

    monkeypatch.setattr(web.service, "Store", damaged)
    service.start_index()
    job = service.wait_for_index(60)
    assert job.state == "failed" and "damaged" in job.error
    assert holder(index) is None  # a lock kept here would make every later run "busy"
