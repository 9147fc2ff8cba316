"""Why a hit matched, in plain words: which query words it holds in which field, what it looks like.

``matches 'laptop' in the title``, ``tagged 'summer'``, ``matches 'total' in the text read
from the image``, ``looks like: a backpack``. Pure functions over a hit's text fields
(:class:`HitText`, loaded for a whole page by :mod:`.hydrate`); no scores, no ranks: those
stay in the hit's ``legs`` (``--explain``).

Words match as the keyword leg matches them (:mod:`searchengine.store.fts`): letters and
digits split apart, case and accents folded, the FTS5 ``unicode61`` word boundaries, a
term's words in a row; no stemming (``laptops`` does not match ``laptop`` in either).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from searchengine.query import ParsedQuery, Term
from searchengine.text import WORD, article, fold, join_words, split_letters_digits

#: The most reasons one hit gets.
MOST = 3


@dataclass(frozen=True, slots=True)
class HitText:
    """What the keyword index holds of one hit, field by field, and the labels its caption states.

    :param metadata: catalogue fields other than the title (key -> value).
    :param caption_tags: the captioner's keywords (user tags are ``user_tags``).
    :param labels: what the caption states the image shows (``searchengine.labels.stated_labels``).
    """

    name: str = ""
    folder: str = ""
    title: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    user_tags: tuple[str, ...] = ()
    caption: str | None = None
    caption_tags: tuple[str, ...] = ()
    ocr: str | None = None
    labels: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Asked:
    """What a search asked, for explaining its hits: the parsed text query (None: none), whether
    an image was the query, whether words were searched (not ``--mode vector``), and which legs
    found each hit (id -> leg names)."""

    query: ParsedQuery | None
    by_image: bool = False
    words: bool = True
    found: dict[int, Collection[str]] = field(default_factory=dict)


def words_of(text: str | None) -> str:
    """``text`` as the keyword index's words, space separated and padded: `` cs 00082662 cafe ``."""
    text = text or ""
    words = WORD.findall(text.lower() if text.isascii() else fold(text))
    # letters and digits apart (split_letters_digits), word by word: most words are not mixed
    return f" {' '.join(w if w.isalpha() or w.isdigit() else split_letters_digits(w) for w in words)} "


def phrase_of(term: Term) -> str:
    """The term's words as :func:`words_of` writes them, padded: `` summer sale ``."""
    return f" {fold(' '.join(term.tokens))} "


def holds(term: Term, text: str | None) -> bool:
    """Whether ``text`` holds the term's words in a row, as an FTS5 phrase query would find them."""
    return phrase_of(term) in words_of(text)


def searched_terms(query: ParsedQuery) -> list[Term]:
    """The terms the keyword leg searches for: positive content words (lone stopwords only
    when nothing else is left), as :meth:`ParsedQuery.fts_match` and the coverage do."""
    return [t for t in query.positive if t.content] or query.positive


def _fields(text: HitText) -> list[tuple[str | None, Sequence[str]]]:
    """``(where, values)`` of a hit, in the order a term is attributed to them (None: user tags)."""
    meta = [(f"the {k.replace('_', ' ')}", [v]) for k, v in sorted(text.metadata.items())]
    return [
        ("the title", [text.title or ""]),
        (None, text.user_tags),
        *meta,
        ("the file name", [text.name]),
        ("the description", [text.caption or ""]),
        ("the automatic tags", text.caption_tags),
        ("the text read from the image", [text.ocr or ""]),
        ("the folder name", [text.folder]),
    ]


def word_reasons(query: ParsedQuery, text: HitText) -> list[str]:
    """Which searched terms the hit holds, each in the first field that holds it, one reason
    per field, the field holding most terms first: ``matches 'red' and 'dress' in the title``."""
    fields = [(where, [(v, words_of(v)) for v in values if v]) for where, values in _fields(text)]
    by_field: dict[str, list[str]] = {}
    tagged: list[str] = []
    for term in searched_terms(query):
        phrase = phrase_of(term)
        for where, values in fields:
            hit = next((v for v, words in values if phrase in words), None)
            if hit is None:
                continue
            if where is None:
                tagged += [] if hit in tagged else [hit]
            else:
                by_field.setdefault(where, []).append(f"'{term.text}'")
            break
    order = {where: n for n, (where, _) in enumerate(fields)}
    found = sorted(by_field.items(), key=lambda kv: (-len(kv[1]), order[kv[0]]))
    out = [f"matches {join_words(terms)} in {where}" for where, terms in found]
    if tagged:
        out.insert(0, "tagged " + join_words([f"'{t}'" for t in tagged]))
    return out


def look_reasons(query: ParsedQuery | None, text: HitText, by_image: bool) -> list[str]:
    """What a hit the vector leg found looks like: the labels its caption states, else that
    it looks like the text query, or that it is a similar image."""
    out = ["similar image"] if by_image else []
    if text.labels:
        out.append("looks like: " + join_words([f"{article(n)} {n}" for n in text.labels], "or"))
    elif query is not None and not by_image:
        out.append("looks like the query")
    return out or ["similar image"]


def reasons(asked: Asked, image_id: int, text: HitText) -> tuple[str, ...]:
    """At most :data:`MOST` plain reasons why ``image_id`` matched: the words it holds, then
    what it looks like when the vector leg found it; none for a listing (no query)."""
    legs = asked.found.get(image_id, ())
    if asked.query is None and not asked.by_image:
        return ()
    look = look_reasons(asked.query, text, asked.by_image) if "vector" in legs else []
    words = word_reasons(asked.query, text) if asked.query is not None and asked.words else []
    if "keyword" in legs and not words:
        words = ["matches the query's words"]  # a field this module does not read (cannot happen today)
    keep = max(MOST - len(look[:1]), 1)
    return tuple((words[:keep] + look)[:MOST])
