"""The search plan's rules, one table row each (searchengine/search/plan.py)."""

from __future__ import annotations

import pytest

from searchengine.search.plan import (
    CATALOGUE_VECTOR_WEIGHT,
    CODE_BOOST,
    FULL_MATCH_BOOST,
    WEAK_KEYWORD_WEIGHT,
    WEAK_VECTOR_WEIGHT,
    Signals,
    depth,
    has_code,
    keyword_confidence,
    leg_weights,
    words_suffice,
)

F = FULL_MATCH_BOOST


@pytest.mark.parametrize(
    ("signals", "vector", "keyword", "rule"),
    [
        # not hybrid: the user's weights, the keyword leg normalised to a full match
        (Signals("vector", has_text=True), 1.0, F, "plain"),
        (Signals("keyword", has_text=True, keyword_strong=True), 1.0, F, "plain"),
        (Signals("keyword", has_text=True, has_code=True), 1.0, F * CODE_BOOST, "code"),
        # an image query (no text) in hybrid mode: no text rule applies
        (Signals("hybrid", has_text=False, vector_strong=True), 1.0, F, "plain"),
        # words decide: a strong keyword hit, no strong vector hit
        (Signals("hybrid", has_text=True, keyword_strong=True), WEAK_VECTOR_WEIGHT, F, "words decide"),
        (
            Signals("hybrid", has_text=True, has_code=True, keyword_strong=True),
            WEAK_VECTOR_WEIGHT,
            F * CODE_BOOST,
            "words decide",
        ),
        # both legs strong: nothing changes
        (Signals("hybrid", has_text=True, keyword_strong=True, vector_strong=True), 1.0, F, "plain"),
        (
            Signals("hybrid", has_text=True, descriptive=True, keyword_strong=True, vector_strong=True),
            1.0,
            F,
            "plain",
        ),
        # meaning leads: a sentence no image's text holds
        (Signals("hybrid", has_text=True, descriptive=True), 1.0, F * WEAK_KEYWORD_WEIGHT, "meaning leads"),
        (
            Signals("hybrid", has_text=True, descriptive=True, vector_strong=True),
            1.0,
            F * WEAK_KEYWORD_WEIGHT,
            "meaning leads",
        ),
        # a catalogue phrase no image's text holds whole
        (Signals("hybrid", has_text=True), CATALOGUE_VECTOR_WEIGHT, F, "catalogue phrase"),
        (
            Signals("hybrid", has_text=True, vector_strong=True),
            CATALOGUE_VECTOR_WEIGHT,
            F,
            "catalogue phrase",
        ),
    ],
)
def test_leg_weights_rules(signals, vector, keyword, rule):
    w = leg_weights(signals)
    assert (w.vector, w.keyword, w.rule) == (pytest.approx(vector), pytest.approx(keyword), rule)


def test_leg_weights_scale_the_users_weights():
    w = leg_weights(Signals("hybrid", has_text=True, keyword_strong=True), vector=2.0, keyword=0.5)
    assert w.vector == pytest.approx(2.0 * WEAK_VECTOR_WEIGHT) and w.keyword == pytest.approx(0.5 * F)


@pytest.mark.parametrize(("share", "expected"), [(1.0, 1.0), (0.5, 0.25 / F), (0.75, 0.5625 / F), (0.0, 0.0)])
def test_keyword_confidence_is_in_unit_range_and_full_match_counts_most(share, expected):
    assert keyword_confidence(share) == pytest.approx(expected)
    assert 0.0 <= keyword_confidence(share) <= 1.0


def test_full_match_counts_boost_times_a_partial_of_equal_squared_share():
    # the old rule: share**2, times FULL_MATCH_BOOST when every term is there
    for share in (0.25, 0.5, 0.75):
        assert keyword_confidence(share) * F == pytest.approx(share**2)
    assert keyword_confidence(1.0) * F == pytest.approx(F)


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
