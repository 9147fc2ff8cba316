"""Receipts, invoices and forms recognised from their OCR lines, and their key fields.

A document's alt text names what it is and the few fields a person would read out
(``Receipt from ABC TRADING SDN BHD, 25/12/2018, total 31.00``), never the raw text.
Everything here reads the OCR lines only (text, confidence, box): no model, no network.

Detection: at least :data:`MIN_LINES` lines, and either two different receipt words
(total, invoice, receipt, tax, GST, cash, change...) with two amounts, or (a form)
four ``label:`` lines with form words (name, signature, date of birth...).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MIN_LINES = 6
#: Words that mark a receipt or invoice (lower case, whole words).
RECEIPT_WORDS = frozenset(
    """total subtotal sub-total invoice receipt tax gst vat sst cash change amount qty bill
    payment balance rounding cashier tendered paid due discount disc price items""".split()
)
FORM_WORDS = frozenset("name signature address form application birth applicant gender nationality".split())
#: A legal entity's suffix: the issuer line when one of the first lines has it.
_LEGAL = re.compile(
    r"(\bsdn\.?\s*bhd\b|\bbhd\b|\bs/b\b|\bberhad\b|\bplt\b|\bltd\b|\blimited\b|\binc\b|\bllc\b|\bgmbh\b|"
    r"\bplc\b|\bpte\b|\bcorp\b|\bcorporation\b|\bco\.\s*\(|\bco\.\s*ltd|\bsarl\b|\bs\.a\.|\bb\.v\.)",
    re.IGNORECASE,
)
#: Words naming a business: the issuer line when no line has a legal suffix.
_BUSINESS = re.compile(
    r"\b(enterprises?|trading|restaurant|restoran|bistro|cafe|bakery|mart|supermarket|pasaraya|store|stores|"
    r"shop|hardware|stationery|pharmacy|kedai|syarikat|perniagaan|hotel|services|industries|marketing|"
    r"holdings|company|foods?|kitchen|market|boutique)\b",
    re.IGNORECASE,
)
_NOT_ISSUER = re.compile(
    r"\b(receipt|invoice|tax|gst|reg|tel|fax|phone|date|time|cashier|total|thank|welcome|"
    r"member|bill|table|order|address|email|www|jalan|jln|road|street|lot|taman)\b|@|https?:|\.com\b",
    re.IGNORECASE,
)
#: From here on an issuer line is its registration number or address: "(519537-X)", "No. 53".
_ISSUER_TAIL = re.compile(
    r"\s*(?:[(<\[][^)>\]]*\d|\b(?:co\.?\s*reg|company\s*reg|reg\.?\s*no|gst)\b|\S*\d{3,}).*$", re.I
)
_AMOUNT = re.compile(r"(?<![\d.,])(\d{1,3}(?:,\d{3})+|\d+)[.,](\d{2})(?![\d.,]|%)")
_CURRENCY = re.compile(r"(RM|MYR|USD|US\$|SGD|S\$|EUR|GBP|\$|€|£|¥)", re.IGNORECASE)
_MONTHS = "jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec"
_DATE = re.compile(
    r"(?<!\d)("
    r"\d{1,2}([/.\-])\d{1,2}\2(?:(?:19|20)\d{2}|\d{2}(?!\d))"  # 25/12/2018, 25-12-18 (a time may follow)
    r"|(?:19|20)\d{2}([/.\-])\d{1,2}\3\d{1,2}(?!\d)"  # 2018-12-25
    rf"|\d{{1,2}}[\s\-]?(?:{_MONTHS})[a-z]*\.?[\s\-,]*(?:(?:19|20)\d{{2}}|\d{{2}}(?!\d))"  # 25 Dec 2018
    rf"|(?:{_MONTHS})[a-z]*\.?\s+\d{{1,2}},?\s+(?:19|20)\d{{2}}"  # Dec 25, 2018
    r"|[0-3]\d[01]\d20\d{2}(?=\s+\d{1,2}:\d{2})"  # 25032018 13:11 (a till's compact date and time)
    r")",
    re.IGNORECASE,
)
#: Labels of the amount paid ("total", "amount due", "grand total", "total (incl GST)"...).
_TOTAL = re.compile(r"\b(total|amount\s*due|balance\s*due|payable)\b", re.IGNORECASE)
#: ...but not these: parts of it, counts, tax lines ("6% GST 1.44"), amounts before tax.
_NOT_TOTAL = re.compile(
    r"\b(sub\s*-?\s*total|qty|quantity|items?|discount|disc|savings?|excl\w*|before)\b|%",
    re.IGNORECASE,
)
_NUMBER = re.compile(
    r"\b(?:invoice|inv|receipt|rcpt|bill|document|doc|order|transaction|trans|txn|ref|cs|serial|slip|check|chk)"
    r"\s*\.?\s*(?:no|number|num|#)\b\.?\s*[:#.]?\s*([A-Z0-9][A-Z0-9\-/]*\d[A-Z0-9\-/]*)?",
    re.IGNORECASE,
)
_CODE = re.compile(r"^[:#.\s]*([A-Z0-9][A-Z0-9\-/]*\d[A-Z0-9\-/]*)\s*$", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Line:
    """One OCR line: its text, the engine's confidence and its box (4 corners) when known."""

    text: str
    confidence: float = 1.0
    box: tuple | None = None

    @property
    def row(self) -> tuple[float, float] | None:
        """The line's vertical extent ``(top, bottom)``, or None without a box."""
        if not self.box:
            return None
        ys = [float(p[1]) for p in self.box]
        return min(ys), max(ys)

    @property
    def left(self) -> float:
        return min(float(p[0]) for p in self.box) if self.box else 0.0


