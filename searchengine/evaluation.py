"""Evaluation protocols of ../shared/datasets/README.md, shared by bench/ and tests."""

from __future__ import annotations

import re
from collections import Counter

_KEYED = re.compile(
    r"\b(INV|INVOICE|DOC|DOCUMENT|BILL|RECEIPT|RCPT|CHECK|SLIP|TRANS|ORDER|TAX INVOICE)\b", re.I
)
_CODE = re.compile(r"\b(?=[A-Z0-9/-]*\d)(?=[A-Z0-9/-]*[A-Z])[A-Z0-9/-]{6,}\b|\b\d{6,}\b", re.I)
_AMOUNT = re.compile(r"^[\sRM$.,:\-*\d]+$")


def distinctive_line(text: str, counts: Counter) -> str | None:
    """Pick a line of a receipt's text that no other receipt has, for a one-answer query.

    Preference: a line naming an invoice/document/bill number, then a line with a
    code-like token (letters and digits, or 6+ digits), then the longest unique line.

    :param counts: how many receipts contain each (stripped) line.
    """
    cands = [
        line.strip()
        for line in text.splitlines()
        if counts[line.strip()] == 1
        and re.search(r"\d", line)
        and len(line.replace(" ", "")) >= 6
        and not _AMOUNT.match(line)
    ]
    for pattern in (_KEYED, _CODE):
        keyed = [c for c in cands if pattern.search(c)]
        if keyed:
            return keyed[0]
    return max(cands, key=len) if cands else None


def word_recall(truth: str, ocr: str) -> tuple[int, int]:
    """Return (ground-truth words found in the OCR text, ground-truth words), upper-cased."""
    want = Counter(truth.upper().split())
    have = Counter(ocr.upper().split())
    return sum(min(n, have[w]) for w, n in want.items()), sum(want.values())
