"""The quality gate: real comparisons on synthetic held-out data with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, roc_auc_score

from lucid.core.quality import SMALL_TEST_SET, compare_per_item, compare_to_baseline


def _labels(n: int = 400, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2, n)


def test_a_model_that_separates_the_classes_passes_with_a_positive_difference():
    y = _labels()
    rng = np.random.default_rng(1)
    good = y + rng.normal(0, 0.3, len(y))  # informative scores
    noise = rng.normal(0, 1, len(y))  # a baseline that guesses
    gate = compare_to_baseline(
        "ROC AUC", y, good, noise, metric=roc_auc_score, baseline_name="a coin", chance=0.5
    )
    assert gate.model > 0.95 and abs(gate.baseline - 0.5) < 0.1
    assert gate.model_low <= gate.model <= gate.model_high
    assert gate.diff_low > 0.3 and gate.passed and gate.beats_chance
    assert gate.verdict().startswith("Better than its baseline") and gate.caveats() == []


def test_a_model_no_better_than_its_baseline_does_not_pass():
    y = _labels()
    scores = y + np.random.default_rng(2).normal(0, 1.0, len(y))
    gate = compare_to_baseline(
        "ROC AUC", y, scores, scores, metric=roc_auc_score, baseline_name="itself", chance=0.5
    )
    assert gate.model == gate.baseline and not gate.beats_baseline and not gate.passed
    assert gate.diff_low == gate.diff_high == 0.0
    assert gate.verdict().startswith("Not better than its baseline")


def test_one_class_for_every_item_is_at_chance_and_fails():
    y = _labels()
    constant = np.ones(len(y))
    majority = np.full(len(y), np.bincount(y).argmax())
    gate = compare_to_baseline(
        "accuracy", y, constant, majority, metric=accuracy_score, baseline_name="the majority", chance=0.5
    )
    assert not gate.passed
    assert gate.as_dict()["passed"] is False and gate.as_dict()["n_test"] == len(y)


def test_a_small_test_set_gets_a_caveat_and_wide_interval():
    y = np.array([0, 1, 0, 1])
    gate = compare_to_baseline(
        "accuracy", y, y, 1 - y, metric=accuracy_score, baseline_name="the opposite", chance=0.5
    )
    assert gate.model == 1.0 and gate.n_test < SMALL_TEST_SET
    assert any("Only 4 held-out items" in c for c in gate.caveats())


def test_intervals_are_reproducible_for_the_same_data():
    y = _labels()
    s = y + np.random.default_rng(3).normal(0, 1, len(y))
    a = compare_to_baseline("ROC AUC", y, s, -s, metric=roc_auc_score, baseline_name="b", chance=0.5)
    b = compare_to_baseline("ROC AUC", y, s, -s, metric=roc_auc_score, baseline_name="b", chance=0.5)
    assert a == b


def test_per_item_gate_compares_means_over_the_same_users():
    rng = np.random.default_rng(4)
    base = rng.uniform(0, 0.3, 500)
    better = base + 0.1
    gate = compare_per_item("NDCG@10", better, base, baseline_name="popularity", chance=0.0)
    assert gate.model == pytest.approx(base.mean() + 0.1)
    assert gate.diff_low == pytest.approx(0.1) and gate.diff_high == pytest.approx(0.1)
    assert gate.passed
    worse = compare_per_item("NDCG@10", base - 0.05, base, baseline_name="popularity", chance=0.0)
    assert not worse.passed and worse.diff_high < 0


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError):
        compare_to_baseline(
            "accuracy", [0, 1], [0], [0, 1], metric=accuracy_score, baseline_name="b", chance=0.5
        )
