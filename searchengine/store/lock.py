"""One writer per index folder: the lock an index run (or ``tune``) holds while it changes it.

Two index runs on one index would both plan the same work and both do it (and fight
over SQLite's write lock meanwhile). The runs that change an index take an exclusive
``flock`` on ``index.lock`` in its folder; a second run is refused at once with who
holds it (pid, start time, command, written into the file), or waits with
``wait=True``. The operating system drops a ``flock`` when its process dies, so a
killed run (even ``kill -9``) never leaves a stale lock behind. Reads never lock.

The lock is re-entrant within a process (the CLI holds it across ``--rebuild`` and
every folder, and :meth:`indexer.pipeline.Indexer.run` takes it again inside); a
process that runs two index runs at once in threads must serialise them itself (the
web service does).
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from searchengine.errors import SearchEngineError

log = logging.getLogger(__name__)

LOCK_NAME = "index.lock"
#: errors of a file system that has no locks at all (not: someone else holds it).
_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP)

#: realpath of a lock file -> [fd, holds] for the locks this process holds.
_held: dict[str, list[int]] = {}
_guard = threading.Lock()


class IndexBusy(SearchEngineError):
    """Another process is updating the index."""


def _command() -> str:
    args = [Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python", *sys.argv[1:]]
    if args[0] in ("__main__.py", "-m", "-c"):
        args[0] = "searchengine"
    return " ".join(args)[:200]


class IndexLock:
    """The exclusive lock on one index folder (a context manager, or acquire/release)."""

    def __init__(self, index_dir: str | Path) -> None:
        self.dir = Path(index_dir)
        self.path = self.dir / LOCK_NAME
        self._holding, self._key = False, ""

    def acquire(self, wait: bool = False, on_wait: Callable[[str], None] | None = None) -> IndexLock:
        """Take the lock, or raise :class:`IndexBusy` (``wait`` False) or wait for it.

        :param on_wait: called once with the reason when it has to wait.
        :raises IndexBusy: another process holds it and ``wait`` is False.
        :raises SearchEngineError: the lock file cannot be made (a read-only folder).
        """
        key = self._key = os.path.realpath(self.path)
        told = False
        while True:
            with _guard:
                if key in _held:
                    _held[key][1] += 1
                    self._holding = True
                    return self
                fd = self._open()
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as exc:
                    if exc.errno in _NO_LOCKS:  # some network file systems: run as before, unguarded
                        log.warning("cannot lock %s (%s): two index runs are not kept apart", self.path, exc)
                        _held[key] = [fd, 1]
                        self._holding = True
                        return self
                    os.close(fd)
                    if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                        raise
                else:
                    _held[key] = [fd, 1]
                    self._holding = True
                    _write_holder(fd)
                    return self
            reason = busy_message(self.dir)
            if not wait:
                raise IndexBusy(reason)
            if on_wait and not told:
                on_wait(reason)
                told = True
            time.sleep(0.25)

    def _open(self) -> int:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise SearchEngineError(
                f"cannot lock the index folder {self.dir} for writing ({exc.strerror}): "
                "an index run needs to write there"
            ) from None

    def release(self) -> None:
        """Give the lock back (the last release of this process unlocks the file)."""
        if not self._holding:
            return
        self._holding = False
        key = self._key
        with _guard:
            entry = _held.get(key)
            if entry is None:
                return
            entry[1] -= 1
            if entry[1] > 0:
                return
            del _held[key]
            fd = entry[0]
            try:
                os.ftruncate(fd, 0)  # no holder: a reader between two runs sees nobody
            except OSError:
                pass
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            except OSError:
                pass  # a file system without locks (see acquire); closing unlocks anyway
            os.close(fd)

    def __enter__(self) -> IndexLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _write_holder(fd: int) -> None:
    """Write who holds the lock into the lock file, for the message a second run gets."""
    info = {"pid": os.getpid(), "started": time.time(), "command": _command()}
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
    except OSError:
        pass  # a full disk: the lock holds all the same, the message is vaguer


def holder(index_dir: str | Path) -> dict | None:
    """Who holds the lock of ``index_dir`` (pid, started, command), if it says so."""
    try:
        info = json.loads((Path(index_dir) / LOCK_NAME).read_text() or "null")
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def busy_message(index_dir: str | Path) -> str:
    """Say who is updating the index and what the user can do about it."""
    info = holder(index_dir) or {}
    who = []
    if isinstance(info.get("pid"), int):
        who.append(f"pid {info['pid']}")
    if isinstance(info.get("started"), int | float):
        started = datetime.fromtimestamp(info["started"])
        fmt = "%H:%M" if started.date() == datetime.now().date() else "%Y-%m-%d %H:%M"
        who.append(f"started {started.strftime(fmt)}")
    if isinstance(info.get("command"), str) and info["command"]:
        who.append(f"'{info['command']}'")
    detail = f" ({', '.join(who)})" if who else ""
    return (
        f"another index run{detail} is updating the index at {index_dir}; "
        "wait for it to finish or stop it, then run again"
    )
