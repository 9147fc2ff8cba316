"""Text normalisation shared by the keyword index and keyword queries."""

from __future__ import annotations

import re

_BOUNDARY = re.compile(r"(?<=[^\W\d_])(?=\d)|(?<=\d)(?=[^\W\d_])")


def split_letters_digits(text: str) -> str:
    """Insert a space where letters meet digits: ``Invoice581355`` -> ``Invoice 581355``.

    Applied to every keyword document and every keyword query alike, so a code
    typed with or without separators (``CS00082662``, ``INV-2018``) and OCR text
    that lost a space match the same token sequence.
    """
    return _BOUNDARY.sub(" ", text)


def name_and_folder(path: str, root: str) -> tuple[str, str]:
    """Split an image path into its file name and the folder words worth indexing.

    The folder runs from the indexed root's own name down (``photos/holiday``), so
    that the absolute prefix (``/home/alice``) does not make every image match.
    """
    folder, _, name = path.rpartition("/")
    base = root.rstrip("/").rpartition("/")[0]
    if folder.startswith(base + "/"):
        folder = folder[len(base) + 1 :]
    return name, folder
