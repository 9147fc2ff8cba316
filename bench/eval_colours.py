"""Do the offline captioner's colour words name the product's colour? (issue #12)

Runs the colour function directly on the image files of fashion_products_3k (no index) and
counts the products whose caption colours include their annotated ``baseColour``, mapped to the
13 colour words by ``BASE_COLOUR`` below. "before" is the function as it was before issue #12
(whole-image colours, kept verbatim below); "after" is searchengine.models.colours.

Also reports, on photo sets (flickr8k_dev1k, coco_mini), how often the backdrop step triggers and
how often the colours change there.

    .venv/bin/python bench/eval_colours.py [--shared ../shared/datasets] [--limit N]
"""

from __future__ import annotations

import argparse
import colorsys
import json
import time
from collections import Counter
from pathlib import Path

from PIL import Image

from searchengine.models import colours

REPO = Path(__file__).resolve().parent.parent

#: Dataset colour -> the colour words that count as naming it. None: excluded (no single colour).
BASE_COLOUR: dict[str, tuple[str, ...] | None] = {
    "Black": ("black",),
    "White": ("white",),
    "Blue": ("blue",),
    "Navy Blue": ("blue",),
    "Brown": ("brown",),
    "Coffee Brown": ("brown",),
    "Grey": ("grey",),
    "Grey Melange": ("grey",),
    "Charcoal": ("grey",),
    "Steel": ("grey",),
    "Silver": ("grey", "white"),
    "Green": ("green",),
    "Olive": ("green",),
    "Lime Green": ("green",),
    "Fluorescent Green": ("green",),
    "Red": ("red",),
    "Maroon": ("red",),
    "Burgundy": ("red",),
    "Rust": ("red", "orange", "brown"),
    "Pink": ("pink",),
    "Rose": ("pink", "red"),
    "Magenta": ("pink", "purple"),
    "Purple": ("purple",),
    "Lavender": ("purple",),
    "Mauve": ("purple", "pink"),
    "Beige": ("beige",),
    "Cream": ("white", "beige"),
    "Off White": ("white", "beige"),
    "Skin": ("beige",),
    "Nude": ("beige",),
    "Khaki": ("beige", "brown"),
    "Tan": ("beige", "brown"),
    "Taupe": ("grey", "brown"),
    "Peach": ("orange", "pink", "beige"),
    "Orange": ("orange",),
    "Copper": ("orange", "brown"),
    "Bronze": ("orange", "brown"),
    "Yellow": ("yellow",),
    "Mustard": ("yellow",),
    "Gold": ("yellow",),
    "Teal": ("teal",),
    "Turquoise Blue": ("teal", "blue"),
    "Multi": None,
    "Metallic": None,
}


# -- the colour code as it was before issue #12 (whole image), kept verbatim for the "before" --
def old_colour_name(rgb: tuple[int, int, int]) -> str:
    h, s, v = colorsys.rgb_to_hsv(*(c / 255 for c in rgb))
    hue = h * 360
    if v < 0.18:
        return "black"
    if s < 0.18:
        return "white" if v > 0.85 else "grey"
    if (hue < 45 or hue >= 345) and v < 0.55 and s > 0.25:
        return "brown"
    if s < 0.35 and 20 <= hue < 60 and v > 0.7:
        return "beige"
    for limit, name in (
        (15, "red"),
        (45, "orange"),
        (70, "yellow"),
        (165, "green"),
        (200, "teal"),
        (255, "blue"),
        (290, "purple"),
        (345, "pink"),
    ):
        if hue < limit:
            return name
    return "red"


def old_dominant_colours(image: Image.Image, floor: float = 0.15) -> list[str]:
    small = image.convert("RGB").resize((48, 48), Image.Resampling.BILINEAR)
    shares: dict[str, float] = {}
    for count, rgb in small.getcolors(48 * 48) or []:
        name = old_colour_name(rgb)
        shares[name] = shares.get(name, 0.0) + count / (48 * 48)
    return [n for n, share in sorted(shares.items(), key=lambda kv: -kv[1]) if share >= floor][:3]


def _records(root: Path, start: int, limit: int | None) -> list[dict]:
    records = [json.loads(line) for line in (root / "annotations.jsonl").open()][start:]
    return records[:limit] if limit is not None else records


