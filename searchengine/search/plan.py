"""The search plan: how deep each leg looks, when keyword hits stand alone, how the legs weigh.

Pure functions of the query and of what the legs found, so every rule is one row of a
table test (``tests/searchengine/test_plan.py``). The rules, in words:

* Keyword hits count by the share of the query's terms they hold, squared
  (:func:`keyword_confidence`); vector hits by how far they stand out
  (:func:`vector_confidence`): a weak look-alike at rank 2 does not outrank a hit that
  holds the query's words, and the page's relevance figure follows the vector leg's order.
* Words decide: in hybrid mode, when some keyword hit holds at least
  ``STRONG_COVERAGE`` of the query's terms (a name, a title, a code or an invoice line
  found whole), the vector leg weighs ``WEAK_VECTOR_WEIGHT``.
* Otherwise, a catalogue-style phrase of names and attributes ("white t-shirt", no
  function words) weighs the vector leg ``CATALOGUE_VECTOR_WEIGHT``: its words (a
  colour in a caption) say more than an encoder's look-alikes.
* No image looks like the query (:mod:`.cutoff`) and no keyword hit holds
  ``WORDS_ALONE`` of its terms (and it names no code): nothing is found
  (:func:`words_suffice`).

These few rules, and RRF's k (:data:`searchengine.records.DEFAULT_RRF_K`), were chosen leave-one-set-out over
the dev sets from a grid that also held the rules they replaced (a full-match boost, a
code boost, lower keyword weight for sentences): none of those earned its place on the
sets left out (docs/evaluation.md). The catalogue rule ties on the dev sets' R@1 (equal,
or 0.002 better) and is kept for what they do not measure: colour words in captions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Vector-leg weight when the words decide (see the module docstring).
WEAK_VECTOR_WEIGHT = 0.2
#: Vector-leg weight for catalogue-style phrases without a strong keyword hit.
CATALOGUE_VECTOR_WEIGHT = 0.5
#: A keyword hit holding this share of the query's terms is strong evidence.
STRONG_COVERAGE = 0.75
#: When no image looks like the query, keyword hits count only if one holds this share of
#: its terms (or the query names a code): one word of a sentence is not evidence.
WORDS_ALONE = 0.5
#: The least confidence a kept vector hit counts with: below that of a keyword hit holding
#: one of up to 31 terms (1/31 squared), a tie-break by rank rather than evidence.
VECTOR_FLOOR = 0.001
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


def vector_confidence(share: float) -> float:
    """A vector hit's confidence: how far it stands out (its relevance share in [0, 1], see
    the engine), at least :data:`VECTOR_FLOOR` so that hits which do not stand out at all
    still keep their cosine order among themselves."""
    return min(1.0, max(VECTOR_FLOOR, share))


def keyword_confidence(share: float) -> float:
    """A keyword hit's confidence in [0, 1]: the share of the query's terms it holds, squared."""
    return share * share


@dataclass(frozen=True, slots=True)
class Signals:
    """What the weight policy looks at.

    :param mode: hybrid, vector or keyword.
    :param has_text: the query has text (else it is an image query or a listing).
    :param keyword_strong: a keyword hit holding at least ``STRONG_COVERAGE`` of the terms.
    :param descriptive: the text reads as a sentence (function words), not a catalogue phrase.
    """

    mode: str
    has_text: bool
    keyword_strong: bool = False
    descriptive: bool = True


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
    if s.mode != "hybrid" or not s.has_text:
        return LegWeights(vector, keyword, "plain")
    if s.keyword_strong:
        return LegWeights(vector * WEAK_VECTOR_WEIGHT, keyword, "words decide")
    if not s.descriptive:
        return LegWeights(vector * CATALOGUE_VECTOR_WEIGHT, keyword, "catalogue phrase")
    return LegWeights(vector, keyword, "plain")
