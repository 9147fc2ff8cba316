"""How precise are the classifier's ImageNet labels at each probability floor?

    .venv/bin/python bench/eval_labels.py [--evalidx /work/evalidx] [--target 0.8]

Reads the labels and probabilities the offline captioner stored (caption parts: every
label >= 0.15 among the top 3, EfficientNet-Lite0 on the indexer's decoded image) in the
pre-built eval indexes of ``coco_mini`` and ``fashion_products_3k`` (read only), and
judges each label against the dataset's annotations:

* coco_mini: right when the label maps (hand map below, from ImageNet class names and
  index ranges to the 80 COCO categories) to an object of the image's COCO list, or when
  one of the class's synonyms is a word of the five human captions (plural allowed);
* fashion_products_3k: right when the label is one a shop assistant would accept for the
  product's articleType (hand map below; "jersey" for a T-shirt, "sandal" for flip flops,
  "analog clock" for a watch is wrong).

Labels the product never states (searchengine.labels.NEVER_STATE) are left out of the
precision and counted apart. Prints precision and coverage per floor and set, and the
leave-one-set-out choice: the lowest floor reaching ``--target`` on one set, reported on
the other.
"""

from __future__ import annotations

import argparse
import json
import re
import sqlite3
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from searchengine.labels import KINDS, LABEL_FLOOR, NEVER_STATE, top_labels  # noqa: E402
from searchengine.models.conse import imagenet_lemmas  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets"
FLOORS = (0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9)

#: ImageNet index ranges -> COCO category (animals: many breeds, one COCO word).
COCO_RANGES = {
    "bird": [(7, 24), (80, 100), (127, 146)],
    "dog": [(151, 268)],
    "cat": [(281, 285)],
    "bear": [(294, 297)],
    "horse": [(339, 339)],
    "zebra": [(340, 340)],
    "cow": [(345, 347)],
    "sheep": [(348, 349)],
    "elephant": [(101, 101), (385, 386)],
}
#: ImageNet class name (first lemma) -> COCO categories it names.
COCO_NAMES = {
    "person": "ballplayer groom scuba diver pirate",
    "bicycle": "mountain bike bicycle-built-for-two tricycle unicycle",
    "car": "sports car convertible cab limousine minivan jeep racer beach wagon Model T police van "
    "car wheel grille",
    "motorcycle": "moped motor scooter crash helmet",
    "airplane": "airliner warplane airship wing",
    "bus": "trolleybus school bus minibus",
    "train": "passenger car electric locomotive steam locomotive bullet train freight car streetcar",
    "truck": "tow truck garbage truck moving van pickup trailer truck fire engine tractor",
    "boat": "trimaran catamaran canoe speedboat yawl schooner fireboat lifeboat gondola container ship liner "
    "pirate paddlewheel",
    "traffic light": "traffic light",
    "stop sign": "street sign",
    "parking meter": "parking meter",
    "bench": "park bench",
    "umbrella": "umbrella",
    "handbag": "purse mailbag",
    "backpack": "backpack",
    "tie": "Windsor tie bolo tie",
    "skis": "ski",
    "sports ball": "soccer ball tennis ball baseball basketball volleyball golf ball rugby ball "
    "football helmet",
    "kite": "kite",
    "baseball bat": "baseball",
    "baseball glove": "baseball",
    "tennis racket": "racket tennis ball",
    "bottle": "beer bottle wine bottle water bottle pop bottle pill bottle",
    "wine glass": "red wine goblet",
    "cup": "cup coffee mug espresso",
    "fork": "wooden spoon",
    "spoon": "wooden spoon ladle",
    "bowl": "soup bowl mixing bowl consomme",
    "banana": "banana",
    "apple": "Granny Smith",
    "sandwich": "cheeseburger hotdog",
    "orange": "orange lemon",
    "broccoli": "broccoli",
    "hot dog": "hotdog",
    "pizza": "pizza",
    "donut": "bagel",
    "cake": "trifle chocolate sauce",
    "chair": "folding chair rocking chair barber chair throne",
    "couch": "studio couch",
    "potted plant": "pot",
    "bed": "four-poster quilt",
    "dining table": "dining table restaurant plate meat loaf",
    "toilet": "toilet seat toilet tissue",
    "tv": "television monitor screen home theater entertainment center",
    "laptop": "laptop notebook desktop computer",
    "mouse": "mouse",
    "remote": "remote control",
    "keyboard": "computer keyboard typewriter keyboard space bar",
    "cell phone": "cellular telephone hand-held computer",
    "microwave": "microwave",
    "oven": "stove Dutch oven rotisserie",
    "toaster": "toaster",
    "sink": "washbasin",
    "refrigerator": "refrigerator",
    "book": "book jacket bookcase bookshop library",
    "clock": "analog clock wall clock digital clock",
    "vase": "vase",
    "teddy bear": "teddy",
    "hair drier": "hand blower",
}
#: fashion articleType -> ImageNet class names that describe such a product.
FASHION = {
    "Tshirts": "jersey",
    "Tops": "jersey",
    "Lounge Tshirts": "jersey",
    "Sweatshirts": "sweatshirt",
    "Sweaters": "sweatshirt cardigan",
    "Jackets": "trench coat sweatshirt cardigan fur coat",
    "Rain Jacket": "trench coat",
    "Casual Shoes": "running shoe Loafer",
    "Sports Shoes": "running shoe",
    "Formal Shoes": "Loafer",
    "Sandals": "sandal",
    "Sports Sandals": "sandal",
    "Flip Flops": "sandal",
    "Heels": "sandal",
    "Flats": "Loafer sandal",
    "Watches": "digital watch",
    "Handbags": "purse",
    "Clutches": "purse wallet",
    "Laptop Bag": "mailbag",
    "Messenger Bag": "mailbag",
    "Backpacks": "backpack",
    "Sunglasses": "sunglass sunglasses",
    "Wallets": "wallet purse",
    "Belts": "buckle",
    "Socks": "sock",
    "Ties": "Windsor tie bolo tie",
    "Perfume and Body Mist": "perfume",
    "Fragrance Gift Set": "perfume",
    "Lipstick": "lipstick",
    "Lip Gloss": "lipstick",
    "Lip Care": "lipstick",
    "Face Moisturisers": "lotion sunscreen",
    "Sunscreen": "lotion sunscreen",
    "Body Lotion": "lotion sunscreen",
    "Face Wash and Cleanser": "lotion",
    "Mask and Peel": "lotion",
    "Eye Cream": "lotion",
    "Compact": "face powder",
    "Highlighter and Blush": "face powder",
    "Eyeshadow": "face powder",
    "Foundation and Primer": "face powder lotion",
    "Concealer": "face powder lotion",
    "Jeans": "jean",
    "Jeggings": "jean",
    "Dresses": "gown",
    "Skirts": "overskirt miniskirt hoopskirt sarong",
    "Night suits": "pajama",
    "Nightdress": "pajama gown",
    "Lounge Pants": "pajama",
    "Baby Dolls": "pajama",
    "Necklace and Chains": "necklace chain",
    "Pendant": "necklace",
    "Jewellery Set": "necklace",
    "Stoles": "stole",
    "Scarves": "stole",
    "Dupatta": "stole",
    "Mufflers": "stole",
    "Water Bottle": "water bottle water jug pop bottle",
    "Footballs": "soccer ball",
    "Gloves": "mitten",
    "Headband": "hair slide",
    "Cushion Covers": "pillow",
    # classes never stated: judged too, to show what stating them would have been worth
    "Bra": "brassiere",
    "Swimwear": "maillot bikini swimming trunks",
}


