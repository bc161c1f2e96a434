"""Classification metrics: accuracy, per-class scores, confusion matrix and the majority baseline."""

from __future__ import annotations

import pytest

from lucid.imaging.metrics import classification_metrics


def test_classification_metrics_values():
    metrics = classification_metrics([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 1, 0], ["x", "y", "z"])
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["majority_class"] == "x" and metrics["majority_baseline_accuracy"] == pytest.approx(0.5)
    assert metrics["per_class"]["y"]["precision"] == pytest.approx(2 / 3)
    assert metrics["per_class"]["x"]["recall"] == pytest.approx(2 / 3)
    assert metrics["per_class"]["z"]["recall"] == 0.0
    assert metrics["confusion_matrix"] == [[2, 1, 0], [0, 2, 0], [1, 0, 0]]
