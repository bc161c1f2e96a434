"""Medical metrics and temperature scaling on known inputs."""

import numpy as np
import pytest

from lucid.domains.medical.metrics import fit_temperature, medical_metrics


def test_metrics_and_temperature():
    labels = np.array([0, 0, 1, 1, 2, 2])
    probs = np.eye(3)[labels] * 0.7 + 0.1
    m = medical_metrics(probs, labels, ["a", "b", "c"])
    assert m["accuracy"] == 1.0 and m["macro_auc"] == 1.0
    assert m["confusion_matrix"] == [[2, 0, 0], [0, 2, 0], [0, 0, 2]]
    assert m["per_class"]["a"]["sensitivity"] == 1.0 and m["per_class"]["a"]["specificity"] == 1.0
    assert m["ece"] == pytest.approx(0.2, abs=1e-6)  # confident 0.8, always right
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    logits = rng.normal(0, 1, (300, 3))
    logits[np.arange(300), y] += 1.0
    assert fit_temperature(logits * 4, y) > 2.5  # over-confident logits get a large temperature
    assert fit_temperature(logits / 4, y) < 0.5
