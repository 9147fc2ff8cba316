"""Find image files under a folder, cheaply (no file is opened here)."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from searchengine.imaging import IMAGE_SUFFIXES


@dataclass(frozen=True, slots=True)
class FileInfo:
    """A candidate file: absolute path, size in bytes, mtime in nanoseconds."""

    path: str
    size: int
    mtime_ns: int


@dataclass
class ScanProblems:
    """What a scan could not look at: folders it could not list, and image files it skips.

    ``skipped`` holds each skipped file with the reason to record for it: its
    :class:`FileInfo` carries the facts of the directory entry itself (``lstat``), never
    those of what a symlink leads to. A file name that is not valid UTF-8 cannot be
    stored as its path: its entry's path is the name with the bad bytes written as
    ``\\xff`` escapes (lossless, readable, and valid text).
    """

    unlisted: list[str] = field(default_factory=list)
    skipped: list[tuple[FileInfo, str]] = field(default_factory=list)

    @property
    def bad_names(self) -> list[str]:
        """The display forms of the file names that are not valid UTF-8."""
        return [info.path for info, reason in self.skipped if reason == BAD_NAME]


#: The reasons recorded for the files a scan skips.
BAD_NAME = "file name is not valid UTF-8: rename it"
SYMLINK_LOOP = "symlink loop"
BROKEN_SYMLINK = "broken symlink (what it leads to does not exist)"
OUTSIDE_ROOT = "symlink to a file outside the indexed folders: not indexed"
HIDDEN_TARGET = "symlink to a hidden file or folder (a leading dot): not indexed"
_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a folder"),
)


def not_regular(mode: int) -> str:
    """The reason recorded for a file that is not a regular file (``mode`` from ``stat``)."""
    kind = next((name for test, name in _KINDS if test(mode)), "not a file")
    return f"not a regular file: {kind}"


def visible(rel: str) -> bool:
    """Tell whether a path relative to the scanned root is one ``scan`` visits."""
    return not any(part.startswith(".") for part in rel.split("/"))


def scan(
    root: str | Path, problems: ScanProblems | None = None, roots: Iterable[str | Path] = ()
) -> Iterator[FileInfo]:
    """Yield every image file under ``root``, recursively, in sorted order.

    Hidden files and folders (a leading dot) are skipped; symlinked folders are
    not followed (no loops, nothing outside the root); symlinked files are kept
    when they lead to a regular file inside ``root`` or one of the other ``roots`` of
    the index (an album of links into another indexed folder). Folders that cannot be
    listed are reported in ``problems``, and so is every file with an image suffix
    that is skipped, with its reason: a name that is not valid UTF-8, a symlink loop,
    a broken symlink, a symlink out of every root, not a regular file (a FIFO, a
    device). Files that vanish while walking are skipped.
    """
    problems = problems if problems is not None else ScanProblems()
    allowed = tuple({os.path.realpath(r).rstrip("/") + "/" for r in (root, *roots)})
    stack = [str(root)]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            problems.unlisted.append(folder)
            continue
        subdirs = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    subdirs.append(entry.path)
                elif os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES:
                    info, reason = _look(entry, allowed)
                    if reason is None:
                        yield info
                    else:
                        problems.skipped.append((info, reason))
            except OSError:
                continue
        stack.extend(reversed(subdirs))


def _look(entry: os.DirEntry, allowed: tuple[str, ...]) -> tuple[FileInfo, str | None]:
    """The facts of an image file's entry, and why it is skipped (None: it is indexed).

    :param allowed: the real paths, ending in ``/``, that a symlink may lead into.

    :raises OSError: the entry vanished.
    """
    own = entry.stat(follow_symlinks=False)
    try:
        entry.path.encode("utf-8")
    except UnicodeEncodeError:
        name = os.fsencode(entry.path).decode("utf-8", "backslashreplace")
        return FileInfo(name, own.st_size, own.st_mtime_ns), BAD_NAME
    if not entry.is_symlink():
        info = FileInfo(entry.path, own.st_size, own.st_mtime_ns)
        return info, None if stat.S_ISREG(own.st_mode) else not_regular(own.st_mode)
    link = FileInfo(entry.path, own.st_size, own.st_mtime_ns)
    try:
        target = os.stat(entry.path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return link, SYMLINK_LOOP
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return link, BROKEN_SYMLINK
        return link, f"unreadable: {exc.strerror or exc}"
    if not stat.S_ISREG(target.st_mode):
        return link, not_regular(target.st_mode)
    real = os.path.realpath(entry.path)
    inside = next((real[len(prefix) :] for prefix in allowed if real.startswith(prefix)), None)
    if inside is None:
        return link, OUTSIDE_ROOT
    if not visible(inside):  # what the scan itself never visits (~/.ssh under a root of ~)
        return link, HIDDEN_TARGET
    return FileInfo(entry.path, target.st_size, target.st_mtime_ns), None
