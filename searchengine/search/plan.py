"""The search plan: how deep each leg looks, what the vector leg must reach, how the legs weigh.

Pure functions of the query and of what the legs found, so every rule is one row of a
table test (``tests/searchengine/test_plan.py``). The rules, in words:

* Keyword hits count by the share of the query's terms they hold, squared, and a hit
  holding every term counts ``FULL_MATCH_BOOST`` times a partial one of the same share
  (:func:`keyword_confidence`; a name, a code or an invoice line found whole is the
  strongest evidence either leg can give).
* A query holding a code-like word (SKU, invoice number, date) weighs the keyword leg
  ``CODE_BOOST`` times: exact codes are what that leg is for.
* In hybrid mode, per query:

  - some keyword hit holds at least ``STRONG_COVERAGE`` of the terms while no image
    looks like the text (:mod:`.cutoff`): the words decide, the
    vector leg weighs ``WEAK_VECTOR_WEIGHT``;
  - otherwise, when no keyword hit is that strong and the query is a sentence
    describing a scene: meaning leads, the keyword leg weighs ``WEAK_KEYWORD_WEIGHT``;
  - no image looks like the text and no keyword hit holds ``WORDS_ALONE`` of its terms
    (and it names no code): nothing is found (:func:`words_suffice`);
  - otherwise, when no keyword hit is that strong and the query is a catalogue-style
    phrase of names and attributes: its words count for more than a label bridge can
    tell, the vector leg weighs ``CATALOGUE_VECTOR_WEIGHT``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Vector-leg weight when no image looks like the query (:mod:`.cutoff`).
WEAK_VECTOR_WEIGHT = 0.2
#: Vector-leg weight for catalogue-style phrases that no image's text holds whole.
CATALOGUE_VECTOR_WEIGHT = 0.5
#: A keyword hit holding this share of the query's terms is strong evidence.
STRONG_COVERAGE = 0.75
#: When no image looks like the query, keyword hits count only if one holds this share of
#: its terms (or the query names a code): one word of a sentence is not evidence.
WORDS_ALONE = 0.5
#: Keyword-leg weight when no hit is strong evidence and the query is a sentence.
WEAK_KEYWORD_WEIGHT = 0.3
#: How much more a keyword hit holding every query term counts than a partial one.
FULL_MATCH_BOOST = 3.0
#: Keyword-leg weight multiplier when the query holds a code.
CODE_BOOST = 3.0
#: Results fetched per leg come in blocks of this many (the same depth for every page in a block).
DEPTH_BLOCK = 100

#: A word with letters and digits (QX-7781-B, INV2018, X2) or digit groups (25/12/2018).
_CODE = re.compile(r"^(?=[^\s]*\d)(?=[^\s]*[^\W\d_])[\w./#-]{2,}$|^\d+([-/.]\d+)+$")


def has_code(text: str) -> bool:
    """Tell whether a query holds a code-like word (SKU, invoice number, date)."""
    return any(_CODE.match(w.strip("\"'.,;:()")) for w in text.split())


def depth(offset: int, limit: int) -> int:
    """How many results each leg fetches for a page: whole blocks, so that every page
    within a block is cut from the same ranking."""
    return DEPTH_BLOCK * (1 + (offset + limit - 1) // DEPTH_BLOCK)


def words_suffice(best_share: float, has_code: bool) -> bool:
    """Tell whether keyword hits stand on their own when no image looks like the query:
    the best holds :data:`WORDS_ALONE` of the query's terms, or the query names a code."""
    return has_code or best_share >= WORDS_ALONE


def keyword_confidence(share: float) -> float:
    """A keyword hit's confidence in [0, 1] from the share of the query's terms it holds:
    1 for every term, ``share**2 / FULL_MATCH_BOOST`` otherwise (the leg's weight carries
    ``FULL_MATCH_BOOST``, see :func:`leg_weights`). Weight times confidence is the former
    ``share**2``, times the boost for a full match, up to floating-point rounding."""
    return 1.0 if share >= 1.0 else share * share / FULL_MATCH_BOOST


@dataclass(frozen=True, slots=True)
class Signals:
    """What the weight policy looks at.

    :param mode: hybrid, vector or keyword.
    :param has_text: the query has text (else it is an image query or a listing).
    :param has_code: the text holds a code-like word.
    :param descriptive: the text reads as a sentence (function words), not a catalogue phrase.
    :param vector_strong: an image query, or a text query some image looks like (:mod:`.cutoff`).
    :param keyword_strong: a keyword hit holding at least ``STRONG_COVERAGE`` of the terms.
    """

    mode: str
    has_text: bool
    has_code: bool = False
    descriptive: bool = False
    vector_strong: bool = False
    keyword_strong: bool = False


@dataclass(frozen=True, slots=True)
class LegWeights:
    """Each leg's weight for fusion, and the name of the rule that set them (for tests and studies)."""

    vector: float
    keyword: float
    rule: str

    def as_dict(self) -> dict[str, float]:
        return {"vector": self.vector, "keyword": self.keyword}


def leg_weights(s: Signals, vector: float = 1.0, keyword: float = 1.0) -> LegWeights:
    """Scale the user's leg weights (``vector``, ``keyword``) by the rules of this module."""
    keyword *= FULL_MATCH_BOOST  # keyword confidences are normalised to a full match
    if s.has_code:
        keyword *= CODE_BOOST
    rule = "code" if s.has_code else "plain"
    if s.mode != "hybrid" or not s.has_text:
        return LegWeights(vector, keyword, rule)
    if s.keyword_strong and not s.vector_strong:
        return LegWeights(vector * WEAK_VECTOR_WEIGHT, keyword, "words decide")
    if s.keyword_strong:
        return LegWeights(vector, keyword, rule)
    if s.descriptive:
        return LegWeights(vector, keyword * WEAK_KEYWORD_WEIGHT, "meaning leads")
    return LegWeights(vector * CATALOGUE_VECTOR_WEIGHT, keyword, "catalogue phrase")
