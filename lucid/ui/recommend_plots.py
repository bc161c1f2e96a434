"""Plotly figures specific to the recommendation page (no Streamlit here)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from lucid.ui.plots import NEGATIVE, POSITIVE, TEMPLATE, metric_bars

RANKING_METRICS = ("precision@10", "recall@10", "ndcg@10", "map@10", "hit_rate@10", "coverage@10")


def metrics_comparison(metrics_table: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Grouped bars of the ranking metrics (0-1 scale) for each system of a metrics table.

    Args:
        metrics_table: a ``metric`` column and one column per system (as ``Recommender.metrics_table``).
    """
    if "metric" not in metrics_table.columns:
        raise ValueError("metrics_comparison() needs a 'metric' column.")
    rows = metrics_table.set_index("metric").reindex(
        [m for m in RANKING_METRICS if m in set(metrics_table["metric"])]
    )
    fig = metric_bars(list(rows.index), {col: rows[col].tolist() for col in rows.columns}, title=title)
    fig.update_layout(yaxis_title="score on held-out interactions (higher is better)")
    return fig


def popularity_bias(frame: pd.DataFrame, *, title: str | None = None, max_items: int = 400) -> go.Figure:
    """How often each item is recommended, against its popularity rank, for the model and the baseline.

    Args:
        frame: columns ``popularity rank``, ``title``, ``users`` and one count column per system
            (``full model``, ``popularity``), as ``Recommender.popularity_bias`` returns.
        max_items: items shown (the most popular first; the long tail beyond gets no recommendations
            from the baseline and few from the model).
    """
    required = {"popularity rank", "title", "users", "full model", "popularity"}
    if not required <= set(frame.columns):
        raise ValueError(f"popularity_bias() needs the columns {sorted(required)}.")
    shown = frame.sort_values("popularity rank").head(max_items)
    fig = go.Figure()
    for column, colour in (("popularity", NEGATIVE), ("full model", POSITIVE)):
        fig.add_trace(
            go.Scatter(
                x=shown["popularity rank"],
                y=shown[column],
                mode="markers",
                name=f"{column} (recommended to how many users)",
                marker={"color": colour, "size": 6, "opacity": 0.7},
                customdata=np.stack([shown["title"].astype(str), shown["users"]], axis=1),
                hovertemplate="%{customdata[0]}<br>popularity rank %{x} (%{customdata[1]} users)"
                "<br>recommended to %{y} users<extra></extra>",
            )
        )
    total = frame[["full model", "popularity"]].sum()
    head = (
        frame.sort_values("popularity rank")
        .head(max(1, len(frame) // 10))[["full model", "popularity"]]
        .sum()
    )
    share = (head / total.replace(0, np.nan)).fillna(0)
    fig.update_layout(
        template=TEMPLATE,
        title=title,
        xaxis_title="item popularity rank (1 = most users have it)",
        yaxis_title="users it is recommended to",
        height=420,
        legend={"orientation": "h", "y": -0.2},
        annotations=[
            {
                "text": (
                    f"Top 10% most popular items get {share['full model']:.0%} of the model's "
                    f"recommendations and {share['popularity']:.0%} of the baseline's"
                ),
                "xref": "paper",
                "yref": "paper",
                "x": 1,
                "y": 1.08,
                "showarrow": False,
                "xanchor": "right",
            }
        ],
    )
    return fig


def similar_items_bar(table: pd.DataFrame, *, title: str | None = None) -> go.Figure:
    """Horizontal bars of item-item similarity (``title`` and ``similarity`` columns), best at the top."""
    if not {"title", "similarity"} <= set(table.columns):
        raise ValueError("similar_items_bar() needs 'title' and 'similarity' columns.")
    rows = table.iloc[::-1]
    fig = go.Figure(
        go.Bar(
            x=rows["similarity"],
            y=rows["title"].astype(str),
            orientation="h",
            marker_color=POSITIVE,
            hovertemplate="%{y}: %{x:.3f}<extra></extra>",
        )
    )
    fig.update_layout(
        template=TEMPLATE,
        title=title,
        xaxis_title="similarity (cosine over the users who chose both)",
        height=max(280, 28 * len(rows) + 100),
        margin={"l": 10, "r": 20, "t": 50 if title else 20, "b": 40},
    )
    return fig