def _split(names: str, vocab: set[str]) -> set[str]:
    """Class names from a space-joined list (names are matched greedily against the vocabulary)."""
    words, out, i = names.replace("?", "").split(), set(), 0
    while i < len(words):
        for j in range(len(words), i, -1):
            if " ".join(words[i:j]) in vocab:
                out.add(" ".join(words[i:j]))
                i = j
                break
        else:
            raise ValueError(f"not an ImageNet class name: {words[i]!r} in {names!r}")
    return out


def coco_judge(lemmas: list[list[str]], mapping_only: bool = False):
    vocab = {lem[0] for lem in lemmas}
    to_coco: dict[str, set[str]] = {}
    for cat, ranges in COCO_RANGES.items():
        for a, b in ranges:
            for i in range(a, b + 1):
                to_coco.setdefault(lemmas[i][0], set()).add(cat)
    for cat, names in COCO_NAMES.items():
        for name in _split(names, vocab):
            to_coco.setdefault(name, set()).add(cat)
    if mapping_only:
        return to_coco
    synonyms = {lem[0]: lem for lem in lemmas}

    for kind in KINDS:
        to_coco.setdefault(kind, set()).add(kind)  # "dog", "cat", "bird", "bear" are COCO words

    def right(label: str, rec: dict) -> bool:
        if to_coco.get(label, set()) & set(rec["category"]):
            return True
        text = " ".join(rec["captions"]).lower()
        return any(
            re.search(rf"\b{re.escape(s.lower())}(s|es)?\b", text) for s in synonyms.get(label, [label])
        )

    return right


#: Words captions use for a COCO category besides its name (flickr8k has no object lists).
CAPTION_WORDS = {
    "bicycle": "bike bicycle cyclist biker",
    "motorcycle": "motorbike motorcycle",
    "airplane": "plane airplane jet",
    "person": "man woman boy girl person people player child",
    "sports ball": "ball",
    "boat": "boat ship",
    "dog": "dog puppy",
    "cow": "cow bull cattle",
    "skis": "ski skis skier skiing",
    "tennis racket": "racket tennis",
    "dining table": "table",
}


