"""Classification metrics of an image classifier: accuracy, per-class scores, confusion matrix, baseline.

Example:
    >>> metrics = evaluate_classifier(classifier, labelled_images)
    >>> metrics["accuracy"], metrics["majority_baseline_accuracy"]
    >>> per_class_table(metrics)   # class, precision, recall, f1, support
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from lucid.core.errors import InvalidInputError
from lucid.imaging.classifier import ImageClassifier
from lucid.imaging.datasets import LabelledImages


def classification_metrics(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    class_names: Sequence[str],
    *,
    train_labels: Sequence[int] | np.ndarray | None = None,
) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1/support, macro F1, confusion matrix and the majority baseline.

    Args:
        y_true: true class indices.
        y_pred: predicted class indices.
        class_names: index -> name.
        train_labels: training labels, to score the baseline of always predicting their majority
            class (default: the majority of ``y_true``).
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    true = np.asarray(y_true, dtype=int)
    pred = np.asarray(y_pred, dtype=int)
    k = len(class_names)
    labels = list(range(k))
    precision, recall, f1, support = precision_recall_fscore_support(
        true, pred, labels=labels, zero_division=0
    )
    reference = np.asarray(train_labels if train_labels is not None else true, dtype=int)
    majority = int(np.bincount(reference, minlength=k).argmax()) if len(reference) else 0
    return {
        "accuracy": float((true == pred).mean()) if len(true) else float("nan"),
        "majority_class": str(class_names[majority]),
        "majority_baseline_accuracy": float((true == majority).mean()) if len(true) else float("nan"),
        "macro_f1": float(np.mean(f1)) if k else float("nan"),
        "n": int(len(true)),
        "per_class": {
            str(class_names[i]): {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i in labels
        },
        "confusion_matrix": confusion_matrix(true, pred, labels=labels).tolist(),
        "class_names": [str(c) for c in class_names],
    }


def per_class_table(metrics: dict[str, Any]) -> pd.DataFrame:
    """The per-class part of :func:`classification_metrics` as a table."""
    rows = [{"class": c, **v} for c, v in metrics["per_class"].items()]
    return pd.DataFrame(rows, columns=["class", "precision", "recall", "f1", "support"])


def evaluate_classifier(classifier: ImageClassifier, data: LabelledImages) -> dict[str, Any]:
    """Score a classifier on labelled images whose labels are among its classes."""
    unknown = sorted(set(data.labels) - set(classifier.class_names))
    if unknown:
        raise InvalidInputError(
            f"Labels {', '.join(repr(u) for u in unknown[:5])} are not classes of this model "
            f"({', '.join(classifier.class_names[:10])})."
        )
    index = {c: i for i, c in enumerate(classifier.class_names)}
    probs = classifier.predict_images(data.images)
    return classification_metrics(
        [index[x] for x in data.labels], probs.argmax(axis=1), classifier.class_names
    )
