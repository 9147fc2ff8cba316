"""The derived FAISS file through the CLI: damaged bytes, a full disk, a read-only index folder.

Searches must return what they returned before, ``info`` must say what became of the
saved file, and no temporary may be left behind. The full disk and the read-only
folder are real where the test may mount a tmpfs (root), else simulated.
"""

from __future__ import annotations

import errno
import gc
import json
import os
import shutil
import subprocess

import faiss
import pytest
from click.testing import CliRunner

from searchengine.cli import cli
from searchengine.store.vectors import INDEX_NAME, STATE_NAME

QUERY = ("search", "a red square", "--json", "-k", "9")


def _run(*args, ok=True):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def _hits(index_dir, *extra):
    data = json.loads(_run(*QUERY, "--index", index_dir, *extra).stdout)
    return [(r["path"], round(r["score"], 5)) for r in data["results"]]


def _searches(index_dir):
    """What the default search and an uncut vector search return."""
    return _hits(index_dir), _hits(index_dir, "--mode", "vector", "--min-score", "-1")


def _info(index_dir):
    return _run("info", "--index", index_dir).stdout, json.loads(
        _run("info", "--index", index_dir, "--json").stdout
    )["vector_index"]


def _temps(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def _indexed(image_dir, index_dir, spec):
    _run("index", image_dir, "--index", index_dir, "--model", spec)
    return _searches(index_dir)


@pytest.fixture
def tmpfs(tmp_path):
    """A 4 MB tmpfs (needs root and CAP_SYS_ADMIN); skips where it cannot be mounted."""
    point = tmp_path / "tmpfs"
    point.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root; the simulated tests cover this case")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(point)], capture_output=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield point
    subprocess.run(["umount", "-l", str(point)], check=False)


def test_damaged_faiss_file_searches_as_before_and_info_says_so(image_dir, index_dir, tiny_spec):
    expected = _indexed(image_dir, index_dir, tiny_spec)
    assert expected[1]  # the uncut vector search finds every image
    path = index_dir / INDEX_NAME
    data = bytearray(path.read_bytes())
    quarter = len(data) // 4
    data[quarter : 3 * quarter] = b"\x7e" * (3 * quarter - quarter)  # the middle half, as a disk error
    path.write_bytes(bytes(data))
    assert faiss.read_index(str(path)).ntotal == 9  # FAISS alone would search garbage

    assert _searches(index_dir) == expected
    text, state = _info(index_dir)
    assert "because the saved file was damaged (checksum mismatch)" in text
    assert state["state"] == "ok" and state["repaired"]["reason"] == "checksum mismatch"


def test_full_disk_simulated_search_and_info_use_an_in_memory_copy(
    image_dir, index_dir, tiny_spec, monkeypatch
):
    expected = _indexed(image_dir, index_dir, tiny_spec)
    (index_dir / STATE_NAME).unlink()  # the next reader must build it again
    real = faiss.PyCallbackIOWriter

    def full(callback, bs=1 << 20):
        def write(chunk):
            callback(chunk[:10])
            raise OSError(errno.ENOSPC, "No space left on device")

        return real(write, bs)

    monkeypatch.setattr(faiss, "PyCallbackIOWriter", full)
    assert _searches(index_dir) == expected
    text, state = _info(index_dir)
    assert "faiss:    could not be saved (disk full): searching an in-memory copy" in text
    assert state["state"] == "not saved" and state["problem"] == "disk full"
    assert _temps(index_dir) == []


def _fill(folder):
    """Write a file into ``folder`` until its disk is full."""
    with open(folder / "filler", "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    assert shutil.disk_usage(folder).free == 0


def test_full_disk_on_a_tmpfs_search_and_info_still_answer(image_dir, tiny_spec, tmpfs):
    index_dir = tmpfs / "index"
    expected = _indexed(image_dir, index_dir, tiny_spec)
    for name in (INDEX_NAME, STATE_NAME):
        (index_dir / name).unlink()
    gc.collect()  # close the connections the in-process CLI runs left open
    assert not (index_dir / "index.db-shm").exists()  # SQLite must make it again, on a full disk
    _fill(tmpfs)
    assert _searches(index_dir) == expected
    text, state = _info(index_dir)
    assert "could not be saved (disk full)" in text and state["problem"] == "disk full"
    assert _temps(index_dir) == []


def test_read_only_index_folder_can_be_searched(image_dir, tiny_spec, tmp_path, tmpfs):
    """A read-only mount (as root, whom chmod does not stop); SQLite cannot make its -shm
    file there, so the database is opened read-only."""
    index_dir = tmpfs / "index"
    expected = _indexed(image_dir, index_dir, tiny_spec)
    (index_dir / STATE_NAME).unlink()
    gc.collect()  # close the connections the in-process CLI runs left open
    assert not (index_dir / "index.db-shm").exists()  # as after the last writer has gone
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    assert _searches(index_dir) == expected
    text, state = _info(index_dir)
    assert "could not be saved (read-only file system)" in text and state["state"] == "not saved"
    assert "images:   9 (9 ok, 0 failed)" in text


def _chmod_stops_us(folder) -> bool:
    """Whether a folder without write permission stops this process (not so for root)."""
    folder.mkdir()
    folder.chmod(0o555)
    try:
        (folder / "probe").touch()
    except PermissionError:
        return True
    finally:
        folder.chmod(0o755)
    return False


def test_index_folder_without_write_permission_can_be_searched(image_dir, index_dir, tiny_spec, tmp_path):
    if not _chmod_stops_us(tmp_path / "probe"):
        pytest.skip("chmod does not stop this process (root): the read-only tmpfs test covers it")
    expected = _indexed(image_dir, index_dir, tiny_spec)
    gc.collect()  # close the connections the in-process CLI runs left open
    (index_dir / STATE_NAME).unlink()
    index_dir.chmod(0o555)
    try:
        assert _searches(index_dir) == expected
        text, _ = _info(index_dir)
        assert "could not be saved (no permission to write the index folder)" in text
    finally:
        index_dir.chmod(0o755)
