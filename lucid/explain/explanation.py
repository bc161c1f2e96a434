"""SHAP helpers shared by every domain.

One explanation type everywhere: :class:`shap.Explanation`. Domains compute SHAP values with the
algorithm that fits their model (chosen in their own ``explain_*`` function: exact TreeSHAP for
trees, Partition with a text masker for text, Partition with an image masker or gradients for
images) and use these helpers to wrap, check and summarise them.

Example:
    >>> expl = make_explanation(values, base_values, data, feature_names=["age", "income"])
    >>> check_additivity(expl, model_outputs)  # raises ExplanationError if values + base != output
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd
import shap

from lucid.core.errors import ExplanationError


def make_explanation(
    values: np.ndarray,
    base_values: np.ndarray | float,
    data: np.ndarray | pd.DataFrame | None = None,
    *,
    feature_names: Sequence[str] | None = None,
    output_names: Sequence[str] | str | None = None,
    display_data: np.ndarray | None = None,
) -> shap.Explanation:
    """Build a float32 :class:`shap.Explanation`, checking that the shapes agree."""
    values = np.asarray(values, dtype=np.float32)
    base = np.asarray(base_values, dtype=np.float32)
    if values.ndim >= 2 and base.ndim == 0:
        base = np.full(values.shape[0], float(base), dtype=np.float32)
    if isinstance(data, pd.DataFrame):
        feature_names = list(data.columns) if feature_names is None else feature_names
        data = data.to_numpy()
    if feature_names is not None and values.ndim >= 1 and values.ndim <= 2:
        if len(feature_names) != values.shape[-1]:
            raise ValueError(f"{len(feature_names)} feature names for {values.shape[-1]} SHAP columns")
    return shap.Explanation(
        values=values,
        base_values=float(base) if base.ndim == 0 else base,
        data=data,
        display_data=display_data,
        feature_names=list(feature_names) if feature_names is not None else None,
        output_names=output_names,
    )


def additivity_error(explanation: shap.Explanation, outputs: np.ndarray | float) -> float:
    """Largest |sum(values) + base - output| over the rows (values summed over all but the row axis)."""
    values = np.asarray(explanation.values, dtype=np.float64)
    base = np.asarray(explanation.base_values, dtype=np.float64)
    outputs = np.asarray(outputs, dtype=np.float64)
    if values.ndim <= 1:
        total = values.sum() + base.reshape(-1)[0]
    else:
        total = values.reshape(values.shape[0], -1).sum(axis=1) + base.reshape(values.shape[0], -1)[:, 0]
    return float(np.max(np.abs(total - outputs.reshape(total.shape))))


def check_additivity(explanation: shap.Explanation, outputs: np.ndarray | float, atol: float = 1e-4) -> float:
    """Raise :class:`ExplanationError` unless values + base reproduce the model output within ``atol``.

    Returns:
        The largest absolute error seen.
    """
    err = additivity_error(explanation, outputs)
    if not np.isfinite(err) or err > atol:
        raise ExplanationError(
            f"SHAP values do not add up to the model output (max error {err:.2e} > {atol:.0e})."
        )
    return err


def top_features(values: np.ndarray, k: int, *, sign: int = 0) -> np.ndarray:
    """Indices of the ``k`` strongest features of one row, strongest first.

    Args:
        values: one row of SHAP values.
        k: how many.
        sign: ``+1`` only positive contributions, ``-1`` only negative, ``0`` by absolute size.
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if sign > 0:
        idx = np.flatnonzero(values > 0)
        order = idx[np.argsort(-values[idx], kind="stable")]
    elif sign < 0:
        idx = np.flatnonzero(values < 0)
        order = idx[np.argsort(values[idx], kind="stable")]
    else:
        order = np.argsort(-np.abs(values), kind="stable")
    return order[:k]


def mean_abs_importance(explanation: shap.Explanation) -> pd.Series:
    """Mean |SHAP| per feature over the rows, largest first (the global importance)."""
    values = np.asarray(explanation.values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError("Global importance needs a 2-D explanation (rows x features).")
    names = explanation.feature_names or [f"feature {i}" for i in range(values.shape[1])]
    return pd.Series(np.abs(values).mean(axis=0), index=list(names)).sort_values(ascending=False)


def sigmoid(x: np.ndarray | float) -> np.ndarray:
    """Logistic function, for turning log-odds outputs into probabilities."""
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


_SEEDED = threading.Lock()


@contextlib.contextmanager
def reproducible_shap(seed: int = 0) -> Iterator[None]:
    """Make shap's Partition explainer a function of its input alone, for batch output.

    The explainer breaks ties between equally important regions with numpy's global random
    generator, so the same image or text can get slightly different values depending on what ran
    before it in the process. Inside this block that generator starts from ``seed`` (and is put
    back afterwards), so a batch gives the same values whichever process or partition explains a row.
    Blocks are serialised within a process.
    """
    with _SEEDED:
        state = np.random.get_state()
        np.random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(state)
