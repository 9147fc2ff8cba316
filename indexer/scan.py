"""Find image files under a folder, cheaply (no file is opened here)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from searchengine.imaging import IMAGE_SUFFIXES


@dataclass(frozen=True, slots=True)
class FileInfo:
    """A candidate file: absolute path, size in bytes, mtime in nanoseconds."""

    path: str
    size: int
    mtime_ns: int


def scan(root: str | Path) -> Iterator[FileInfo]:
    """Yield every image file under ``root``, recursively, in sorted order.

    Hidden files and folders (a leading dot) are skipped; symlinked folders are
    not followed (no loops, nothing outside the root); symlinked files are kept.
    Files that vanish or cannot be stat'ed while walking are skipped.
    """
    stack = [str(root)]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        subdirs = []
        for entry in entries:
            if entry.name.startswith("."):
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