def caption_judge(lemmas: list[list[str]]):
    """flickr8k_dev1k (a third set, reported only): right when a synonym of the class, or a
    word of the COCO category it maps to, is a word of the five captions (a lower bound:
    captions do not name everything)."""
    to_coco = coco_judge(lemmas, mapping_only=True)
    synonyms = {lem[0]: lem for lem in lemmas}

    def right(label: str, rec: dict) -> bool:
        text = " ".join(rec["captions"]).lower()
        words = list(synonyms.get(label, [label]))
        for cat in to_coco.get(label, ()):
            words += (
                CAPTION_WORDS.get(cat, cat).split(",")
                if cat not in CAPTION_WORDS
                else CAPTION_WORDS[cat].split()
            )
        return any(re.search(rf"\b{re.escape(w.lower())}(s|es)?\b", text) for w in words)

    return right


def fashion_judge(lemmas: list[list[str]]):
    vocab = {lem[0] for lem in lemmas}
    ok = {t: _split(names, vocab) for t, names in FASHION.items()}
    return lambda label, rec: label in ok.get(rec["attributes"]["articleType"], set())


def images_labels(evalidx: Path, name: str) -> tuple[list[tuple[list, dict]], int]:
    """Each captioned image's stored ``(label, probability)`` list with its annotation record."""
    recs = {Path(r["file"]).name: r for r in map(json.loads, (DATA / name / "annotations.jsonl").open())}
    db = sqlite3.connect(f"file:{evalidx / name / 'index.db'}?mode=ro", uri=True)
    rows = db.execute("SELECT i.path, c.parts FROM captions c JOIN images i ON i.id = c.image_id").fetchall()
    out = []
    for path, parts in rows:
        rec = recs.get(Path(path).name)
        if rec is not None and parts:
            out.append(([(n, p) for n, p in json.loads(parts)["labels"] if p is not None], rec))
    return out, len(rows)


def table(images, n_images: int, judge, index_of) -> dict[float, tuple[int, float, float, int]]:
    """floor -> (labels stated, precision, labels per image, of them kinds) as the captioner states
    them (searchengine.labels.top_labels: names, else kinds; never-stated classes left out)."""
    rows = {}
    for f in FLOORS:
        stated = [
            (label, judge(label, rec))
            for labels, rec in images
            for label, _ in top_labels([(index_of[n], n, p) for n, p in labels], f)
        ]
        kinds = sum(label in KINDS for label, _ in stated)
        right = sum(r for _, r in stated)
        rows[f] = (len(stated), right / max(len(stated), 1), len(stated) / max(n_images, 1), kinds)
    return rows


def never_stated(images, judge) -> list[tuple[str, int, int]]:
    """Never-stated classes among the stored labels (>= 0.15): (label, times, times right)."""
    seen: Counter = Counter()
    for labels, rec in images:
        for label, _ in labels:
            if label.lower() in NEVER_STATE:
                seen[(label, "stated")] += 1
                seen[(label, "right")] += judge(label, rec)
    names = sorted({lab for lab, _ in seen}, key=lambda lab: -seen[(lab, "stated")])
    return [(lab, seen[(lab, "stated")], seen[(lab, "right")]) for lab in names]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--evalidx", type=Path, default=Path("/work/evalidx"))
    ap.add_argument("--target", type=float, default=0.8)
    args = ap.parse_args()
    lemmas = imagenet_lemmas()
    sets = {
        "coco_mini": coco_judge(lemmas),
        "fashion_products_3k": fashion_judge(lemmas),
        "flickr8k_dev1k": caption_judge(lemmas),
    }
    index_of = {}
    for i, lem in enumerate(lemmas):
        index_of.setdefault(lem[0], i)
    tables = {}
    for name, judge in sets.items():
        images, n = images_labels(args.evalidx, name)
        tables[name] = table(images, n, judge, index_of)
        print(f"\n{name}: {n} images")
        print("| floor | labels stated | of them kinds | precision | labels per image |")
        print("|---:|---:|---:|---:|---:|")
        for f, (k, prec, cov, kinds) in tables[name].items():
            print(f"| {f:.2f} | {k} | {kinds} | {prec:.3f} | {cov:.2f} |")
        wrong = Counter(
            lab
            for labels, rec in images
            for lab, _ in top_labels([(index_of[n], n, p) for n, p in labels], LABEL_FLOOR)
            if not judge(lab, rec)
        )
        print(f"wrong labels at the floor {LABEL_FLOOR}:", wrong.most_common(8))
        print("never stated (label, times >= 0.15, right):", never_stated(images, judge))
    print(
        f"\n| choose on | lowest floor with precision >= {args.target:.2f} | report on | precision "
        "| labels per image |"
    )
    print("|---|---:|---|---:|---:|")
    for a, b in (("fashion_products_3k", "coco_mini"), ("coco_mini", "fashion_products_3k")):
        floor = next((f for f in FLOORS if tables[a][f][1] >= args.target and tables[a][f][0]), None)
        if floor is None:
            print(f"| {a} | none | {b} | | |")
            continue
        for other in (b, "flickr8k_dev1k"):
            _, prec, cov, _ = tables[other][floor]
            print(f"| {a} | {floor:.2f} | {other} | {prec:.3f} | {cov:.2f} |")


if __name__ == "__main__":
    main()
