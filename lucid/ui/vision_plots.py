"""Plotly figures for the Vision page (no Streamlit here, so the report uses the same figures)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go

from lucid.ui.plots import POSITIVE, TEMPLATE, confusion_matrix


def top_classes_bar(top: Sequence[tuple[int, str, float]], *, title: str | None = None) -> go.Figure:
    """Horizontal bars of the most likely classes and their probabilities, most likely at the top."""
    if not top:
        raise ValueError("top_classes_bar() needs at least one (index, name, probability) entry.")
    names = [html.escape(str(name)) for _, name, _ in top][::-1]
    probs = [float(p) for _, _, p in top][::-1]
    fig = go.Figure(
        go.Bar(
            x=probs,
            y=names,
            orientation="h",
            marker_color=POSITIVE,
            text=[f"{p:.1%}" for p in probs],
            textposition="outside",
            hovertemplate="%{y}: %{x:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        template=TEMPLATE,
        title=title,
        xaxis={"title": "probability", "range": [0, 1.12]},
        height=max(220, 40 * len(names) + 80),
        margin={"l": 10, "r": 20, "t": 40 if title else 10, "b": 40},
    )
    return fig


def confusion_matrix_figure(
    metrics: dict[str, Any], *, title: str | None = "Confusion matrix (test images)"
) -> go.Figure:
    """Counts of true class (rows) against predicted class (columns), from ``classification_metrics``."""
    return confusion_matrix(metrics["confusion_matrix"], metrics["class_names"], title=title)


def training_history_figure(history: Sequence[dict[str, float]], *, title: str | None = None) -> go.Figure:
    """Training loss and train/validation accuracy per epoch."""
    epochs = [int(h["epoch"]) for h in history]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(x=epochs, y=[h["train_loss"] for h in history], name="training loss", yaxis="y2")
    )
    fig.add_trace(go.Scatter(x=epochs, y=[h["train_accuracy"] for h in history], name="training accuracy"))
    fig.add_trace(go.Scatter(x=epochs, y=[h["val_accuracy"] for h in history], name="validation accuracy"))
    fig.update_layout(
        template=TEMPLATE,
        title=title,
        xaxis={"title": "epoch", "dtick": 1},
        yaxis={"title": "accuracy", "range": [0, 1.02]},
        yaxis2={"title": "loss", "overlaying": "y", "side": "right", "showgrid": False},
        height=340,
        legend={"orientation": "h", "y": -0.25},
    )
    return fig
