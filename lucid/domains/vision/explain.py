"""Explanations of one image: SHAP and Grad-CAM heat-maps for one class, with their faithfulness scores.

Example:
    >>> from lucid.domains.vision.explain import explain_image
    >>> result = explain_image(classifier, photo, layer="bn2", max_evals=300)
    >>> result.class_name, result.faithfulness_table()
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import shap
from PIL import Image

from lucid.core.errors import InvalidInputError
from lucid.explain.image import FaithfulnessScore, faithfulness, gradcam, patch_grid, shap_heatmap
from lucid.imaging.classifier import ImageClassifier, top_k_from_probabilities

#: Model evaluations for one SHAP heat-map on the page: 2.2-3.4 s on two CPU cores computing in
#: bfloat16 (docs/vision.md). At 200 the top 20% of the chelsea photo was, on a CPU without AMX, no
#: more telling than random regions (faithfulness -0.054); at 300 every sample photo scored above
#: random at 10% and 20%.
DEFAULT_SHAP_EVALS = 300


@dataclass
class ImageExplanation:
    """SHAP and Grad-CAM maps of one image for one class, with their faithfulness scores."""

    class_index: int
    class_name: str
    probability: float
    top5: list[tuple[int, str, float]]
    shap: shap.Explanation
    gradcam: shap.Explanation
    shap_faithfulness: list[FaithfulnessScore]
    gradcam_faithfulness: list[FaithfulnessScore]
    shap_seconds: float
    gradcam_seconds: float

    def faithfulness_table(self) -> pd.DataFrame:
        """One row per (method, share blurred): probabilities and drops against random regions."""
        rows = []
        for method, scores in (("SHAP", self.shap_faithfulness), ("Grad-CAM", self.gradcam_faithfulness)):
            for s in scores:
                rows.append(
                    {
                        "method": method,
                        "share blurred": f"{s.fraction:.0%}",
                        "probability": s.original,
                        "after blurring top regions": s.top_blurred,
                        "after blurring random regions": s.random_blurred,
                        "drop (top)": s.top_drop,
                        "drop (random)": s.random_drop,
                        "faithfulness (top - random)": s.score,
                    }
                )
        return pd.DataFrame(rows)

    def region_table(self, cells: int = 7) -> pd.DataFrame:
        """SHAP value summed per square region (``cells`` along each side): the map as numbers."""
        values = np.asarray(self.shap.values, dtype=np.float64)
        ids, n = patch_grid(values.shape, cells)
        sums = np.bincount(ids.ravel(), weights=values.ravel(), minlength=n)
        cols = int(ids[0].max()) + 1
        return pd.DataFrame(
            {
                "region row": np.arange(n) // cols + 1,
                "region column": np.arange(n) % cols + 1,
                "SHAP value": sums,
            }
        )


def explain_image(
    clf: ImageClassifier,
    image: Image.Image | np.ndarray,
    *,
    layer: str,
    class_index: int | None = None,
    max_evals: int = DEFAULT_SHAP_EVALS,
    fractions: Sequence[float] = (0.1, 0.2),
) -> ImageExplanation:
    """SHAP and Grad-CAM heat-maps for one image and one class (default: the top class).

    Both maps come with faithfulness scores: the class probability's fall when the top 10% / 20%
    of the image by attribution is blurred, against random regions of the same size.

    Args:
        clf: the classifier.
        image: the image (any size; it is preprocessed to the model's view).
        layer: the module Grad-CAM reads (the last convolutional stage).
        class_index: the class to explain; ``None`` for the top class.
        max_evals: SHAP's budget of model calls.
        fractions: the shares of the image blurred for the faithfulness scores.

    Raises:
        InvalidInputError: ``class_index`` is not one of the model's classes.
    """
    view = clf.preprocessing.view(image)
    probs = clf.predict_views(view[None])[0]
    top5 = top_k_from_probabilities(probs[None], clf.class_names, 5)[0]
    k = int(top5[0][0]) if class_index is None else int(class_index)
    if not 0 <= k < len(clf.class_names):
        raise InvalidInputError(f"Class index {k} is out of range (0-{len(clf.class_names) - 1}).")
    name = clf.class_names[k]
    t0 = time.perf_counter()
    shap_map = shap_heatmap(clf.predict_views, view, k, max_evals=max_evals, class_name=name)
    t1 = time.perf_counter()
    cam = gradcam(
        clf.model,
        clf.preprocessing,
        view,
        k,
        layer=layer,
        device=clf.device,
        lock=clf.lock,
        class_name=name,
    )
    t2 = time.perf_counter()
    return ImageExplanation(
        class_index=k,
        class_name=name,
        probability=float(probs[k]),
        top5=top5,
        shap=shap_map,
        gradcam=cam,
        shap_faithfulness=faithfulness(clf.predict_views, view, shap_map.values, k, fractions=fractions),
        gradcam_faithfulness=faithfulness(clf.predict_views, view, cam.values, k, fractions=fractions),
        shap_seconds=t1 - t0,
        gradcam_seconds=t2 - t1,
    )
