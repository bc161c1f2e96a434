"""Risk grades, plain-sentence reason codes from SHAP values, and SHAP in probability points.

Example:
    >>> risk_grade([0.01, 0.3])
    array(['A', 'E'], dtype='<U1')
    >>> reason_sentences(values, data, names)[0]
    "housing is 'renter', which lowers the risk of default strongly (-0.70 log-odds)."
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import shap

from lucid.explain.explanation import make_explanation, sigmoid

N_REASONS = 4
#: Upper PD bound of each risk grade (A is the safest).
GRADES: tuple[tuple[str, float], ...] = (
    ("A", 0.025),
    ("B", 0.05),
    ("C", 0.10),
    ("D", 0.20),
    ("E", 0.40),
    ("F", 1.0),
)


def risk_grade(pd_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Risk grade A (safest) to F per PD, by the fixed bands in :data:`GRADES`."""
    edges = np.array([b for _, b in GRADES[:-1]])
    letters = np.array([g for g, _ in GRADES])
    return letters[np.searchsorted(edges, np.asarray(pd_values, dtype=np.float64), side="right")]


def _value_text(value: object) -> str:
    if value is None or value is pd.NA:
        return "missing"
    if isinstance(value, (float, np.floating)):
        number = float(value)
        if np.isnan(number):
            return "missing"
        # Whole numbers and large amounts in full (no exponent), small ones to 4 significant digits.
        return f"{number:,.0f}" if number.is_integer() or abs(number) >= 1000 else f"{number:.4g}"
    return f"'{value}'"


def _size_word(value: float) -> str:
    size = abs(value)
    if size >= 0.5:
        return "strongly"
    if size >= 0.15:
        return "moderately"
    return "slightly"


def _reason_text(name: str, value: object, contribution: float) -> str:
    verb = "raises" if contribution > 0 else "lowers"
    return (
        f"{name} is {_value_text(value)}, which {verb} the risk of default "
        f"{_size_word(contribution)} ({contribution:+.2f} log-odds)."
    )


def reason_sentences(
    values: np.ndarray, data: Sequence[object], names: Sequence[str], k: int = N_REASONS
) -> list[str]:
    """The ``k`` strongest SHAP contributions of one applicant as plain sentences, strongest first.

    Each names the feature, the applicant's value, the direction and the size in log-odds.
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    order = np.argsort(-np.abs(values), kind="stable")[:k]
    return [_reason_text(names[j], data[j], float(values[j])) for j in order]


def reason_columns(
    values: np.ndarray, data: np.ndarray, names: Sequence[str], k: int = N_REASONS
) -> list[list[str]]:
    """Reason sentences for many rows at once: ``k`` lists (reason 1, reason 2, ...) of one text per row."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(-np.abs(values), axis=1, kind="stable")[:, :k]
    rows = np.arange(len(values))
    columns = []
    for rank in range(min(k, values.shape[1])):
        j = order[:, rank]
        picked, contrib = data[rows, j], values[rows, j]
        columns.append([_reason_text(names[f], v, c) for f, v, c in zip(j, picked, contrib, strict=True)])
    return columns


def to_probability_units(explanation: shap.Explanation) -> shap.Explanation:
    """One applicant's log-odds SHAP values rescaled to probability points.

    The contributions keep their log-odds proportions and are scaled so that they add up to
    PD - base PD exactly (the logistic link is not additive, so this is a presentation, labelled
    as such on the page).
    """
    values = np.asarray(explanation.values, dtype=np.float64).reshape(-1)
    base = float(np.asarray(explanation.base_values, dtype=np.float64).reshape(-1)[0])
    total = values.sum()
    p_base, p_out = float(sigmoid(base)), float(sigmoid(base + total))
    factor = (p_out - p_base) / total if abs(total) > 1e-12 else p_base * (1 - p_base)
    return make_explanation(
        values * factor,
        p_base,
        np.asarray(explanation.data, dtype=object) if explanation.data is not None else None,
        feature_names=explanation.feature_names,
    )
