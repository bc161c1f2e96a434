"""The quality gate of a text classifier trained on the user's texts: macro-F1 on the held-out test
texts beside the TF-IDF + logistic-regression baseline trained on the same training texts, and beside
chance (always predicting the most common training class).

Macro-F1 weighs every class alike, so a model that predicts one class for everything scores the
chance figure whatever the class balance, and cannot pass.

Example:
    >>> result = train_and_evaluate(texts, labels, TrainConfig(epochs=3))
    >>> gate = macro_f1_gate(result)
    >>> gate.passed, gate.verdict()
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import f1_score

from lucid.core.quality import Metric, QualityGate, compare_to_baseline
from lucid.core.store import StoredModel
from lucid.domains.nlp.training import TrainingResult

BASELINE_NAME = "the TF-IDF + logistic-regression baseline trained on the same texts"
#: Under this many held-out texts of one class, the gate says that its F1 rests on a handful of texts.
FEW_PER_CLASS = 5


def macro_f1_of(n_classes: int) -> Metric:
    """``metric(y_true, y_pred)``: macro-F1 over all ``n_classes`` classes (class indices).

    The classes are fixed so that a bootstrap resample missing a class still counts it (as 0), the same
    for the model and the baseline.
    """
    labels = list(range(n_classes))

    def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
        return float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0))

    return macro_f1


def majority_class(train_labels: np.ndarray, n_classes: int) -> int:
    """The most common training class (the first in class order on a tie)."""
    return int(np.argmax(np.bincount(np.asarray(train_labels, dtype=np.int64), minlength=n_classes)))


def macro_f1_gate(
    test_labels: np.ndarray,
    model_pred: np.ndarray,
    baseline_pred: np.ndarray,
    train_labels: np.ndarray,
    classes: Sequence[str],
) -> QualityGate:
    """Held-out macro-F1 of the model beside the baseline's on the same test texts, and beside chance.

    Args:
        test_labels: class indices of the held-out test texts.
        model_pred: the model's predicted class indices on them.
        baseline_pred: the TF-IDF baseline's predicted class indices on them.
        train_labels: class indices the model learnt from (chance predicts their most common class).
        classes: the class names, in index order.
    """
    y = np.asarray(test_labels, dtype=np.int64)
    metric = macro_f1_of(len(classes))
    majority = majority_class(train_labels, len(classes))
    chance = metric(y, np.full(len(y), majority))
    support = np.bincount(y, minlength=len(classes))
    thin = [f"'{c}' ({n})" for c, n in zip(classes, support, strict=True) if n < FEW_PER_CLASS]
    notes = (
        [f"Few held-out texts for {', '.join(thin)}: their F1 rests on a handful of texts."] if thin else []
    )
    return compare_to_baseline(
        "macro-F1",
        y,
        np.asarray(model_pred, dtype=np.int64),
        np.asarray(baseline_pred, dtype=np.int64),
        metric=metric,
        baseline_name=BASELINE_NAME,
        chance=chance,
        notes=notes,
    )


def training_gate(result: TrainingResult) -> QualityGate:
    """The gate of a training run, from its held-out test texts."""
    return macro_f1_gate(
        result.test_labels,
        result.test_predictions.argmax(axis=1),
        result.baseline_predictions.argmax(axis=1),
        result.train_labels,
        result.classifier.labels,
    )


@dataclass
class TrainedText:
    """A trained text classifier with its quality gate, saved or waiting for the user's choice.

    Attributes:
        name: the (validated) name it is or will be saved under.
        result: the training result (classifier, held-out metrics, baseline, history).
        gate: held-out macro-F1 against the TF-IDF baseline and chance.
        metadata: what the model store keeps with it (``quality_gate`` included).
        stored: its store entry once saved.
    """

    name: str
    result: TrainingResult
    gate: QualityGate
    metadata: dict[str, Any] = field(default_factory=dict)
    stored: StoredModel | None = None

    @property
    def saved(self) -> bool:
        return self.stored is not None
