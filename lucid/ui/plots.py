"""Plotly figure builders for SHAP explanations.

Every builder takes a :class:`shap.Explanation` and returns a :class:`plotly.graph_objects.Figure`
(or, for text, escaped HTML); anything else raises ``TypeError``. No Streamlit here, so the same
figures go into pages and into the HTML report.

Colours follow SHAP's convention: red pushes the output up, blue pushes it down.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import shap

POSITIVE = "#d62728"
NEGATIVE = "#1f77b4"
TEMPLATE = "plotly_white"


def _require(explanation: object) -> shap.Explanation:
    if not isinstance(explanation, shap.Explanation):
        raise TypeError(f"Expected a shap.Explanation, got {type(explanation).__name__}")
    return explanation


def _names(explanation: shap.Explanation, n: int) -> list[str]:
    names = explanation.feature_names
    if names is None:
        return [f"feature {i}" for i in range(n)]
    return [str(x) for x in (names if not isinstance(names, str) else [names])]


def _format_value(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, (float, np.floating)):
        if np.isnan(value):
            return "missing"
        return f"{value:,.4g}"
    return str(value)


def waterfall(
    explanation: shap.Explanation,
    *,
    max_display: int = 10,
    units: str = "model output",
    title: str | None = None,
) -> go.Figure:
    """Waterfall of one row: base value, the strongest contributions, the rest grouped, the output.

    Args:
        explanation: one row (1-D values).
        max_display: features shown individually; the others are summed into one bar.
        units: what the axis measures (e.g. "log-odds of default"), shown on the axis.
    """
    expl = _require(explanation)
    values = np.asarray(expl.values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError("waterfall() needs one row: index the Explanation first, e.g. expl[0].")
    base = float(np.asarray(expl.base_values, dtype=np.float64).reshape(-1)[0])
    names = _names(expl, len(values))
    data = expl.data if expl.data is not None else [None] * len(values)
    order = np.argsort(-np.abs(values), kind="stable")
    shown = order[:max_display]
    rest = order[max_display:]
    labels, measures, ys = ["Base value"], ["absolute"], [base]
    # Smallest first so the strongest contribution sits just below the total.
    for i in shown[::-1]:
        value_text = _format_value(data[i])
        labels.append(f"{names[i]} = {value_text}" if value_text != "" else names[i])
        measures.append("relative")
        ys.append(float(values[i]))
    if len(rest):
        labels.insert(1, f"{len(rest)} other features")
        measures.insert(1, "relative")
        ys.insert(1, float(values[rest].sum()))
    labels.append("Output")
    measures.append("total")
    ys.append(base + float(values.sum()))
    fig = go.Figure(
        go.Waterfall(
            orientation="h",
            y=labels,
            x=ys,
            measure=measures,
            increasing={"marker": {"color": POSITIVE}},
            decreasing={"marker": {"color": NEGATIVE}},
            totals={"marker": {"color": "#7f7f7f"}},
            text=[f"{v:+.3f}" if m == "relative" else f"{v:.3f}" for v, m in zip(ys, measures, strict=False)],
            textposition="outside",
            connector={"line": {"color": "#bbbbbb"}},
        )
    )
    fig.update_layout(
        template=TEMPLATE,
        title=title,
        xaxis_title=units,
        height=max(320, 34 * len(labels) + 120),
        margin={"l": 10, "r": 40, "t": 50 if title else 20, "b": 40},
        showlegend=False,
    )
    return fig


def importance_bar(
    explanation: shap.Explanation, *, max_display: int = 15, title: str | None = None
) -> go.Figure:
    """Global importance: mean |SHAP| per feature over the rows, largest at the top."""
    expl = _require(explanation)
    values = np.asarray(expl.values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError("importance_bar() needs a 2-D explanation (rows x features).")
    names = _names(expl, values.shape[1])
    mean_abs = np.abs(values).mean(axis=0)
    order = np.argsort(-mean_abs, kind="stable")[:max_display][::-1]
    fig = go.Figure(
        go.Bar(
            x=mean_abs[order],
            y=[names[i] for i in order],
            orientation="h",
            marker_color=POSITIVE,
            hovertemplate="%{y}: %{x:.4f}<extra></extra>",
        )
    )
    fig.update_layout(
        template=TEMPLATE,
        title=title,
        xaxis_title="mean |SHAP value| (average impact on the output)",
        height=max(300, 26 * len(order) + 100),
        margin={"l": 10, "r": 20, "t": 50 if title else 20, "b": 40},
    )
    return fig


def _numeric_column(data: np.ndarray | None, j: int, n: int) -> np.ndarray:
    if data is None:
        return np.full(n, np.nan)
    column = np.asarray(data)[:, j] if np.asarray(data).ndim == 2 else np.full(n, np.nan)
    try:
        return column.astype(np.float64)
    except (TypeError, ValueError):
        # Categories: colour by code so equal values share a colour.
        codes = {v: k for k, v in enumerate(sorted({str(x) for x in column}))}
        return np.array([codes[str(x)] for x in column], dtype=np.float64)


def beeswarm(
    explanation: shap.Explanation, *, max_display: int = 12, title: str | None = None, seed: int = 0
) -> go.Figure:
    """One row of dots per feature (SHAP value on x), coloured by the feature's value (low blue, high red)."""
    expl = _require(explanation)
    values = np.asarray(expl.values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError("beeswarm() needs a 2-D explanation (rows x features).")
    n, m = values.shape
    names = _names(expl, m)
    order = np.argsort(-np.abs(values).mean(axis=0), kind="stable")[:max_display]
    rng = np.random.default_rng(seed)
    fig = go.Figure()
    for rank, j in enumerate(order[::-1]):
        colour = _numeric_column(expl.data, j, n)
        finite = np.isfinite(colour)
        lo, hi = (np.nanpercentile(colour, 5), np.nanpercentile(colour, 95)) if finite.any() else (0.0, 1.0)
        scaled = np.clip((colour - lo) / (hi - lo), 0, 1) if hi > lo else np.full(n, 0.5)
        raw = (
            np.asarray(expl.data)[:, j]
            if expl.data is not None and np.asarray(expl.data).ndim == 2
            else [""] * n
        )
        fig.add_trace(
            go.Scatter(
                x=values[:, j],
                y=rank + rng.uniform(-0.3, 0.3, size=n),
                mode="markers",
                name=names[j],
                marker={
                    "size": 5,
                    "color": np.where(finite, scaled, 0.5),
                    "colorscale": [[0, NEGATIVE], [1, POSITIVE]],
                    "cmin": 0,
                    "cmax": 1,
                    "opacity": 0.7,
                    "showscale": rank == len(order) - 1,
                    "colorbar": {"title": "feature value", "tickvals": [0, 1], "ticktext": ["low", "high"]},
                },
                customdata=[_format_value(v) for v in raw],
                hovertemplate=f"{html.escape(names[j])} = %{{customdata}}<br>SHAP %{{x:.4f}}<extra></extra>",
                showlegend=False,
            )
        )
    fig.update_layout(
        template=TEMPLATE,
        title=title,
        xaxis_title="SHAP value (impact on the output)",
        yaxis={"tickvals": list(range(len(order))), "ticktext": [names[j] for j in order[::-1]]},
        height=max(320, 34 * len(order) + 100),
        margin={"l": 10, "r": 20, "t": 50 if title else 20, "b": 40},
    )
    fig.add_vline(x=0, line_color="#999999", line_width=1)
    return fig


def dependence(explanation: shap.Explanation, feature: str | int, *, title: str | None = None) -> go.Figure:
    """SHAP value of one feature against its value, one dot per row."""
    expl = _require(explanation)
    values = np.asarray(expl.values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError("dependence() needs a 2-D explanation (rows x features).")
    names = _names(expl, values.shape[1])
    j = names.index(feature) if isinstance(feature, str) else int(feature)
    x = np.asarray(expl.data)[:, j] if expl.data is not None else np.arange(values.shape[0])
    fig = go.Figure(
        go.Scatter(
            x=x,
            y=values[:, j],
            mode="markers",
            marker={
                "size": 6,
                "color": values[:, j],
                "colorscale": [[0, NEGATIVE], [1, POSITIVE]],
                "opacity": 0.7,
            },
            hovertemplate=f"{html.escape(names[j])} = %{{x}}<br>SHAP %{{y:.4f}}<extra></extra>",
        )
    )
    fig.update_layout(
        template=TEMPLATE,
        title=title,
        xaxis_title=names[j],
        yaxis_title=f"SHAP value of {names[j]}",
        height=380,
    )
    fig.add_hline(y=0, line_color="#999999", line_width=1)
    return fig


def token_bar(explanation: shap.Explanation, *, max_display: int = 12, title: str | None = None) -> go.Figure:
    """Strongest tokens/words of one text, signed (red raises the class score, blue lowers it)."""
    expl = _require(explanation)
    values = np.asarray(expl.values, dtype=np.float64).reshape(-1)
    tokens = [str(t) for t in (expl.data if expl.data is not None else _names(expl, len(values)))]
    order = np.argsort(-np.abs(values), kind="stable")[:max_display][::-1]
    fig = go.Figure(
        go.Bar(
            x=values[order],
            y=[f"{tokens[i].strip() or '␣'} (#{i})" for i in order],
            orientation="h",
            marker_color=[POSITIVE if values[i] > 0 else NEGATIVE for i in order],
            hovertemplate="%{y}: %{x:+.4f}<extra></extra>",
        )
    )
    fig.update_layout(
        template=TEMPLATE, title=title, xaxis_title="SHAP value", height=max(280, 26 * len(order) + 100)
    )
    return fig


def text_highlight_html(explanation: shap.Explanation, *, scale: float | None = None) -> str:
    """The text with each token's background tinted by its SHAP value. Every token is HTML-escaped.

    Args:
        explanation: one text; ``data`` holds the tokens (strings, with their own spacing) and
            ``values`` one SHAP value each.
        scale: the |value| that gets full colour (default: the largest |value| in the row).
    """
    expl = _require(explanation)
    values = np.asarray(expl.values, dtype=np.float64).reshape(-1)
    tokens = list(expl.data) if expl.data is not None else []
    if len(tokens) != len(values):
        raise ValueError("text_highlight_html() needs one token in .data per SHAP value.")
    top = scale or (float(np.max(np.abs(values))) if len(values) else 1.0) or 1.0
    spans = []
    for token, value in zip(tokens, values, strict=False):
        alpha = min(abs(value) / top, 1.0) * 0.85
        rgb = "214,39,40" if value > 0 else "31,119,180"
        spans.append(
            f'<span title="{value:+.4f}" style="background: rgba({rgb},{alpha:.3f}); '
            f'border-radius: 3px; padding: 1px 0">{html.escape(str(token))}</span>'
        )
    return (
        '<div class="lucid-text" style="line-height: 1.9; white-space: pre-wrap">' + "".join(spans) + "</div>"
    )


def image_overlay(
    explanation: shap.Explanation,
    *,
    opacity: float = 0.5,
    title: str | None = None,
    signed: bool = True,
) -> go.Figure:
    """The image with its attribution map laid over it.

    Args:
        explanation: ``data`` is the image (H x W x 3, uint8 or floats in [0, 1]); ``values`` is the
            map, H x W (or H x W x C, summed over channels).
        opacity: of the heat-map, 0-1.
        signed: red/blue diverging for SHAP; ``False`` for non-negative maps (Grad-CAM).
    """
    expl = _require(explanation)
    image = np.asarray(expl.data)
    heat = np.asarray(expl.values, dtype=np.float64)
    if heat.ndim == 3:
        heat = heat.sum(axis=-1)
    if image.ndim != 3 or heat.shape != image.shape[:2]:
        raise ValueError("image_overlay() needs data H x W x 3 and values H x W matching it.")
    if image.dtype != np.uint8:
        image = np.clip(image * (255.0 if image.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    fig = go.Figure(go.Image(z=image, hoverinfo="skip"))
    bound = float(np.max(np.abs(heat))) or 1.0
    colorscale: str | list[list[object]]
    if signed:
        colorscale = [[0, "rgb(31,119,180)"], [0.5, "rgba(255,255,255,0)"], [1, "rgb(214,39,40)"]]
        zmin, zmax = -bound, bound
    else:
        colorscale = "Jet"
        zmin, zmax = 0.0, bound
    fig.add_trace(
        go.Heatmap(
            z=heat,
            colorscale=colorscale,
            zmin=zmin,
            zmax=zmax,
            opacity=float(np.clip(opacity, 0, 1)),
            showscale=True,
            hovertemplate="x %{x}, y %{y}: %{z:.4f}<extra></extra>",
        )
    )
    fig.update_layout(
        template=TEMPLATE,
        title=title,
        xaxis={"visible": False},
        yaxis={"visible": False, "autorange": "reversed", "scaleanchor": "x"},
        margin={"l": 0, "r": 0, "t": 40 if title else 0, "b": 0},
        height=420,
    )
    return fig


def confusion_matrix(
    matrix: Sequence[Sequence[int]] | np.ndarray, labels: Sequence[str], *, title: str | None = None
) -> go.Figure:
    """Counts of true class (rows) against predicted class (columns), class names escaped."""
    z = np.asarray(matrix, dtype=np.int64)
    names = [html.escape(str(x)) for x in labels]
    if z.shape != (len(names), len(names)):
        raise ValueError("The confusion matrix does not match the class names.")
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=names,
            y=names,
            colorscale="Blues",
            text=z,
            texttemplate="%{text}",
            hovertemplate="true %{y}, predicted %{x}: %{z}<extra></extra>",
            showscale=False,
        )
    )
    fig.update_layout(
        template=TEMPLATE,
        title=title,
        xaxis_title="predicted class",
        yaxis={"title": "true class", "autorange": "reversed"},
        height=max(300, 60 * len(names) + 120),
        margin={"l": 10, "r": 10, "t": 50 if title else 20, "b": 40},
    )
    return fig


def metric_bars(
    names: Sequence[str], series: dict[str, Sequence[float]], *, title: str | None = None
) -> go.Figure:
    """Grouped bars of several metrics for several models (e.g. baselines against ours)."""
    fig = go.Figure([go.Bar(name=label, x=list(names), y=list(vals)) for label, vals in series.items()])
    fig.update_layout(template=TEMPLATE, barmode="group", title=title, height=380)
    return fig
