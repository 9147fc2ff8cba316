"""Find image files under a folder, cheaply (no file is opened here)."""

from __future__ import annotations

import os
from collections.abc import Iterator
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
    """What a scan could not look at: folders it could not list, names it cannot store."""

    unlisted: list[str] = field(default_factory=list)
    bad_names: list[str] = field(default_factory=list)


def visible(rel: str) -> bool:
    """Tell whether a path relative to the scanned root is one ``scan`` visits."""
    return not any(part.startswith(".") for part in rel.split("/"))


def scan(root: str | Path, problems: ScanProblems | None = None) -> Iterator[FileInfo]:
    """Yield every image file under ``root``, recursively, in sorted order.

    Hidden files and folders (a leading dot) are skipped; symlinked folders are
    not followed (no loops, nothing outside the root); symlinked files are kept.
    Folders that cannot be listed and file names that are not valid UTF-8 are
    reported in ``problems``; files that vanish while walking are skipped.
    """
    problems = problems if problems is not None else ScanProblems()
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
                entry.path.encode("utf-8")
            except UnicodeEncodeError:
                problems.bad_names.append(os.fsdecode(entry.path).encode("utf-8", "replace").decode())
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    subdirs.append(entry.path)
                elif os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES:
                    st = entry.stat(follow_symlinks=True)
                    if entry.is_file(follow_symlinks=True):
                        yield FileInfo(entry.path, st.st_size, st.st_mtime_ns)
            except OSError:
                continue
        stack.extend(reversed(subdirs))