@dataclass(frozen=True, slots=True)
class Document:
    """What a document is and its key fields ("" when not found)."""

    kind: str
    issuer: str = ""
    date: str = ""
    number: str = ""
    total: str = ""
    currency: str = ""

    def alt_text(self) -> str:
        """``Receipt from ISSUER, DATE, total CUR AMOUNT`` with the fields found."""
        text = self.kind + (f" from {self.issuer}" if self.issuer else "")
        if self.date:
            text += f", {self.date}"
        if self.total:
            text += f", total {self.currency + ' ' if self.currency else ''}{self.total}"
        return text

    def details(self) -> list[str]:
        """Fields that tell two documents of one issuer apart, most specific first."""
        return [f"no. {self.number}" if self.number else "", self.date]


def lines_of(items: Iterable) -> list[Line]:
    """:class:`Line` objects from stored OCR lines (dicts), ``OcrLine`` objects or plain strings."""
    out = []
    for item in items:
        if isinstance(item, str):
            out.extend(Line(t.strip()) for t in item.splitlines() if t.strip())
        elif isinstance(item, dict):
            out.append(Line(str(item["text"]).strip(), float(item.get("confidence", 1.0)), item.get("box")))
        else:
            out.append(Line(item.text.strip(), float(item.confidence), item.box))
    return [line for line in out if line.text]


def kind_of(lines: Sequence[Line]) -> str | None:
    """``Receipt``, ``Invoice``, ``Form`` or None (not a document) from the lines' words."""
    if len(lines) < MIN_LINES:
        return None
    text = "\n".join(line.text for line in lines).lower()
    words = set(re.findall(r"[a-z][a-z\-]+", text))
    amounts = len(_AMOUNT.findall(text))
    if len(words & RECEIPT_WORDS) >= 2 and amounts >= 2:
        return "Invoice" if "invoice" in words and "receipt" not in words else "Receipt"
    labels = sum(bool(re.match(r"^[^\d:]{2,30}:", line.text)) for line in lines)
    if labels >= 4 and len(words & FORM_WORDS) >= 2:
        return "Form"
    return None


def issuer_of(lines: Sequence[Line], head: int = 8) -> str:
    """The issuer among the first ``head`` lines: the line with a legal suffix (Sdn Bhd, Ltd,
    Inc...), else one with a business word (trading, restaurant, mart...), else the first
    name-like line; with the line above it when the suffix stands alone ("BISTRO & CAFE"
    under "THREE STOOGES"), and without its registration number or address."""
    top = [line.text for line in lines[:head]]
    for pattern in (_LEGAL, _BUSINESS):
        for i, text in enumerate(top):
            if pattern.search(text) and not re.search(r"\breg\b|\bgst\b|\.com\b|www", text, re.I):
                name = _tidy(_ISSUER_TAIL.sub("", text) if _ISSUER_TAIL.sub("", text) else text)
                if len(name.split()) <= 3 and i > 0 and _name_like(top[i - 1]):
                    name = _tidy(top[i - 1]) + " " + name
                if sum(ch.isalpha() for ch in name) >= 4:
                    return name
    for text in top:
        if _name_like(text):
            return _tidy(_ISSUER_TAIL.sub("", text) or text)
    return ""


def _name_like(text: str) -> bool:
    letters = sum(ch.isalpha() for ch in text)
    return letters >= 4 and letters >= 0.7 * len(text.replace(" ", "")) and not _NOT_ISSUER.search(text)


def _tidy(text: str, limit: int = 50) -> str:
    text = " ".join(text.split()).strip(" .,:;-*")
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0]


