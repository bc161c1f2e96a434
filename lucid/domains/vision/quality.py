"""The quality gate of a fine-tuned image classifier: held-out test accuracy against always predicting
the most common training class, and against chance (one over the number of classes).

Example:
    >>> result = fine_tune(model, prep, data, config)
    >>> gate = accuracy_gate(result.metrics)
    >>> gate.passed, gate.verdict()
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from lucid.core.quality import QualityGate, compare_to_baseline

#: Under this many held-out images of one class, its share of the test accuracy is stated with a caveat.
FEW_PER_CLASS = 5


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Share of items whose prediction is their label."""
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))


def held_out_pairs(metrics: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The held-out (label, prediction) pairs, one per test image, from the test confusion matrix.

    The confusion matrix counts every (label, prediction) pair, so it holds exactly the items the
    bootstrap needs; their order does not change accuracy nor, in distribution, its resamples.
    """
    matrix = np.asarray(metrics["confusion_matrix"], dtype=int)
    k = matrix.shape[0]
    true_idx, pred_idx = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
    counts = matrix.ravel()
    return np.repeat(true_idx.ravel(), counts), np.repeat(pred_idx.ravel(), counts)


def accuracy_gate(metrics: Mapping[str, Any]) -> QualityGate:
    """Test accuracy of the model beside the majority-class baseline on the same test images.

    Args:
        metrics: :func:`lucid.imaging.metrics.classification_metrics` of the held-out test images
            (``confusion_matrix``, ``class_names`` and ``majority_class``, the most common training class).
    """
    class_names = [str(c) for c in metrics["class_names"]]
    y_true, y_pred = held_out_pairs(metrics)
    majority = class_names.index(str(metrics["majority_class"]))
    support = np.bincount(y_true, minlength=len(class_names))
    thin = [f"'{c}' ({n})" for c, n in zip(class_names, support, strict=True) if n < FEW_PER_CLASS]
    notes = (
        [f"Few held-out images for {', '.join(thin)}: per-class recall rests on a handful of images."]
        if thin
        else []
    )
    return compare_to_baseline(
        "accuracy",
        y_true,
        y_pred,
        np.full(len(y_true), majority),
        metric=accuracy,
        baseline_name=f"always predicting '{class_names[majority]}', the most common training class",
        chance=1.0 / len(class_names),
        notes=notes,
    )
