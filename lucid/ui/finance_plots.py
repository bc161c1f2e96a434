"""Plotly figures for the credit-risk page: KS, calibration, confusion matrix, PSI, threshold trade-off.

No Streamlit here, so the same figures go into the page and into the HTML report. The inputs are
the plain tables made by :mod:`lucid.domains.finance.stats`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from lucid.ui.plots import NEGATIVE, POSITIVE, TEMPLATE

_BAND_COLOURS = {"stable": "#2b8a3e", "moderate shift": "#f08c00", "major shift": "#c92a2a"}


def ks_plot(curve: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Cumulative share of bads and goods captured as the PD cut-off falls, with the KS gap marked."""
    i = int(curve["gap"].to_numpy().argmax())
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(x=curve["threshold"], y=curve["cum_bad"], name="defaults (bads)", line={"color": POSITIVE})
    )
    fig.add_trace(
        go.Scatter(
            x=curve["threshold"], y=curve["cum_good"], name="non-defaults (goods)", line={"color": NEGATIVE}
        )
    )
    ks_at = float(curve["threshold"].iloc[i])
    fig.add_shape(
        type="line",
        x0=ks_at,
        x1=ks_at,
        y0=float(curve["cum_good"].iloc[i]),
        y1=float(curve["cum_bad"].iloc[i]),
        line={"color": "#333333", "dash": "dot"},
    )
    fig.add_annotation(
        x=ks_at, y=float(curve["cum_bad"].iloc[i]), text=f"KS = {curve['gap'].iloc[i]:.3f}", showarrow=True
    )
    fig.update_layout(
        template=TEMPLATE,
        title=title,
        xaxis={"title": "PD cut-off (applicants at or above it)", "autorange": "reversed"},
        yaxis={"title": "cumulative share", "range": [0, 1.02]},
        height=360,
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def calibration_plot(table: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Observed default rate against mean predicted PD per decile; the diagonal is perfect calibration."""
    top = float(max(table["mean_pd"].max(), table["observed_rate"].max(), 0.05)) * 1.05
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[0, top], y=[0, top], mode="lines", name="perfect", line={"color": "#999", "dash": "dash"}
        )
    )
    fig.add_trace(
        go.Scatter(
            x=table["mean_pd"],
            y=table["observed_rate"],
            mode="lines+markers",
            name="model",
            line={"color": POSITIVE},
            customdata=table["count"],
            hovertemplate="mean PD %{x:.3f}<br>observed %{y:.3f}<br>%{customdata} applicants<extra></extra>",
        )
    )
    fig.update_layout(
        template=TEMPLATE,
        title=title,
        xaxis_title="mean predicted PD (decile)",
        yaxis_title="observed default rate",
        height=360,
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def confusion_plot(confusion: Mapping[str, int], *, title: str | None = None) -> go.Figure:
    """2x2 counts: actual outcome (rows) against decision (columns)."""
    z = [
        [confusion["true_bad_rejected"], confusion["bad_approved"]],
        [confusion["good_rejected"], confusion["true_good_approved"]],
    ]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=["rejected", "approved"],
            y=["defaulted", "repaid"],
            colorscale="Blues",
            showscale=False,
            text=[[f"{v:,}" for v in row] for row in z],
            texttemplate="%{text}",
            hovertemplate="%{y}, %{x}: %{z}<extra></extra>",
        )
    )
    fig.update_layout(
        template=TEMPLATE,
        title=title,
        xaxis_title="decision",
        yaxis={"title": "actual outcome", "autorange": "reversed"},
        height=300,
    )
    return fig


def psi_plot(table: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """PSI per variable with the 0.1 and 0.25 bands."""
    ordered = table.iloc[::-1]
    fig = go.Figure(
        go.Bar(
            x=ordered["psi"],
            y=ordered["variable"],
            orientation="h",
            marker_color=[_BAND_COLOURS.get(b, "#868e96") for b in ordered["band"]],
            hovertemplate="%{y}: PSI %{x:.4f}<extra></extra>",
        )
    )
    fig.add_vline(x=0.1, line_color=_BAND_COLOURS["moderate shift"], line_dash="dash")
    fig.add_vline(x=0.25, line_color=_BAND_COLOURS["major shift"], line_dash="dash")
    fig.update_layout(
        template=TEMPLATE,
        title=title,
        xaxis_title="population stability index (0.1: moderate, 0.25: major shift)",
        height=max(300, 24 * len(table) + 100),
        margin={"l": 10, "r": 20, "t": 50 if title else 20, "b": 40},
    )
    return fig


def threshold_plot(table: pd.DataFrame, threshold: float, *, title: str | None = None) -> go.Figure:
    """Approval rate and bad rate among approved (left axis) and expected loss (right axis)."""
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=table["threshold"], y=table["approval_rate"], name="approval rate", line={"color": NEGATIVE}
        )
    )
    fig.add_trace(
        go.Scatter(
            x=table["threshold"],
            y=table["bad_rate_approved"],
            name="bad rate among approved",
            line={"color": POSITIVE},
        )
    )
    fig.add_trace(
        go.Scatter(
            x=table["threshold"],
            y=table["expected_loss_per_applicant"],
            name="expected loss per applicant",
            line={"color": "#495057", "dash": "dot"},
            yaxis="y2",
        )
    )
    fig.add_vline(x=threshold, line_color="#333333", line_width=1)
    fig.update_layout(
        template=TEMPLATE,
        title=title,
        xaxis_title="PD threshold (reject at or above)",
        yaxis={"title": "share", "range": [0, 1.02]},
        yaxis2={"title": "expected loss per applicant", "overlaying": "y", "side": "right"},
        height=380,
        legend={"orientation": "h", "y": -0.25},
    )
    return fig


def pd_histogram(pd_values: np.ndarray, threshold: float, *, title: str | None = None) -> go.Figure:
    """Distribution of PDs in a batch with the decision threshold."""
    # Binned here so a batch of any size sends 50 bars to the browser, not every score.
    counts, edges = np.histogram(np.asarray(pd_values, dtype=np.float64), bins=50, range=(0.0, 1.0))
    fig = go.Figure(
        go.Bar(
            x=(edges[:-1] + edges[1:]) / 2,
            y=counts,
            width=edges[1] - edges[0],
            marker_color=NEGATIVE,
            hovertemplate="PD %{x:.2f}: %{y} applicants<extra></extra>",
        )
    )
    fig.add_vline(x=threshold, line_color=POSITIVE, annotation_text="threshold")
    fig.update_layout(
        template=TEMPLATE,
        title=title,
        xaxis_title="probability of default",
        yaxis_title="applicants",
        height=300,
    )
    return fig
