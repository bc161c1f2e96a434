"""The quality gate of a credit-risk model a user trains: its ROC AUC on the held-out 30% beside the
logistic-regression baseline fitted on the same split and scored on the same rows, and chance (0.5).

A model that does not pass is kept as a :class:`CreditTraining` with ``saved`` false, and saved only on
the user's explicit choice (:meth:`~lucid.domains.finance.service.FinanceService.save_trained`).

Example:
    >>> gate = credit_quality_gate(trained.holdout_y, trained.holdout_pd, trained.baseline_pd)
    >>> gate.passed, gate.verdict()
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import rankdata

from lucid.core.errors import TrainingError
from lucid.core.quality import QualityGate, compare_to_baseline
from lucid.domains.finance.bundle import CreditBundle
from lucid.domains.finance.training import TrainedCredit

METRIC = "ROC AUC"
BASELINE_NAME = "a logistic regression fitted on the same training rows"
CHANCE = 0.5


def _auc(y: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic (ties count half), the same value as scikit-learn's.

    The bootstrap calls it a thousand times per gate; ranking directly is far cheaper than
    ``roc_auc_score``'s input checks and curve, which matters on tens of thousands of held-out rows.

    Raises:
        ValueError: only one outcome among the rows (no AUC; the bootstrap skips that resample).
    """
    positive = np.asarray(y).astype(bool)
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("ROC AUC needs both outcomes among the rows.")
    ranks = rankdata(np.asarray(scores, dtype=np.float64))
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def credit_quality_gate(y_test: np.ndarray, model_pd: np.ndarray, baseline_pd: np.ndarray) -> QualityGate:
    """The held-out ROC AUC of the model's PD against the baseline's, paired on the same rows.

    Args:
        y_test: the held-out outcomes (1 = default).
        model_pd: the model's PD for those rows.
        baseline_pd: the logistic baseline's PD for the same rows, in the same order.
    """
    y = np.asarray(y_test)
    notes = []
    minority = int(min(y.sum(), len(y) - y.sum()))
    if minority < 30:
        # The AUC ranks defaulters against the others: with few of the rarer outcome it moves a lot.
        notes.append(
            f"Only {minority} held-out rows have the rarer outcome: the AUC and its interval rest on them."
        )
    return compare_to_baseline(
        METRIC,
        y,
        model_pd,
        baseline_pd,
        metric=_auc,
        baseline_name=BASELINE_NAME,
        chance=CHANCE,
        notes=notes,
    )


def gate_of(trained: TrainedCredit) -> QualityGate:
    """The gate of a freshly trained model (its baseline's held-out PD comes with it)."""
    if trained.baseline_pd is None:  # train_credit_model always keeps them; missing ones are a defect
        raise TrainingError("The new model could not be measured against its baseline.")
    return credit_quality_gate(trained.holdout_y, trained.holdout_pd, trained.baseline_pd)


@dataclass(frozen=True)
class CreditTraining:
    """The outcome of training a user's model: the model, its gate and, once saved, its bundle.

    Attributes:
        name: the name it is (or would be) saved under.
        trained: the model with its held-out evaluation (enough to save it later).
        gate: the held-out comparison with the logistic baseline and chance.
        bundle: the saved model as loaded; ``None`` while it is not saved.
    """

    name: str
    trained: TrainedCredit
    gate: QualityGate
    bundle: CreditBundle | None = None

    @property
    def saved(self) -> bool:
        return self.bundle is not None

    def metadata(self, name: str) -> dict[str, Any]:
        """The facts a user's model is saved with, besides those of its training (and its gate)."""
        return {
            "title": name,
            "source": "trained in Lucid on your uploaded data",
            "licence": "yours (the data's own terms apply)",
            "training_data": f"your upload: {self.trained.facts['rows_labelled']:,} labelled rows",
            "description": "Gradient-boosted trees (XGBoost) trained by Lucid's credit-risk recipe.",
            "quality_gate": self.gate.as_dict(),
        }

    def summary(self) -> dict[str, Any]:
        """What ``lucid finance train`` prints: the held-out metrics, the baseline and the gate."""
        return {
            "model": self.name,
            **self.trained.metrics,
            "baseline_auc": self.trained.baseline["auc"],
            "beats_baseline": self.gate.beats_baseline,
            "saved": self.saved,
            "quality_gate": self.gate.as_dict(),
        }
