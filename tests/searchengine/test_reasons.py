"""Plain-word reasons for a hit (searchengine.search.reasons): field attribution, matching as
the keyword index matches, what a hit looks like, and no raw figures."""

from __future__ import annotations

import re
import sqlite3

import pytest

from searchengine.query import parse_query
from searchengine.search.reasons import MOST, Asked, HitText, holds, reasons, word_reasons
from searchengine.store.schema import SCHEMA_0003
from searchengine.text import split_letters_digits

PRODUCT = HitText(
    name="IMG_0042.jpg",
    folder="photos/summer",
    title="Wildcraft Grey Laptop Backpack",
    metadata={"base_colour": "Grey", "article_type": "Backpacks"},
    user_tags=("travel", "Sommer Ausflug"),
    caption="A backpack; mostly grey and black.",
    caption_tags=("backpack", "grey", "black"),
    ocr="WILDCRAFT TOTAL 1299",
    labels=("backpack",),
)


def why(query: str | None, text: HitText = PRODUCT, legs=("keyword",), by_image=False, words=True):
    asked = Asked(parse_query(query) if query else None, by_image, words, {1: set(legs)})
    return reasons(asked, 1, text)


def test_each_word_is_attributed_to_the_first_field_that_holds_it():
    assert why("laptop") == ("matches 'laptop' in the title",)
    assert why("total") == ("matches 'total' in the text read from the image",)
    assert why("travel") == ("tagged 'travel'",)
    assert why("ausflug") == ("tagged 'Sommer Ausflug'",)
    assert why("backpacks") == ("matches 'backpacks' in the article type",)
    assert why("img") == ("matches 'img' in the file name",)
    assert why("summer") == ("matches 'summer' in the folder name",)
    # "grey" is in the title, the colour field and the caption: the title says it first
    assert why("grey") == ("matches 'grey' in the title",)
    assert why("black") == ("matches 'black' in the description",)


def test_the_field_holding_most_words_comes_first_and_words_are_grouped():
    assert why("black laptop grey 1299") == (
        "matches 'laptop' and 'grey' in the title",
        "matches 'black' in the description",
        "matches '1299' in the text read from the image",
    )


def test_stopwords_negatives_and_unmatched_words_give_no_reason():
    assert why("the laptop with wheels -grey") == ("matches 'laptop' in the title",)
    # a query of stopwords only searches them (as the keyword leg does)
    assert why("a", HitText(caption="A cat")) == ("matches 'a' in the description",)


def test_phrases_match_whole_and_are_quoted_as_typed():
    assert why('"laptop backpack"') == ("matches 'laptop backpack' in the title",)
    assert why('"backpack laptop"', legs=()) == ()


def test_codes_and_accents_match_however_typed():
    text = HitText(ocr="Invoice CS00082662 at Café Rouge", title="INV-2018")
    assert why("cs-00082662", text) == ("matches 'cs-00082662' in the text read from the image",)
    assert why("cafe", text) == ("matches 'cafe' in the text read from the image",)
    assert why("inv2018", text) == ("matches 'inv2018' in the title",)


# (term, text): whether the keyword index finds the term in the text, asked of SQLite itself
CASES = [
    ("laptop", "Laptop Backpack"),
    ("laptops", "Laptop Backpack"),  # no stemming, in the index or here
    ("laptop", "Laptops"),
    ("cafe", "CAFÉ crème"),
    ("creme", "café Crème"),
    ("CS00082662", "cs 00082662"),
    ("cs00082662", "CS-00082662"),
    ("qx-7781-b", "QX7781B"),
    ("t_shirt", "T Shirt"),
    ("tshirt", "T-Shirt"),
    ('"summer sale"', "SUMMER SALE today"),
    ('"summer sale"', "sale summer"),
    ("25/12/2018", "dated 25.12.2018"),
    ("ausflug", "Sommer-Ausflug"),
    ("straße", "STRASSE"),
    ("über", "uber"),
]


@pytest.mark.parametrize(("query", "text"), CASES)
def test_matching_agrees_with_the_keyword_index(query, text):
    conn = sqlite3.connect(":memory:")
    create = next(s for s in SCHEMA_0003.split(";") if "CREATE VIRTUAL TABLE search_fts" in s)
    conn.execute(create)
    conn.execute("INSERT INTO search_fts(rowid, caption) VALUES (1, ?)", [split_letters_digits(text)])
    (term,) = parse_query(query).terms
    found = conn.execute("SELECT count(*) FROM search_fts WHERE search_fts MATCH ?", [term.fts]).fetchone()[0]
    assert holds(term, text) == bool(found)


def test_what_a_vector_hit_looks_like():
    assert why("bag for school", legs={"vector"}, words=False) == ("looks like: a backpack",)
    two = HitText(labels=("umbrella", "parasol"))
    assert why("rain", two, legs={"vector"}) == ("looks like: an umbrella or a parasol",)
    assert why("rain", HitText(), legs={"vector"}) == ("looks like the query",)
    assert why(None, HitText(), legs={"vector"}, by_image=True) == ("similar image",)
    assert why(None, legs={"vector"}, by_image=True) == ("similar image", "looks like: a backpack")
    # words first, then what it looks like; at most three
    both = why("black laptop grey 1299", legs={"vector", "keyword"})
    assert len(both) == MOST and both[-1] == "looks like: a backpack"
    assert both[0] == "matches 'laptop' and 'grey' in the title"


def test_vector_mode_and_listings():
    assert why("laptop", legs={"vector"}, words=False) == ("looks like: a backpack",)
    assert why(None, legs=()) == ()  # a filtered listing: nothing was asked
    # the keyword leg found it in a field not read here: still one honest reason
    assert why("zebra", HitText(), legs={"keyword"}) == ("matches the query's words",)


def test_reasons_carry_no_raw_figures():
    queries = ["laptop", "grey 2:backpack -black", '"laptop backpack" total', "a bag", "travel summer"]
    out = [r for q in queries for r in why(q, legs={"vector", "keyword"})]
    out += why(None, legs={"vector"}, by_image=True)
    assert out
    for r in out:
        assert not re.search(r"\d\.\d|#\d|cosine|bm25|score|rank", r, re.IGNORECASE), r


def test_word_reasons_order_is_stable_for_ties():
    # one word each in the title and the description: field order decides
    assert word_reasons(parse_query("black laptop"), PRODUCT) == [
        "matches 'laptop' in the title",
        "matches 'black' in the description",
    ]
