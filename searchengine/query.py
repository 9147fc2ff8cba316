"""Query operators: quoted phrases, ``-term`` exclusion, ``W:term`` weights.

``"summer sale" poster -winter 2:red`` means: images must contain the phrase
*summer sale*; *poster* and *red* add to the ranking, *red* counting double;
images with *winter* are pushed down (the keyword leg excludes them, the vector
leg subtracts the word's embedding).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from searchengine.errors import BadQuery
from searchengine.text import STOPWORDS, WORD, split_letters_digits

_PART = re.compile(
    r'(?P<neg>-(?=\S))?(?:(?P<w>\d+(?:\.\d+)?):(?="|[^\W\d_]))?(?:"(?P<phrase>[^"]*)"?|(?P<word>\S+))'
)
#: How much of a negative term's embedding is subtracted from the query vector.
NEGATIVE_STRENGTH = 0.5


@dataclass(frozen=True, slots=True)
class Term:
    """One query part: its keyword tokens, its text for the encoder, and its operators."""

    text: str
    tokens: tuple[str, ...]
    weight: float = 1.0
    negative: bool = False
    phrase: bool = False

    @property
    def fts(self) -> str:
        return '"' + " ".join(self.tokens) + '"'

    @property
    def content(self) -> bool:
        """False for a lone stopword ("a", "the", "photo"), which matches everything."""
        return self.phrase or len(self.tokens) > 1 or self.tokens[0].lower() not in STOPWORDS


@dataclass(frozen=True, slots=True)
class ParsedQuery:
    """A query split into terms; builds the FTS5 expression and the encoder's text."""

    raw: str
    terms: tuple[Term, ...]

    @property
    def positive(self) -> list[Term]:
        return [t for t in self.terms if not t.negative]

    @property
    def negative(self) -> list[Term]:
        return [t for t in self.terms if t.negative]

    @property
    def required(self) -> list[Term]:
        """Quoted phrases: every result must contain them."""
        return [t for t in self.positive if t.phrase]

    @property
    def descriptive(self) -> bool:
        """True for a sentence ("a dog runs on the beach"), False for a catalogue-style
        phrase of names and codes ("Nike Blue Cricket Jersey"): judged by its function words."""
        plain = [t for t in self.positive if not t.phrase]
        function = sum(1 for t in plain if not t.content)
        return function >= 2 or (bool(plain) and function / len(plain) >= 0.3)

    @property
    def semantic_text(self) -> str:
        """What the encoder reads: the positive terms without operators."""
        return " ".join(t.text for t in self.positive)

    def fts_match(self) -> str | None:
        """Return the FTS5 expression (None when no word can be searched).

        Optional words are OR'ed and ranked by BM25 (a weight repeats the word);
        lone stopwords are dropped unless nothing else is left.
        """
        optional = [t for t in self.positive if t.content] or self.positive
        if not optional:
            return None
        ors = []
        for t in optional:
            ors += [t.fts] * min(5, max(1, round(t.weight)))
        expr = "(" + " OR ".join(ors) + ")"
        if self.required:
            expr = "(" + " AND ".join(t.fts for t in self.required) + ") AND " + expr
        if self.negative:
            expr += " NOT (" + " OR ".join(t.fts for t in self.negative) + ")"
        return expr

    def required_match(self) -> str | None:
        """Return the FTS5 expression that every result must satisfy, if any."""
        if not self.required and not self.negative:
            return None
        expr = " AND ".join(t.fts for t in self.required) if self.required else None
        if self.negative and expr:
            expr += " NOT (" + " OR ".join(t.fts for t in self.negative) + ")"
        return expr


def parse_query(text: str) -> ParsedQuery:
    """Split ``text`` into terms; FTS5 syntax in it has no effect.

    :raises BadQuery: nothing searchable, or a weight that is not positive.
    """
    terms = []
    for m in _PART.finditer(text or ""):
        body = m.group("phrase") if m.group("phrase") is not None else m.group("word")
        tokens = tuple(WORD.findall(split_letters_digits(body or "")))
        if not tokens:
            continue
        weight = float(m.group("w")) if m.group("w") else 1.0
        if weight <= 0:
            raise BadQuery(f"a term weight must be positive: {m.group(0)!r}")
        clean = " ".join(body.split()).strip("\"'")
        terms.append(Term(clean, tokens, weight, bool(m.group("neg")), m.group("phrase") is not None))
    query = ParsedQuery(text, tuple(terms))
    if not query.positive:
        raise BadQuery("the query has no searchable word")
    return query
