"""Plotly figures for the review-sentiment page (no Streamlit here, so the report reuses them).

Word-level explanations of single texts use :func:`lucid.ui.plots.token_bar` and
:func:`lucid.ui.plots.text_highlight_html`; this module adds the batch and training views.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from lucid.ui.plots import NEGATIVE, POSITIVE, TEMPLATE


def score_histogram(scores: Sequence[float], score_label: str) -> go.Figure:
    """Distribution of the batch's scores (probability of ``score_label``)."""
    values = np.asarray(scores, dtype=np.float64)
    values = values[np.isfinite(values)]
    fig = go.Figure(
        go.Histogram(
            x=values,
            xbins={"start": 0.0, "end": 1.0, "size": 0.05},
            marker_color=POSITIVE,
            hovertemplate="%{x}: %{y} texts<extra></extra>",
        )
    )
    fig.update_layout(
        template=TEMPLATE,
        xaxis_title=f"probability of '{html.escape(score_label)}'",
        yaxis_title="texts",
        height=320,
        bargap=0.05,
        margin={"l": 10, "r": 10, "t": 20, "b": 40},
    )
    return fig


def drivers_bar(drivers: pd.DataFrame, explained_label: str, *, k: int = 12) -> go.Figure:
    """The words with the most negative and most positive mean SHAP, diverging around zero."""
    if not {"word", "mean_shap", "count"} <= set(drivers.columns):
        raise ValueError("drivers_bar() needs the columns word, mean_shap and count.")
    low = drivers.nsmallest(k, "mean_shap")
    low = low[low["mean_shap"] < 0]
    high = drivers.nlargest(k, "mean_shap")
    high = high[high["mean_shap"] > 0]
    shown = pd.concat([low, high.iloc[::-1]]).drop_duplicates("word")
    fig = go.Figure(
        go.Bar(
            x=shown["mean_shap"],
            y=[f"{w} ({c})" for w, c in zip(shown["word"], shown["count"], strict=True)],
            orientation="h",
            marker_color=[POSITIVE if v > 0 else NEGATIVE for v in shown["mean_shap"]],
            hovertemplate="%{y}: mean SHAP %{x:+.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        template=TEMPLATE,
        xaxis_title=f"mean SHAP value (log-odds of '{html.escape(explained_label)}'); (n) = times seen",
        height=max(320, 24 * len(shown) + 100),
        margin={"l": 10, "r": 10, "t": 20, "b": 40},
    )
    fig.add_vline(x=0, line_color="#999999", line_width=1)
    return fig


def loss_curve(losses: Sequence[float], *, window: int = 10) -> go.Figure:
    """Training loss per step with a moving average."""
    values = np.asarray(losses, dtype=np.float64)
    steps = np.arange(1, len(values) + 1)
    smooth = pd.Series(values).rolling(window, min_periods=1).mean()
    fig = go.Figure(
        [
            go.Scatter(x=steps, y=values, mode="lines", name="loss", line={"color": "#bbbbbb"}),
            go.Scatter(x=steps, y=smooth, mode="lines", name=f"mean of {window}", line={"color": NEGATIVE}),
        ]
    )
    fig.update_layout(
        template=TEMPLATE,
        xaxis_title="step",
        yaxis_title="training loss",
        height=300,
        margin={"l": 10, "r": 10, "t": 20, "b": 40},
    )
    return fig
