"""The saved FAISS file: checksummed, written atomically, verified before FAISS reads it.

``vectors.faiss`` holds the serialized index; ``vectors.json`` (the state) says which
SQLite generation it was built from, its size, and the sha256 of exactly the bytes
written. A file whose bytes do not hash to the state's checksum is never handed to
FAISS (corrupt bytes give it absurd scores, or worse), so damage is reported, not searched.

A save writes both files as temporaries, then renames the state first and the index
second, under a lock file so two savers never interleave. The state also names the
checksum it replaces (``previous``), so a reader that finds the old file under the new
state knows a save is under way (or was interrupted), not that the file is damaged.
A failed save removes its temporaries; every save sweeps those of dead writers.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import faiss

INDEX_NAME = "vectors.faiss"
STATE_NAME = "vectors.json"
LOCK_NAME = ".vectors.lock"
TEMP_PATTERNS = (f".{INDEX_NAME}.*.tmp", f".{STATE_NAME}.*.tmp")
STALE_TEMP_S = 3600.0  # a temporary this old is a dead writer's, whatever its pid
_CHUNK = 1 << 20

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Linux or macOS
    fcntl = None


class Damaged(Exception):
    """The saved file is not what its state says: its bytes do not match the checksum."""


class Replacing(Exception):
    """The saved file is the one the state replaces: a save is under way or was interrupted."""


def read_state(index_dir: Path) -> dict | None:
    """Return the state of the saved index, or None when there is none.

    :raises Damaged: the state file is there but not a JSON object.
    """
    try:
        text = (index_dir / STATE_NAME).read_text()
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        raise Damaged("the state file vectors.json is unreadable") from None
    try:
        state = json.loads(text)
    except ValueError:
        state = None
    if not isinstance(state, dict):
        raise Damaged("the state file vectors.json is unreadable")
    return state


def load(index_dir: Path, state: dict) -> faiss.Index:
    """Read the saved index, once its bytes are verified against ``state``'s checksum.

    The file is opened once, so the bytes hashed are the bytes read, whatever a
    writer renames meanwhile.

    :raises FileNotFoundError: there is no saved index.
    :raises Replacing: the file is the one ``state`` replaced (a save is under way).
    :raises Damaged: the bytes match neither checksum.
    """
    with open(index_dir / INDEX_NAME, "rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
        if digest != state.get("sha256"):
            if digest == state.get("previous"):
                raise Replacing
            raise Damaged("checksum mismatch")
        f.seek(0)
        return faiss.read_index(faiss.PyCallbackIOReader(f.read, _CHUNK))


def save(index_dir: Path, index: faiss.Index, state: dict) -> dict:
    """Write ``index`` and its ``state`` (plus the checksum) atomically; returns the state written.

    The state written also keeps the last ``repaired`` record of the state it replaces,
    unless ``state`` brings its own.

    :raises OSError: the files could not be written (disk full, read-only folder, ...);
        nothing is left behind then, and the saved files are as they were.
    """
    token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"  # unique per writer, threads included
    tmp_index = index_dir / f".{INDEX_NAME}.{token}.tmp"
    tmp_state = index_dir / f".{STATE_NAME}.{token}.tmp"
    with _locked(index_dir):
        sweep_temps(index_dir)
        try:
            old = read_state(index_dir) or {}
        except Damaged:
            old = {}
        written = {
            **state,
            "sha256": _write(index, tmp_index),
            "previous": old.get("sha256"),
            "saved_at": time.time(),  # tells two saves of the same bytes apart
        }
        if not written.get("repaired") and old.get("repaired"):
            written["repaired"] = old["repaired"]
        try:
            tmp_state.write_text(json.dumps(written))
            os.replace(tmp_state, index_dir / STATE_NAME)
            os.replace(tmp_index, index_dir / INDEX_NAME)
        finally:
            for tmp in (tmp_state, tmp_index):
                tmp.unlink(missing_ok=True)
    return written


def _write(index: faiss.Index, path: Path) -> str:
    """Write ``index`` to ``path`` and return the sha256 of the bytes written (the file is
    removed when writing fails)."""
    digest = hashlib.sha256()

    def write(chunk: bytes) -> int:
        digest.update(chunk)
        return f.write(chunk)

    try:
        with open(path, "xb") as f:
            faiss.write_index(index, faiss.PyCallbackIOWriter(write, _CHUNK))
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return digest.hexdigest()


@contextlib.contextmanager
def _locked(index_dir: Path) -> Iterator[None]:
    """Hold the save lock of ``index_dir`` (one saver at a time, across processes)."""
    fd = os.open(index_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def stray_temps(index_dir: Path, now: float | None = None) -> list[Path]:
    """Return the temporaries of saves that will never finish: their writer's process is
    gone, or they are older than :data:`STALE_TEMP_S`."""
    now = time.time() if now is None else now
    found = []
    for pattern in TEMP_PATTERNS:
        for path in Path(index_dir).glob(pattern):
            try:
                age = now - path.stat().st_mtime
            except FileNotFoundError:
                continue
            if age > STALE_TEMP_S or not _alive(_writer_pid(path.name)):
                found.append(path)
    return sorted(found)


def sweep_temps(index_dir: Path) -> int:
    """Remove :func:`stray_temps`; returns how many were removed."""
    removed = 0
    for path in stray_temps(index_dir):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed += 1
    return removed


def _writer_pid(name: str) -> int | None:
    """The pid in a temporary's name (``.vectors.faiss.<pid>-<hex>.tmp``), if it has one."""
    token = name.rsplit(".", 2)[-2] if name.count(".") >= 3 else ""
    pid = token.split("-", 1)[0]
    return int(pid) if pid.isdigit() else None


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def save_problem(exc: OSError) -> str:
    """Say in a few words why a save failed: disk full, read-only, permission, or the OS's words."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "disk full"
    if exc.errno == errno.EROFS:
        return "read-only file system"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "no permission to write the index folder"
    return exc.strerror or str(exc)
