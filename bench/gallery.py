"""Build test galleries from the shared datasets without copying them where it can be helped."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def place(src: Path, dst: Path) -> None:
    """Put ``src`` at ``dst`` as a hard link (the shared set read in place), else as a copy.

    Not a symlink: the indexer refuses symlinks that lead out of the indexed folder.
    """
    try:
        os.link(src, dst)
    except OSError:  # another file system, or links not allowed
        shutil.copyfile(src, dst)
