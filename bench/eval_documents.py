"""Receipt alt text against SROIE's annotations: does it name the issuer, the date and the total?

    .venv/bin/python bench/eval_documents.py [--index /work/evalidx/sroie_dev100]
        [--data ../shared/datasets/sroie_dev100] [--show 10]

Reads the OCR lines stored in an index built from the dataset (never writes to it) and the
alt text the export writes. Issuer: fuzzy (difflib ratio >= 0.8 on letters and digits, or
one contains the other); date: the same day, month and year; total: the same amount.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from searchengine import documents  # noqa: E402
from searchengine.export import records  # noqa: E402
from searchengine.store.db import Store  # noqa: E402


def norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def same_issuer(found: str, truth: str) -> bool:
    a, b = norm(found), norm(truth)
    return bool(a) and (a in b or b in a or difflib.SequenceMatcher(None, a, b).ratio() >= 0.8)


def date_key(text: str) -> tuple | None:
    nums = [int(n) for n in re.findall(r"\d+", text)]
    if len(nums) == 1 and len(str(nums[0])) == 8:  # 20180304
        nums = [nums[0] // 10000, nums[0] // 100 % 100, nums[0] % 100]
    months = "jan feb mar apr may jun jul aug sep oct nov dec".split()
    named = re.search(r"[a-z]{3}", text.lower())
    if len(nums) == 2 and named and named.group() in months:
        nums = [nums[0], months.index(named.group()) + 1, nums[1]]
    if len(nums) != 3:
        return None
    d, m, y = (nums[2], nums[1], nums[0]) if nums[0] > 31 else nums
    return d, m, y % 100


def same_amount(found: str, truth: str) -> bool:
    try:
        return bool(found) and abs(float(found) - float(re.sub(r"[^\d.]", "", truth))) < 0.005
    except ValueError:
        return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", default="/work/evalidx/sroie_dev100")
    ap.add_argument(
        "--data", default=str(Path(__file__).resolve().parents[2] / "shared/datasets/sroie_dev100")
    )
    ap.add_argument("--show", type=int, default=0, help="print this many misses")
    args = ap.parse_args()
    truth = {
        Path(r["file"]).name: r["fields"]
        for r in map(json.loads, (Path(args.data) / "annotations.jsonl").open())
    }
    store = Store(args.index)
    ids = {Path(p).name: i for i, p in store.images.searchable_paths()}
    texts = store.text.of_many(list(ids.values()))
    alts = {Path(r.path).name: r.alt_text for r in records(store)}
    counts = dict.fromkeys(("images", "document", "issuer", "date", "total", "all three", "alt names all"), 0)
    shown = 0
    for name, fields in sorted(truth.items()):
        if name not in ids:
            continue
        counts["images"] += 1
        doc = documents.parse(texts[ids[name]].ocr_lines)
        if doc is None:
            continue
        counts["document"] += 1
        ok = {
            "issuer": same_issuer(doc.issuer, fields["company"]),
            "date": date_key(doc.date) is not None and date_key(doc.date) == date_key(fields["date"]),
            "total": same_amount(doc.total, fields["total"]),
        }
        for k, v in ok.items():
            counts[k] += v
        counts["all three"] += all(ok.values())
        alt = alts.get(name, "")
        counts["alt names all"] += (
            all(ok.values()) and doc.issuer in alt and doc.date in alt and doc.total in alt
        )
        if not all(ok.values()) and shown < args.show:
            shown += 1
            found = f"{doc.issuer!r} {doc.date!r} {doc.total!r} {ok}"
            print(f"{name}: {alt!r}\n   found: {found}")
            print(f"   truth: {fields['company']!r} {fields['date']!r} {fields['total']!r}")
    n = counts["images"]
    print("| field | receipts | share |\n|---|---:|---:|")
    for k, v in counts.items():
        print(f"| {k} | {v} | {v / max(n, 1):.0%} |")


if __name__ == "__main__":
    main()
