"""The quality gate of a model trained on the user's scans: accuracy on the held-out test scans (the
patient-level split) beside always calling the most common training class, on the same scans.

A model no better than that baseline, or whose accuracy interval reaches down to chance
(1 / number of classes), does not pass, and is saved only on the user's explicit choice.

Example:
    >>> gate = scan_quality_gate(result)
    >>> gate.passed, gate.verdict()
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from lucid.core.quality import QualityGate, compare_to_baseline
from lucid.domains.medical.training import ScanTrainResult

NO_PATIENT_NOTE = (
    "The files carry no patient IDs, so scans of one patient may sit in both the training and the test "
    "split; the held-out figure can then be optimistic."
)


def accuracy(y_true: np.ndarray, predicted: np.ndarray) -> float:
    """Share of items whose predicted class index is the true one."""
    return float(np.mean(np.asarray(y_true) == np.asarray(predicted)))


def majority_class(result: ScanTrainResult) -> str:
    """The most common class of the training split (the first in class order on a tie)."""
    counts = result.split_counts.get("train", {})
    return max(result.class_names, key=lambda c: counts.get(c, 0))


def scan_quality_gate(result: ScanTrainResult) -> QualityGate:
    """Held-out accuracy of the new model against always predicting the most common training class.

    Raises:
        ValueError: the result has no held-out test scans.
    """
    majority = majority_class(result)
    y = np.asarray(result.test_labels)
    baseline = np.full(len(y), result.class_names.index(majority))
    notes = [NO_PATIENT_NOTE] if result.metrics.get("group_kind") == "file" else []
    return compare_to_baseline(
        "accuracy",
        y,
        result.test_predictions,
        baseline,
        metric=accuracy,
        baseline_name=f"always '{majority}' (the most common training class)",
        chance=1.0 / len(result.class_names),
        notes=notes,
    )


def gate_summary(gate: Mapping[str, Any]) -> str:
    """One line of a stored gate (``QualityGate.as_dict()``) for the model card."""
    low, high = gate["model_ci"]
    outcome = "passed" if gate["passed"] else "did not pass (saved on request)"
    return (
        f"{gate['metric']} {gate['model']:.3f} (95% CI {low:.3f} to {high:.3f}) on {gate['n_test']} held-out "
        f"scans against {gate['baseline']:.3f} for {gate['baseline_name']}; chance {gate['chance']:.3f}; "
        f"{outcome}"
    )
