"""The review-sentiment quality gate: held-out macro-F1 against the TF-IDF baseline and chance."""

from __future__ import annotations

import numpy as np
import pytest

from lucid.domains.nlp.quality import macro_f1_gate, macro_f1_of, majority_class

CLASSES = ["negative", "positive"]


def test_one_class_for_everything_fails_even_above_a_worse_baseline():
    y = np.array([0, 1] * 30)
    model = np.ones(60, dtype=int)  # always "positive"
    baseline = np.array([1, 0] * 30)  # wrong on every text: macro-F1 0
    gate = macro_f1_gate(y, model, baseline, train_labels=np.array([1, 1, 0]), classes=CLASSES)
    assert gate.chance == pytest.approx(1 / 3) and gate.model == pytest.approx(1 / 3)
    assert gate.beats_baseline and not gate.beats_chance and not gate.passed
    assert gate.verdict().startswith("Not clearly better than chance (0.333)")
    assert gate.as_dict()["passed"] is False


def test_chance_is_the_most_common_training_class_on_the_test_texts():
    y = np.array([0] * 10 + [1] * 30)
    gate = macro_f1_gate(
        y, y, np.zeros(40, dtype=int), train_labels=np.array([1] * 5 + [0] * 2), classes=CLASSES
    )
    # always "positive": F1 2*30/(30+40) for positive, 0 for negative
    assert gate.chance == pytest.approx((2 * 30 / 70) / 2)
    assert gate.model == 1.0 and gate.passed and gate.diff_low > 0
    assert majority_class(np.array([0, 1, 1, 2, 2]), 3) == 1  # a tie goes to the first class


def test_a_class_missing_from_a_resample_still_counts():
    metric = macro_f1_of(3)
    assert metric(np.array([0, 0, 1]), np.array([0, 0, 1])) == pytest.approx(2 / 3)


def test_few_test_texts_get_caveats():
    y = np.array([0, 1, 0, 1, 0, 1])
    gate = macro_f1_gate(y, y, 1 - y, train_labels=y, classes=CLASSES)
    caveats = " ".join(gate.caveats())
    assert "Only 6 held-out items" in caveats and "Few held-out texts for 'negative' (3)" in caveats
