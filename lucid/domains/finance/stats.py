"""Risk-analyst statistics for probability-of-default models, with no model code in them.

Discrimination (ROC AUC, Gini, KS), calibration (Brier score, reliability table), decisions at a
threshold (confusion matrix, approval rate, bad rate among approved, expected loss) and drift
(population stability index, PSI). Everything takes plain numpy / pandas and returns plain
numbers or DataFrames.

Example:
    >>> m = risk_metrics(y_true, pd_scores, threshold=0.3)
    >>> m["auc"], m["gini"], m["ks"]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.metrics import brier_score_loss, roc_auc_score

from lucid.core.errors import InvalidInputError

PSI_STABLE = 0.1
PSI_MAJOR = 0.25
_PSI_FLOOR = 1e-4  # share given to an empty bin so the logarithm stays finite


def _arrays(y: ArrayLike, p: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=np.int64).reshape(-1)
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    if y.shape != p.shape:
        raise InvalidInputError(f"{len(y)} labels for {len(p)} scores.")
    if len(np.unique(y)) < 2:
        raise InvalidInputError("The statistics need both outcomes (defaults and non-defaults) in the data.")
    return y, p


def ks_curve(y: ArrayLike, p: ArrayLike) -> pd.DataFrame:
    """Cumulative share of bads and goods with a score at or above each threshold (high PD first).

    Returns:
        Columns ``threshold``, ``cum_bad``, ``cum_good`` and ``gap`` (their difference).
    """
    y, p = _arrays(y, p)
    order = np.argsort(-p, kind="stable")
    ys, ps = y[order], p[order]
    # One point per distinct score: ties move together.
    last = np.r_[ps[1:] != ps[:-1], True]
    cum_bad = np.cumsum(ys)[last] / ys.sum()
    cum_good = np.cumsum(1 - ys)[last] / (len(ys) - ys.sum())
    curve = pd.DataFrame(
        {
            "threshold": np.r_[1.0, ps[last]],
            "cum_bad": np.r_[0.0, cum_bad],
            "cum_good": np.r_[0.0, cum_good],
        }
    )
    curve["gap"] = curve["cum_bad"] - curve["cum_good"]
    return curve


def ks_statistic(y: ArrayLike, p: ArrayLike) -> tuple[float, float]:
    """The Kolmogorov-Smirnov statistic (largest gap between the bads' and goods' score CDFs).

    Returns:
        KS and the score at which it is reached.
    """
    curve = ks_curve(y, p)
    i = int(curve["gap"].to_numpy().argmax())
    return float(curve["gap"].iloc[i]), float(curve["threshold"].iloc[i])


def calibration_table(y: ArrayLike, p: ArrayLike, bins: int = 10) -> pd.DataFrame:
    """Mean predicted PD against the observed default rate per score decile (equal-count bins)."""
    y, p = _arrays(y, p)
    ranks = pd.qcut(pd.Series(p).rank(method="first"), q=min(bins, len(p)), labels=False)
    frame = pd.DataFrame({"bin": ranks, "y": y, "p": p})
    table = frame.groupby("bin").agg(mean_pd=("p", "mean"), observed_rate=("y", "mean"), count=("y", "size"))
    return table.reset_index(drop=True)


def confusion_at(y: ArrayLike, p: ArrayLike, threshold: float) -> dict[str, int]:
    """Counts when applicants with PD >= threshold are rejected (predicted bad)."""
    y, p = _arrays(y, p)
    pred = p >= threshold
    return {
        "true_bad_rejected": int(np.sum(pred & (y == 1))),
        "good_rejected": int(np.sum(pred & (y == 0))),
        "bad_approved": int(np.sum(~pred & (y == 1))),
        "true_good_approved": int(np.sum(~pred & (y == 0))),
    }


def risk_metrics(y: ArrayLike, p: ArrayLike, threshold: float = 0.5) -> dict[str, float]:
    """AUC, Gini, KS, Brier score, bad rate and the confusion counts at ``threshold``."""
    y, p = _arrays(y, p)
    auc = float(roc_auc_score(y, p))
    ks, ks_threshold = ks_statistic(y, p)
    confusion = confusion_at(y, p, threshold)
    correct = confusion["true_bad_rejected"] + confusion["true_good_approved"]
    return {
        "auc": auc,
        "gini": 2.0 * auc - 1.0,
        "ks": ks,
        "ks_threshold": ks_threshold,
        "brier": float(brier_score_loss(y, p)),
        "bad_rate": float(y.mean()),
        "mean_pd": float(p.mean()),
        "accuracy": correct / len(y),
        "threshold": float(threshold),
        "rows": int(len(y)),
        **confusion,
    }


def threshold_table(
    p: ArrayLike,
    y: ArrayLike | None = None,
    *,
    cost_false_approval: float = 5.0,
    cost_false_rejection: float = 1.0,
    thresholds: ArrayLike | None = None,
) -> pd.DataFrame:
    """Approval rate, bad rate among approved and expected loss per applicant as the threshold moves.

    Applicants with PD below the threshold are approved. With labels ``y`` the outcomes are counted;
    without them they are expected from the PDs themselves (an approved applicant defaults with
    probability PD), which is what a portfolio manager can do before outcomes are known.

    Args:
        p: PD per applicant.
        y: observed outcome (1 = default) per applicant, or ``None``.
        cost_false_approval: the loss of approving an applicant who defaults.
        cost_false_rejection: the lost margin of rejecting an applicant who would have repaid.
        thresholds: the thresholds to tabulate (default 0.01 to 0.99).
    """
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    if len(p) == 0:
        raise InvalidInputError("There are no scores to analyse.")
    if cost_false_approval < 0 or cost_false_rejection < 0:
        raise InvalidInputError("Costs must be zero or positive.")
    bad = p if y is None else np.asarray(y, dtype=np.float64).reshape(-1)
    if len(bad) != len(p):
        raise InvalidInputError(f"{len(bad)} labels for {len(p)} scores.")
    thresholds = np.round(np.arange(0.01, 1.0, 0.01), 2) if thresholds is None else np.asarray(thresholds)
    order = np.argsort(p, kind="stable")
    ps, bads = p[order], bad[order]
    cum_bad = np.r_[0.0, np.cumsum(bads)]
    total_bad = cum_bad[-1]
    n = len(p)
    approved = np.searchsorted(ps, thresholds, side="left")  # PD < threshold
    bad_approved = cum_bad[approved]
    good_rejected = (n - approved) - (total_bad - bad_approved)
    with np.errstate(invalid="ignore", divide="ignore"):
        bad_rate = np.where(approved > 0, bad_approved / np.maximum(approved, 1), np.nan)
    loss = (cost_false_approval * bad_approved + cost_false_rejection * good_rejected) / n
    return pd.DataFrame(
        {
            "threshold": thresholds,
            "approval_rate": approved / n,
            "bad_rate_approved": bad_rate,
            "expected_bad_approved": bad_approved,
            "expected_good_rejected": good_rejected,
            "expected_loss_per_applicant": loss,
        }
    )


# ----------------------------------------------------------------------------------------------
# Population stability
# ----------------------------------------------------------------------------------------------


def psi_band(value: float) -> str:
    """The usual reading of a PSI: below 0.1 stable, 0.1 to 0.25 moderate shift, above major shift."""
    if not np.isfinite(value):
        return "not measurable"
    if value < PSI_STABLE:
        return "stable"
    if value < PSI_MAJOR:
        return "moderate shift"
    return "major shift"


def psi_from_shares(expected: ArrayLike, actual: ArrayLike) -> float:
    """PSI = sum((actual - expected) * ln(actual / expected)) over bins, empty bins floored."""
    e = np.maximum(np.asarray(expected, dtype=np.float64), _PSI_FLOOR)
    a = np.maximum(np.asarray(actual, dtype=np.float64), _PSI_FLOOR)
    e, a = e / e.sum(), a / a.sum()
    return float(np.sum((a - e) * np.log(a / e)))


def numeric_bins(values: ArrayLike, n_bins: int = 10) -> list[float]:
    """Inner bin edges at the reference's deciles (duplicates dropped); missing gets its own bin."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return []
    edges = np.unique(np.quantile(v, np.linspace(0, 1, n_bins + 1)[1:-1]))
    return [float(e) for e in edges]


def numeric_shares(values: ArrayLike, edges: ArrayLike) -> list[float]:
    """Share of values in each bin ``(-inf, e1], (e1, e2], ..., (ek, inf)`` and, last, missing."""
    v = np.asarray(values, dtype=np.float64)
    inner = np.asarray(edges, dtype=np.float64).reshape(-1)
    finite = np.isfinite(v)
    counts = np.bincount(np.searchsorted(inner, v[finite], side="left"), minlength=len(inner) + 1)
    counts = np.r_[counts, np.sum(~finite)].astype(np.float64)
    return list(counts / max(len(v), 1))


def category_shares(values: Sequence[object], categories: Sequence[str]) -> list[float]:
    """Share of each category, then of any other value, then of missing."""
    s = pd.Series(values, dtype="object")
    missing = s.isna()
    text = s[~missing].astype(str)
    counts = [float((text == c).sum()) for c in categories]
    counts.append(float((~text.isin(list(categories))).sum()))
    counts.append(float(missing.sum()))
    return list(np.asarray(counts) / max(len(s), 1))
