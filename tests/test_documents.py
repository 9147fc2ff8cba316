"""Receipts and invoices recognised from OCR lines: kind, issuer, date, number, total."""

import pytest

from searchengine import documents
from searchengine.documents import Line


def row(y: float, *cells: tuple[float, str]) -> list[Line]:
    """OCR lines of one printed row: ``(x, text)`` cells, 20 px high at ``y``."""
    return [
        Line(t, 0.99, ((x, y), (x + 10 * len(t), y), (x + 10 * len(t), y + 20), (x, y + 20)))
        for x, t in cells
    ]


def two_column_receipt() -> list[Line]:
    """A receipt as OCR reads it: every label and its value are separate lines, side by side."""
    lines = []
    for i, cells in enumerate(
        [
            [(10, "tan woon yann")],
            [(10, "THREE STOOGES")],
            [(10, "BISTRO & CAFE (123456-X)")],
            [(10, "NO. 5, JALAN SS 21/1A, DAMANSARA")],
            [(10, "Invoice No:"), (200, "CS00012345")],
            [(10, "Date:"), (200, "12/03/2018 8:13:39 PM")],
            [(10, "FLAT WHITE"), (300, "12.00")],
            [(10, "Sub Total"), (300, "110.00")],
            [(10, "Total Sales (Excluding GST)"), (300, "110.00")],
            [(10, "6% GST"), (300, "6.60")],
            [(10, "Total (Inclusive GST)"), (300, "116.60")],
            [(10, "Rounding Adj"), (300, "0.00")],
            [(10, "Cash"), (300, "120.00")],
            [(10, "Change"), (300, "3.40")],
            [(10, "TOTAL INCLUDES 6% GST"), (300, "6.60")],
        ]
    ):
        lines += row(40.0 * i, *cells)
    return lines


def test_two_column_receipt_fields():
    doc = documents.parse(two_column_receipt())
    assert doc is not None and doc.kind == "Invoice"
    assert doc.issuer == "THREE STOOGES BISTRO & CAFE"  # the line above a lone business name
    assert doc.date == "12/03/2018"
    assert doc.number == "CS00012345"
    assert doc.total == "116.60"  # not the sub-total, the tax, the cash or the change
    assert doc.alt_text() == "Invoice from THREE STOOGES BISTRO & CAFE, 12/03/2018, total 116.60"


def test_plain_text_receipt_takes_values_from_the_next_line_and_prefers_a_rounded_total():
    text = (
        "tan woon yann\nBOOK TA .K(TAMAN DAYA) SDN BND\n789417-W\nNO.53 55,57 & 59, JALAN SAGU 18,\n"
        "DOCUMENT NO : TD01167104\nDATE:\n25/12/2018 8:13:39 PM\nCASH BILL\nQTY\nKF MODELLING CLAY\n"
        "9.01\nTOTAL:\n9.01\nROUNDED TOTAL (RM):\n9.00\nCASH\n10.00\nCHANGE\n1.00\nTHANK YOU"
    )
    doc = documents.parse([text])
    assert doc is not None and doc.kind == "Receipt"
    assert (doc.date, doc.number, doc.total, doc.currency) == ("25/12/2018", "TD01167104", "9.00", "RM")
    assert doc.alt_text().endswith("25/12/2018, total RM 9.00")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Date: 05 Mar 2018 18:24", "05 Mar 2018"),
        ("14/03/20185:57:07PM", "14/03/2018"),  # a time glued to the year
        ("ORD #70 -REG #19-18/03/2018 23:02:16", "18/03/2018"),  # 19-18 is no date
        ("00440010036 25032018 13:11:54", "25/03/2018"),  # a till's compact date and time
        ("2018-12-25", "2018-12-25"),
        ("Dec 25, 2018", "Dec 25, 2018"),
        ("TEL 03-6092-1968", ""),
    ],
)
def test_dates(line, expected):
    found = documents.dates_in(line)
    assert (found[0] if found else "") == expected


@pytest.mark.parametrize(
    ("head", "issuer"),
    [
        (["tan woon yann", "MR D.I.Y. (JOHOR) SDN BHD", "(CO.REG : 933109-X)"], "MR D.I.Y. (JOHOR) SDN BHD"),
        (["A02045", "PERNIAGAAN ZHENG HUI", "JM0325955-V", "NO.59 JALAN PERMAS 9/5"], "PERNIAGAAN ZHENG HUI"),
        (["99 SPEED MART S/B (519537-X)", "LOT P.T. 2811, JALAN ANGSA"], "99 SPEED MART S/B"),
        (["PASARAYA BORONG PINTAR", "SDN BHD", "BR No.(124525-H)"], "PASARAYA BORONG PINTAR SDN BHD"),
        (["Company Reg No.:75495-W", "GL HANDICRAFT & TAILORING"], "GL HANDICRAFT & TAILORING"),
    ],
)
def test_issuer(head, issuer):
    assert documents.issuer_of(documents.lines_of(head)) == issuer


def test_signs_labels_and_short_texts_are_not_documents():
    assert documents.parse(["SUMMER SALE\n50% OFF\neverything must go"]) is None
    assert documents.parse(["ORGANIC GREEN TEA\nSencha - loose leaf\n250 g\nSKU QX-7781-B"]) is None
    menu = "MENU\nFLAT WHITE 12.00\nLATTE 13.00\nMOCHA 14.00\nSCONE 6.50\nMUFFIN 5.50\nopen daily"
    assert documents.parse([menu]) is None  # prices, but no receipt words


def test_a_form_is_a_document_without_a_total():
    form = "APPLICATION FORM\nName: Jane Doe\nAddress: 1 High Street\nDate of birth: 01/02/1990\n"
    form += "Nationality: British\nSignature:\nDate: 03/04/2024"
    doc = documents.parse([form])
    assert doc is not None and doc.kind == "Form" and doc.total == ""
    assert doc.date == "01/02/1990"  # the first date on a line saying "date"


def test_stored_line_dicts_are_read():
    stored = [
        {"text": line.text, "confidence": line.confidence, "box": line.box} for line in two_column_receipt()
    ]
    assert documents.parse(stored) == documents.parse(two_column_receipt())