def fashion(root: Path, start: int, limit: int | None) -> None:
    records = _records(root, start, limit)
    excluded = Counter()
    rows = []  # (accepted words, base colour, old colours, new colours)
    t_old = t_new = 0.0
    for r in records:
        base = r["attributes"].get("baseColour")
        words = BASE_COLOUR.get(base) if base else None
        if words is None:
            excluded[str(base)] += 1
            continue
        with Image.open(root / r["file"]) as im:
            im.load()
            t0 = time.perf_counter()
            old = old_dominant_colours(im)
            t1 = time.perf_counter()
            new = colours.dominant_colours(im)
            t_new += time.perf_counter() - t1
            t_old += t1 - t0
        rows.append((words, base, old, new))
    n = len(rows)
    print(f"fashion_products_3k: {n} products scored, excluded {sum(excluded.values())}: {dict(excluded)}")
    print(f"time per image: before {1000 * t_old / n:.2f} ms, after {1000 * t_new / n:.2f} ms")

    def report(label, subset):
        k = len(subset)
        anyhit = [sum(any(w in row[i] for w in row[0]) for row in subset) for i in (2, 3)]
        first = [sum(row[i][:1] != [] and row[i][0] in row[0] for row in subset) for i in (2, 3)]
        print(
            f"  {label:<12} n={k:<5} includes: {anyhit[0] / k:6.1%} -> {anyhit[1] / k:6.1%}   "
            f"first: {first[0] / k:6.1%} -> {first[1] / k:6.1%}"
        )

    print("share whose colours include / start with the annotated colour (before -> after):")
    report("all", rows)
    for base in ("Black", "White", "Blue", "Navy Blue", "Brown", "Grey", "Green", "Red", "Pink", "Purple"):
        report(base, [row for row in rows if row[1] == base])
    for i, when in ((2, "before"), (3, "after")):
        said_white = sum("white" in row[i] for row in rows) / n
        first_white = sum(row[i][:1] == ["white"] for row in rows) / n
        print(
            f"  {when}: 'white' among colours {said_white:.1%}, first {first_white:.1%} (White products: "
            f"{sum(row[1] == 'White' for row in rows) / n:.1%})"
        )
    conf = Counter(
        (row[1], row[3][0] if row[3] else "-") for row in rows if not row[3] or row[3][0] not in row[0]
    )
    print("after, most common misses (annotated, first colour said):", conf.most_common(12))


def whole_image_colours(image: Image.Image, floor: float = colours.COLOUR_FLOOR) -> list[str]:
    """The new colour names over the whole image (no backdrop step): the naming change alone."""
    small = image.convert("RGB").resize((colours.SIZE, colours.SIZE), Image.Resampling.BILINEAR)
    shares: dict[str, float] = {}
    for count, rgb in small.getcolors(colours.SIZE**2) or []:
        name = colours.colour_name(rgb)
        shares[name] = shares.get(name, 0.0) + count / colours.SIZE**2
    return [n for n, share in sorted(shares.items(), key=lambda kv: -kv[1]) if share >= floor][:3]


def scenes(root: Path, start: int, limit: int | None) -> None:
    records = _records(root, start, limit)
    triggered = named = changed = 0
    examples = []
    for r in records:
        with Image.open(root / r["file"]) as im:
            im.load()
            mask = colours.subject_mask(colours._thumbnail(im))
            old, whole, new = old_dominant_colours(im), whole_image_colours(im), colours.dominant_colours(im)
        triggered += mask is not None
        named += old != whole
        changed += whole != new
        if mask is not None:
            examples.append(f"{r['file']}: {old} -> {whole} (naming) -> {new} (subject)")
    n = len(records)
    print(
        f"{root.name}: {n} photos; the naming change alters the colours of {named / n:.1%}; "
        f"the backdrop step triggers on {triggered / n:.1%} and alters the colours of {changed / n:.1%}"
    )
    for e in examples[:10]:
        print("   ", e)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "datasets")
    ap.add_argument("--start", type=int, default=0, help="skip the first N records of each set")
    ap.add_argument("--limit", type=int, default=None, help="at most N records of each set")
    ap.add_argument("--tolerance", type=int, default=None, help="override BACKDROP_TOLERANCE")
    ap.add_argument("--fashion-only", action="store_true", help="skip the photo sets")
    args = ap.parse_args()
    if args.tolerance is not None:
        colours.BACKDROP_TOLERANCE = args.tolerance
        colours.subject_mask.__defaults__ = (args.tolerance,)
    fashion(args.shared / "fashion_products_3k", args.start, args.limit)
    for name in ("flickr8k_dev1k", "coco_mini"):
        if (args.shared / name).is_dir() and not args.fashion_only:
            scenes(args.shared / name, args.start, args.limit)


if __name__ == "__main__":
    main()
