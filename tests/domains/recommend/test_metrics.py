import math

import pytest

from lucid.domains.recommend.metrics import (
    average_precision_at_k,
    catalogue_coverage,
    hit_at_k,
    ndcg_at_k,
    novelty,
    precision_at_k,
    ranking_metrics,
    recall_at_k,
)

RANKED = ["a", "b", "c", "d"]
RELEVANT = {"b", "d", "e"}


def test_precision_recall_hit_by_hand():
    assert precision_at_k(RANKED, RELEVANT, 4) == pytest.approx(2 / 4)
    assert precision_at_k(RANKED, RELEVANT, 2) == pytest.approx(1 / 2)
    assert recall_at_k(RANKED, RELEVANT, 4) == pytest.approx(2 / 3)
    assert recall_at_k(RANKED, RELEVANT, 1) == 0.0
    assert hit_at_k(RANKED, RELEVANT, 1) == 0.0
    assert hit_at_k(RANKED, RELEVANT, 2) == 1.0


def test_ndcg_by_hand():
    dcg = 1 / math.log2(3) + 1 / math.log2(5)  # hits at positions 2 and 4
    ideal = 1 + 1 / math.log2(3) + 1 / math.log2(4)  # three relevant items, k = 4
    assert ndcg_at_k(RANKED, RELEVANT, 4) == pytest.approx(dcg / ideal)
    assert ndcg_at_k(["b", "d", "e"], RELEVANT, 3) == pytest.approx(1.0)
    assert ndcg_at_k(["x"], set(), 3) == 0.0


def test_average_precision_by_hand():
    # hits at 2 (precision 1/2) and 4 (precision 2/4), divided by min(3, 4)
    assert average_precision_at_k(RANKED, RELEVANT, 4) == pytest.approx((0.5 + 0.5) / 3)
    assert average_precision_at_k(["b", "d", "e"], RELEVANT, 3) == pytest.approx(1.0)


def test_coverage_and_novelty_by_hand():
    recs = {"u1": ["a", "b"], "u2": ["b", "c"]}
    assert catalogue_coverage(recs, 4, 2) == pytest.approx(3 / 4)
    assert catalogue_coverage(recs, 4, 1) == pytest.approx(2 / 4)
    # p(a) = (3 + 1) / 4 = 1 -> 0 bits; p(b) = (1 + 1) / 4 -> 1 bit
    assert novelty({"u": ["a", "b"]}, {"a": 3, "b": 1}, 3, 2) == pytest.approx(0.5)


def test_ranking_metrics_averages_only_users_with_relevant_items():
    recs = {"u1": ["a", "b"], "u2": ["c", "d"], "u3": ["a", "c"]}
    relevant = {"u1": {"a"}, "u2": {"x"}, "u3": set()}
    out = ranking_metrics(recs, relevant, k=2, n_items=5, item_users={"a": 1}, n_users=3)
    assert out["users"] == 2
    assert out["precision@2"] == pytest.approx((0.5 + 0.0) / 2)
    assert out["hit_rate@2"] == pytest.approx(0.5)
    assert out["ndcg@2"] == pytest.approx(0.5)
    assert out["coverage@2"] == pytest.approx(4 / 5)
    assert "novelty@2" in out and out["novelty@2"] > 0
