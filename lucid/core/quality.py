"""The quality gate of every train-your-own flow: is the new model better than its baseline and than
chance on the held-out data, and how sure are we?

A model is measured on its held-out test items beside a baseline on the same items (the paired
bootstrap resamples the items, so both are scored on the same resample), with 95% confidence
intervals for the model's metric and for the difference. It *passes* when its metric is above the
baseline's and the lower end of its interval is above chance; a model that does not pass is saved
only on the user's explicit choice ("save anyway" on a page, ``--save-anyway`` in the CLI).

Example:
    >>> gate = compare_to_baseline(
    ...     "accuracy", y_true, model_pred, baseline_pred, metric=accuracy,
    ...     baseline_name="the majority class", chance=0.5)
    >>> gate.passed, gate.verdict()
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Under this many held-out items a result is stated with a caveat.
SMALL_TEST_SET = 30
CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 500

Metric = Callable[[np.ndarray, np.ndarray], float]


@dataclass(frozen=True)
class QualityGate:
    """The held-out comparison of a new model with its baseline and with chance.

    Attributes:
        metric: the metric's plain name ("ROC AUC", "macro-F1", "accuracy", "NDCG@10").
        model: the model's value on the held-out items.
        model_low, model_high: its 95% bootstrap interval.
        baseline: the baseline's value on the same items.
        baseline_name: what the baseline is, in words ("a logistic regression", "the most common class").
        diff_low, diff_high: 95% paired-bootstrap interval of model - baseline.
        chance: the value a guess scores (0.5 for ROC AUC, the majority share for accuracy, ...).
        n_test: held-out items the figures come from.
    """

    metric: str
    model: float
    model_low: float
    model_high: float
    baseline: float
    baseline_name: str
    diff_low: float
    diff_high: float
    chance: float
    n_test: int
    notes: tuple[str, ...] = field(default=())

    @property
    def beats_baseline(self) -> bool:
        return bool(self.model > self.baseline)

    @property
    def beats_chance(self) -> bool:
        return bool(self.model_low > self.chance)

    @property
    def passed(self) -> bool:
        return self.beats_baseline and self.beats_chance

    def verdict(self) -> str:
        """One plain sentence from the numbers."""
        head = (
            f"{self.metric} {self.model:.3f} (95% CI {self.model_low:.3f} to {self.model_high:.3f}) on "
            f"{self.n_test:,} held-out items, against {self.baseline:.3f} for {self.baseline_name}"
        )
        if not self.beats_baseline:
            return f"Not better than its baseline: {head}. Saving it needs an explicit choice."
        if not self.beats_chance:
            return (
                f"Not clearly better than chance ({self.chance:.3f}): {head}. "
                "Saving it needs an explicit choice."
            )
        if self.diff_low <= 0:
            return (
                f"Better than its baseline, but not by a clear margin: {head} "
                f"(difference {self.diff_low:+.3f} to {self.diff_high:+.3f})."
            )
        return f"Better than its baseline: {head} (difference {self.diff_low:+.3f} to {self.diff_high:+.3f})."

    def caveats(self) -> list[str]:
        """What a reader must know before trusting the figures."""
        out = list(self.notes)
        if self.n_test < SMALL_TEST_SET:
            out.append(
                f"Only {self.n_test} held-out items: the figures can change a lot with other data; "
                "label more examples before relying on this model."
            )
        return out

    def as_dict(self) -> dict[str, Any]:
        """The gate as JSON-ready values (for the CLI and the model's metadata)."""
        return {
            "metric": self.metric,
            "model": round(self.model, 6),
            "model_ci": [round(self.model_low, 6), round(self.model_high, 6)],
            "baseline": round(self.baseline, 6),
            "baseline_name": self.baseline_name,
            "difference_ci": [round(self.diff_low, 6), round(self.diff_high, 6)],
            "chance": round(self.chance, 6),
            "n_test": self.n_test,
            "beats_baseline": self.beats_baseline,
            "beats_chance": self.beats_chance,
            "passed": self.passed,
        }


def _interval(values: np.ndarray) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return float("nan"), float("nan")
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def compare_to_baseline(
    metric_name: str,
    y_true: Sequence[Any] | np.ndarray,
    model_scores: Sequence[Any] | np.ndarray,
    baseline_scores: Sequence[Any] | np.ndarray,
    *,
    metric: Metric,
    baseline_name: str,
    chance: float,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    notes: Sequence[str] = (),
) -> QualityGate:
    """Measure a model and its baseline on the same held-out items, with paired-bootstrap intervals.

    Args:
        metric_name: the metric's plain name.
        y_true: the held-out labels (or per-item targets).
        model_scores: the model's predictions or scores, one per item.
        baseline_scores: the baseline's, on the same items.
        metric: ``metric(y_true, scores) -> float``, higher is better.
        baseline_name: the baseline in words.
        chance: what a guess scores on this metric.
        resamples: bootstrap resamples.
        seed: the resampling seed (the same data always gives the same intervals).
        notes: further caveats of the domain.
    """
    y = np.asarray(y_true)
    model = np.asarray(model_scores)
    base = np.asarray(baseline_scores)
    n = len(y)
    if n == 0 or len(model) != n or len(base) != n:
        raise ValueError("The model, the baseline and the labels need the same held-out items.")
    rng = np.random.default_rng(seed)
    model_values = np.full(resamples, np.nan)
    diffs = np.full(resamples, np.nan)
    for k in range(resamples):
        idx = rng.integers(0, n, n)
        try:
            m = metric(y[idx], model[idx])
            b = metric(y[idx], base[idx])
        except ValueError:  # a resample with one class only has no ROC AUC
            continue
        model_values[k] = m
        diffs[k] = m - b
    low, high = _interval(model_values)
    d_low, d_high = _interval(diffs)
    return QualityGate(
        metric=metric_name,
        model=float(metric(y, model)),
        model_low=low,
        model_high=high,
        baseline=float(metric(y, base)),
        baseline_name=baseline_name,
        diff_low=d_low,
        diff_high=d_high,
        chance=float(chance),
        n_test=n,
        notes=tuple(notes),
    )


def compare_per_item(
    metric_name: str,
    model_values: Sequence[float] | np.ndarray,
    baseline_values: Sequence[float] | np.ndarray,
    *,
    baseline_name: str,
    chance: float,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    notes: Sequence[str] = (),
) -> QualityGate:
    """The gate for a metric that is a mean over items (NDCG@10 per user, hit rate), from the per-item
    values of the model and of the baseline on the same items."""
    model = np.asarray(model_values, dtype=float)
    base = np.asarray(baseline_values, dtype=float)
    n = len(model)
    if n == 0 or len(base) != n:
        raise ValueError("The model and the baseline need values for the same held-out items.")
    idx = np.random.default_rng(seed).integers(0, n, (resamples, n))
    model_means = model[idx].mean(axis=1)
    low, high = _interval(model_means)
    d_low, d_high = _interval(model_means - base[idx].mean(axis=1))
    return QualityGate(
        metric=metric_name,
        model=float(model.mean()),
        model_low=low,
        model_high=high,
        baseline=float(base.mean()),
        baseline_name=baseline_name,
        diff_low=d_low,
        diff_high=d_high,
        chance=float(chance),
        n_test=n,
        notes=tuple(notes),
    )
