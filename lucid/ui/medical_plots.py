"""Figures of the medical page: class probabilities, and a scan as an image with no heat-map."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import shap

from lucid.ui.plots import TEMPLATE


def probability_figure(probs: pd.Series) -> go.Figure:
    """Horizontal bars of the class probabilities on a 0-1 axis."""
    fig = go.Figure(go.Bar(x=probs.values, y=list(probs.index), orientation="h", marker_color="#1f77b4"))
    fig.update_layout(
        template=TEMPLATE, xaxis={"range": [0, 1], "title": "probability"}, height=80 + 40 * len(probs)
    )
    return fig


def plain_image(image: np.ndarray) -> shap.Explanation:
    """The image alone (an all-zero map), to show in a report with the same figure builder as the maps."""
    return shap.Explanation(values=np.zeros(image.shape[:2], dtype=np.float32), base_values=0.0, data=image)


def heatmap_table(shap_map: shap.Explanation, cam: shap.Explanation) -> pd.DataFrame:
    """One row per pixel of the model's view: its SHAP value and its Grad-CAM weight."""
    rows, cols = shap_map.values.shape
    return pd.DataFrame(
        {
            "row": np.repeat(np.arange(rows), cols),
            "col": np.tile(np.arange(cols), rows),
            "shap": shap_map.values.reshape(-1),
            "gradcam": cam.values.reshape(-1),
        }
    )
