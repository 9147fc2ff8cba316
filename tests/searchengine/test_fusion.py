import pytest

from searchengine.search.fusion import rrf, weighted


def test_rrf_scores_and_explains():
    fused = rrf({"vector": [(1, 0.9), (2, 0.8)], "keyword": [(2, 7.0), (3, 5.0)]}, k=60)
    assert [f.id for f in fused] == [2, 1, 3]
    assert fused[0].score == pytest.approx(1 / 62 + 1 / 61)
    assert fused[0].legs["vector"].rank == 2 and fused[0].legs["keyword"].score == 7.0
    assert set(fused[1].legs) == {"vector"}


def test_rrf_weights_and_stable_ties():
    legs = {"vector": [(5, 0.9)], "keyword": [(4, 3.0)]}
    assert [f.id for f in rrf(legs)] == [4, 5]  # equal scores: lower id first, every time
    assert [f.id for f in rrf(legs, {"vector": 2.0})] == [5, 4]
    with pytest.raises(ValueError):
        rrf(legs, k=0)


def test_weighted_normalises_each_leg():
    fused = weighted({"vector": [(1, 0.5), (2, 0.3)], "keyword": [(2, 10.0), (3, 2.0)]})
    scores = {f.id: f.score for f in fused}
    assert scores == {1: 1.0, 2: pytest.approx(1.0), 3: 0.0}
    fused = weighted({"vector": [(1, 0.5), (2, 0.3)], "keyword": [(2, 10.0)]}, {"keyword": 3.0})
    assert fused[0].id == 2 and fused[0].score == pytest.approx(3.0)


def test_confidence_scales_a_legs_contribution():
    legs = {"vector": [(1, 0.9), (2, 0.8)], "keyword": [(2, 5.0)]}
    assert [f.id for f in rrf(legs)] == [2, 1]
    weak = rrf(legs, confidence={"keyword": {2: 0.01}})
    assert [f.id for f in weak] == [1, 2]
    assert weak[1].score == pytest.approx(1 / 62 + 0.01 / 61)
    assert [f.id for f in weighted(legs, confidence={"keyword": {2: 0.0}})] == [1, 2]
