"""The search plan's rules, one table row each (searchengine/search/plan.py)."""

from __future__ import annotations

import pytest

from searchengine.search.plan import (
    CATALOGUE_VECTOR_WEIGHT,
    VECTOR_FLOOR,
    WEAK_VECTOR_WEIGHT,
    Signals,
    depth,
    has_code,
    keyword_confidence,
    leg_weights,
    vector_confidence,
    words_suffice,
)


@pytest.mark.parametrize(
    ("signals", "vector", "keyword", "rule"),
    [
        (Signals("hybrid", has_text=True), 1.0, 1.0, "plain"),
        (Signals("hybrid", has_text=True, keyword_strong=True), WEAK_VECTOR_WEIGHT, 1.0, "words decide"),
        (
            Signals("hybrid", True, keyword_strong=True, descriptive=False),
            WEAK_VECTOR_WEIGHT,
            1.0,
            "words decide",
        ),
        (
            Signals("hybrid", has_text=True, descriptive=False),
            CATALOGUE_VECTOR_WEIGHT,
            1.0,
            "catalogue phrase",
        ),
        (Signals("vector", has_text=True, descriptive=False), 1.0, 1.0, "plain"),
        (Signals("keyword", has_text=True, keyword_strong=True), 1.0, 1.0, "plain"),
        (Signals("vector", has_text=True, keyword_strong=True), 1.0, 1.0, "plain"),
        (Signals("hybrid", has_text=False), 1.0, 1.0, "plain"),  # an image query
    ],
)
def test_leg_weights_rules(signals, vector, keyword, rule):
    w = leg_weights(signals)
    assert (w.vector, w.keyword, w.rule) == (pytest.approx(vector), pytest.approx(keyword), rule)


def test_leg_weights_scale_the_users_weights():
    w = leg_weights(Signals("hybrid", has_text=True, keyword_strong=True), vector=2.0, keyword=0.5)
    assert w.vector == pytest.approx(2.0 * WEAK_VECTOR_WEIGHT) and w.keyword == pytest.approx(0.5)


@pytest.mark.parametrize(("share", "expected"), [(1.0, 1.0), (0.5, 0.25), (0.75, 0.5625), (0.0, 0.0)])
def test_keyword_confidence_is_the_squared_share(share, expected):
    assert keyword_confidence(share) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("share", "expected"), [(1.0, 1.0), (1.0000001, 1.0), (0.3, 0.3), (0.0, VECTOR_FLOOR)]
)
def test_vector_confidence_is_the_share_between_a_floor_and_one(share, expected):
    assert vector_confidence(share) == pytest.approx(expected, abs=1e-9)
    assert VECTOR_FLOOR < keyword_confidence(1 / 31)


@pytest.mark.parametrize(
    ("offset", "limit", "expected"),
    [(0, 10, 100), (90, 10, 100), (95, 10, 200), (0, 200, 200), (100, 1, 200)],
)
def test_depth_in_whole_blocks(offset, limit, expected):
    assert depth(offset, limit) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("QX-7781-B", True),
        ("invoice 25/12/2018", True),
        ("INV2018", True),
        ("a red dress", False),
        ("2 dogs", False),
    ],
)
def test_has_code(text, expected):
    assert has_code(text) is expected


@pytest.mark.parametrize(
    ("best_share", "has_code", "expected"),
    [(0.0, False, False), (0.25, False, False), (0.5, False, True), (1.0, False, True), (0.0, True, True)],
)
def test_words_suffice_when_nothing_looks_like_the_query(best_share, has_code, expected):
    assert words_suffice(best_share, has_code) is expected
