"""Which classifier labels the product may state, and the plain sentence that states them.

Used when a caption is made (``searchengine.models.captioner``) and again whenever a
stored caption is read or exported, so that captions written by an older captioner
(``offline:labels-colours-ocr-v1``: hedged, a lower floor, before these lists) never
leave the product as they were stored.

Two lists of ImageNet classes are never stated, whatever their probability:

* :data:`SENSITIVE`: body parts, underwear, swimwear and nappies. A wrong one on a
  child's sandal or a perfume bottle ("nipple": the ImageNet class is a feeding
  bottle's teat) is offensive, and a right one adds nothing a search needs that the
  catalogue does not say better. Catalogue values and a person's own tags are theirs
  and are kept ("Bra" as an article type is the shop's own word).
* :data:`MISLEADING`: weapons and instruments of force or execution. ImageNet has no
  shirt, vest or handbag classes, so plain garments land on "bulletproof vest" and
  dark gear on "assault rifle" or "gasmask"; in a product or photo library such a
  claim is wrong far more often than right (measured: bench/eval_labels.py lists
  the classes stated on the dev sets and how often they were right) and costly
  when wrong.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from searchengine.text import article, join_words

#: A label is stated only at or above this probability: the lowest floor with precision >= 0.8
#: on fashion_products_3k (0.84; 0.955 on coco_mini; bench/eval_labels.py). Above 0.5: one label at most.
LABEL_FLOOR = 0.75

#: ImageNet classes (every synonym, lower case) about bodies and intimate clothing.
SENSITIVE = frozenset(
    {
        "nipple",
        "brassiere",
        "bra",
        "bandeau",
        "diaper",
        "nappy",
        "napkin",  # a synonym of "diaper" in the ImageNet class
        "bikini",
        "two-piece",
        "maillot",
        "tank suit",
        "swimming trunks",
        "bathing trunks",
        "miniskirt",
        "mini",
    }
)

#: ImageNet classes that mislead in a product or photo library (weapons, force, execution).
MISLEADING = frozenset(
    {
        "bulletproof vest",
        "assault rifle",
        "assault gun",
        "rifle",
        "revolver",
        "six-gun",
        "six-shooter",
        "cannon",
        "missile",
        "projectile",
        "tank",
        "army tank",
        "armored combat vehicle",
        "armoured combat vehicle",
        "guillotine",
        "gasmask",
        "respirator",
        "gas helmet",
        "muzzle",
        "prison",
        "prison house",
        "holster",
    }
)

NEVER_STATE = SENSITIVE | MISLEADING

#: ImageNet splits some kinds into many classes (118 dog breeds): when no single class reaches
#: the floor but classes of one kind among the top 3 do together, the kind is stated ("a cat"
#: for Egyptian cat 0.36 + tiger cat 0.34 + tabby 0.18). Index ranges of the 1000 classes.
KINDS: dict[str, tuple[tuple[int, int], ...]] = {
    "dog": ((151, 268),),
    "cat": ((281, 285),),
    "bird": ((7, 24), (80, 100), (127, 146)),
    "bear": ((294, 297),),
    "monkey": ((369, 382),),
    "snake": ((52, 68),),
    "lizard": ((38, 48),),
    "turtle": ((33, 37),),
    "spider": ((72, 77),),
    "butterfly": ((321, 326),),
    "shark": ((2, 4),),
}


def kind_of_class(index: int) -> str | None:
    """The kind (see :data:`KINDS`) ImageNet class ``index`` belongs to, or None."""
    for kind, ranges in KINDS.items():
        if any(a <= index <= b for a, b in ranges):
            return kind
    return None


def top_labels(top: Sequence[tuple[int, str, float]], floor: float = LABEL_FLOOR) -> list[tuple[str, float]]:
    """What a caption states from the classifier's top classes ``(index, name, probability)``:
    class names whose probability (summed over classes sharing the name) reaches ``floor``;
    else kinds whose classes reach it together; never a class of :data:`NEVER_STATE`."""
    names: dict[str, float] = {}
    kinds: dict[str, float] = {}
    for index, name, p in top:
        names[name] = names.get(name, 0.0) + float(p)
        kind = kind_of_class(index)
        if kind:
            kinds[kind] = kinds.get(kind, 0.0) + float(p)
    stated = [(n, p) for n, p in names.items() if p >= floor and stateable(n)]
    if not stated:
        stated = [(k, p) for k, p in kinds.items() if p >= floor]
    return sorted(stated, key=lambda kv: -kv[1])


#: The words of those classes that mean nothing else, for prose captioners' sentences and tags
#: ("tank", "napkin", "mini", "muzzle" have innocent senses and are left to them).
PROSE_WORDS = (
    "nipple",
    "brassiere",
    "bra",
    "diaper",
    "nappy",
    "bikini",
    "maillot",
    "swimming trunks",
    "bathing trunks",
    "miniskirt",
    "bulletproof vest",
    "assault rifle",
    "guillotine",
)
_NEVER_WORDS = re.compile(r"\b(" + "|".join(re.escape(w) for w in PROSE_WORDS) + r")s?\b", re.IGNORECASE)


def stateable(label: str) -> bool:
    """Whether the product may state ``label`` (an ImageNet class name) at all."""
    return label.strip().lower() not in NEVER_STATE


def mentions_never_stated(text: str) -> bool:
    """Whether ``text`` names one of :data:`PROSE_WORDS` (as a word or phrase, or its plural)."""
    return bool(_NEVER_WORDS.search(text or ""))


def stated_labels(
    labels: Iterable[tuple[str, float | None]], floor: float = LABEL_FLOOR
) -> list[tuple[str, float]]:
    """The labels a description may state: stateable, with a known probability >= ``floor``.

    Labels of old captions whose probability was not recorded (``None``) are not stated:
    nobody measured them above the floor.
    """
    return [(n, float(p)) for n, p in labels if p is not None and p >= floor and stateable(n)]


def quote_snippet(text: str, limit: int = 80) -> str:
    """The OCR text as a caption quotes it: one line, at most ``limit`` characters; "" when it
    holds fewer than 3 letters or digits (a stray "O" or "8" is not text worth quoting)."""
    snippet = " ".join((text or "").split())
    if sum(ch.isalnum() for ch in snippet) < 3:
        return ""
    if len(snippet) > limit:
        snippet = snippet[: limit - 3].rsplit(" ", 1)[0] + "..."
    return snippet


def sentence(labels: Sequence[tuple[str, float | None]], colours: Sequence[str], quoted: str) -> str:
    """The caption stating ``labels`` (already filtered), ``colours`` and ``quoted`` text plainly.

    ``A sandal with the text "KIDS"; mostly white.`` -- no "looks like": only labels above a
    floor measured to be precise reach this sentence, and they are said as facts. Two labels
    (only when the floor is below 0.5) are joined with "or". "An image" when there is nothing
    but colours.
    """
    parts = []
    if labels:
        parts.append(join_words([f"{article(n)} {n}" for n, _ in labels], "or"))
    if quoted:
        parts.append(f'{"with the" if parts else "The"} text "{quoted}"')
    text = " ".join(parts) if parts else "An image"
    text = text[:1].upper() + text[1:]
    if colours:
        text += f"; mostly {join_words(list(colours))}"
    return text + "."


def caption_tags(labels: Sequence[tuple[str, float | None]], colours: Sequence[str], quoted: str) -> tuple:
    """The keyword tags of a caption stating ``labels``, ``colours`` and ``quoted`` text."""
    tags = [n.lower() for n, _ in labels] + list(colours) + (["text"] if quoted else [])
    return tuple(dict.fromkeys(tags))


def honest_caption(text: str | None, tags: Sequence[str], parts) -> tuple[str | None, tuple[str, ...]]:
    """A stored caption and its tags as the product may show them.

    Captions composed from parts (the offline captioner, any version) are rebuilt from
    their parts with today's floor and lists; prose captions (BLIP) keep their sentence
    unless it names a never-stated class (then None), and lose such tags.
    """
    if text is None:
        return None, tuple(tags)
    if parts is not None:
        labels = stated_labels(parts.labels)
        return sentence(labels, parts.colours, parts.quoted), caption_tags(
            labels, parts.colours, parts.quoted
        )
    clean_tags = tuple(t for t in tags if not mentions_never_stated(t))
    return (None if mentions_never_stated(text) else text), clean_tags
