"""Monitoring: the training data's reference distributions and the population stability index
(PSI) of a scored batch against them, per feature and for the score.

Example:
    >>> reference = build_reference(model, train_frame, train_pd)
    >>> table = psi_table(reference, batch_frame, batch_pd)
    >>> psi_verdict(table, rows=len(batch_frame))
    'Stable: this batch looks like the training data (score PSI 0.012).'
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from lucid.domains.finance.model import CATEGORICAL, NUMERIC, CreditModel
from lucid.domains.finance.stats import (
    category_shares,
    numeric_bins,
    numeric_shares,
    psi_band,
    psi_from_shares,
)

#: Below this many rows a PSI verdict carries a small-sample caveat.
PSI_MIN_ROWS = 500


def build_reference(model: CreditModel, frame: pd.DataFrame, pd_values: np.ndarray) -> dict[str, Any]:
    """Bins and shares of every feature and of the score on the training data."""
    features = {}
    for feat in model.features:
        col = frame[feat.name]
        if feat.is_categorical:
            values = col.astype(object).where(col.notna(), None).tolist()
            features[feat.name] = {
                "kind": CATEGORICAL,
                "categories": list(feat.categories),
                "shares": category_shares(values, feat.categories),
            }
        else:
            edges = numeric_bins(col.to_numpy(dtype=np.float64, na_value=np.nan))
            features[feat.name] = {
                "kind": NUMERIC,
                "edges": edges,
                "shares": numeric_shares(col.to_numpy(dtype=np.float64, na_value=np.nan), edges),
            }
    score_edges = numeric_bins(pd_values)
    return {
        "features": features,
        "score": {"edges": score_edges, "shares": numeric_shares(pd_values, score_edges)},
        "rows": int(len(frame)),
    }


def psi_table(reference: dict[str, Any], frame: pd.DataFrame, pd_values: np.ndarray) -> pd.DataFrame:
    """PSI of the score and of every feature between the training data and ``frame``, worst first."""
    rows = []
    score = reference["score"]
    value = psi_from_shares(score["shares"], numeric_shares(pd_values, score["edges"]))
    rows.append({"variable": "score (PD)", "psi": value, "band": psi_band(value)})
    for name, ref in reference["features"].items():
        col = frame[name]
        if ref["kind"] == CATEGORICAL:
            values = col.astype(object).where(col.notna(), None).tolist()
            shares = category_shares(values, ref["categories"])
        else:
            shares = numeric_shares(col.to_numpy(dtype=np.float64, na_value=np.nan), ref["edges"])
        value = psi_from_shares(ref["shares"], shares)
        rows.append({"variable": name, "psi": value, "band": psi_band(value)})
    table = pd.DataFrame(rows)
    head, rest = table.iloc[:1], table.iloc[1:].sort_values("psi", ascending=False)
    return pd.concat([head, rest], ignore_index=True)


def psi_verdict(table: pd.DataFrame, rows: int | None = None) -> str:
    """One plain sentence about the batch's stability."""
    score = table.iloc[0]
    shifted = table.iloc[1:][table.iloc[1:]["psi"] >= 0.25]["variable"].tolist()
    moderate = table.iloc[1:][(table.iloc[1:]["psi"] >= 0.1) & (table.iloc[1:]["psi"] < 0.25)][
        "variable"
    ].tolist()
    if score["psi"] >= 0.25 or shifted:
        lead = "Major shift: this batch does not look like the training data"
    elif score["psi"] >= 0.1 or moderate:
        lead = "Moderate shift: watch this batch"
    else:
        lead = "Stable: this batch looks like the training data"
    detail = f" (score PSI {score['psi']:.3f}"
    if shifted:
        detail += f"; major shift in {', '.join(shifted[:5])}"
    if moderate:
        detail += f"; moderate shift in {', '.join(moderate[:5])}"
    verdict = lead + detail + ")."
    if rows is not None and rows < PSI_MIN_ROWS:
        verdict += (
            f" With only {rows:,} applicants the PSI is noisy (small samples look shifted); "
            f"judge drift on {PSI_MIN_ROWS:,} or more."
        )
    return verdict
