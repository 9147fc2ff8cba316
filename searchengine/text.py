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