def dates_in(text: str) -> list[str]:
    """The plausible dates written in ``text``, in order (compact ``25032018`` as ``25/03/2018``)."""
    out, pos = [], 0
    while (m := _DATE.search(text, pos)) is not None:
        found = m.group(1)
        if re.fullmatch(r"\d{8}", found):
            found = f"{found[:2]}/{found[2:4]}/{found[4:]}"
        if _plausible_date(found):
            out.append(found)
            pos = m.end()
        else:
            pos = m.start() + 1
    return out


def date_of(lines: Sequence[Line]) -> str:
    """The document date as printed: the first date on or just after a line saying "date",
    else the first date."""
    labelled, first = "", ""
    for i, line in enumerate(lines):
        found = dates_in(line.text)
        if found and not first:
            first = found[0]
        if re.search(r"\bdate\b", line.text, re.I):
            near = found or [d for nxt in lines[i + 1 : i + 3] for d in dates_in(nxt.text)]
            if near:
                labelled = near[0]
                break
    return labelled or first


def _plausible_date(text: str) -> bool:
    nums = [int(n) for n in re.findall(r"\d+", text)]
    if len(nums) == 3 and not re.search(r"[a-z]", text, re.I):
        a, b, c = nums
        day, month = (c, b) if a > 31 else (a, b)
        return (1 <= month <= 12 and 1 <= day <= 31) or (1 <= day <= 12 and 1 <= month <= 31)
    return True


def _same_row(a: Line, b: Line) -> bool:
    ra, rb = a.row, b.row
    if ra is None or rb is None:
        return False
    overlap = min(ra[1], rb[1]) - max(ra[0], rb[0])
    return overlap > 0.5 * min(ra[1] - ra[0], rb[1] - rb[0])


def _amount_in(text: str) -> str:
    found = _AMOUNT.findall(text)
    return f"{found[-1][0].replace(',', '')}.{found[-1][1]}" if found else ""


def _value_after(lines: Sequence[Line], i: int) -> str:
    """The amount of the label on line ``i``: after the label on that line, else on the same
    row to its right, else on one of the next two lines holding only an amount (OCR reads a
    two-column receipt's label and value as separate lines)."""
    label = lines[i]
    m = _TOTAL.search(label.text)
    own = _amount_in(label.text[m.end() :] if m else label.text)
    if own:
        return own
    if label.row is not None:
        row = [
            line for line in lines if line is not label and _same_row(label, line) and line.left > label.left
        ]
        for line in sorted(row, key=lambda line: line.left):
            if _amount_in(line.text):
                return _amount_in(line.text)
    for line in lines[i + 1 : i + 3]:
        if _amount_in(line.text) and not re.search(r"[a-z]{3}", line.text, re.I):
            return _amount_in(line.text)
    return ""


def total_of(lines: Sequence[Line]) -> str:
    """The amount paid: a rounded total when one is labelled so, else the largest amount
    labelled as a total (the total with tax is at least the one without; sub-totals, counts,
    discounts and tax lines are not totals)."""
    found = [
        (bool(re.search(r"round", line.text, re.I)), _value_after(lines, i))
        for i, line in enumerate(lines)
        if _TOTAL.search(line.text) and not _NOT_TOTAL.search(line.text)
    ]
    rounded = [v for r, v in found if r and v]
    values = rounded or [v for _, v in found if v]
    return max(values, key=float) if values else ""


def currency_of(lines: Sequence[Line]) -> str:
    """The currency written on the lines (the most frequent sign or code), else ""."""
    counts: dict[str, int] = {}
    for line in lines:
        for m in _CURRENCY.findall(line.text):
            key = m.upper().replace("US$", "USD").replace("S$", "SGD").replace("MYR", "RM")
            counts[key] = counts.get(key, 0) + 1
    return max(counts, key=lambda k: counts[k]) if counts else ""


def number_of(lines: Sequence[Line]) -> str:
    """The document number after an "invoice no" / "receipt no" / "document no" style label."""
    for i, line in enumerate(lines):
        m = _NUMBER.search(line.text)
        if not m:
            continue
        if m.group(1):
            return m.group(1)
        for nxt in lines[i + 1 : i + 3]:
            code = _CODE.match(nxt.text)
            if code:
                return code.group(1)
    return ""


def parse(items: Iterable) -> Document | None:
    """The :class:`Document` the OCR lines ``items`` show, or None when they are not one."""
    lines = lines_of(items)
    kind = kind_of(lines)
    if kind is None:
        return None
    if kind == "Form":
        return Document(kind, issuer_of(lines), date_of(lines))
    return Document(
        kind, issuer_of(lines), date_of(lines), number_of(lines), total_of(lines), currency_of(lines)
    )
