"""Image explanations on a hand-made 'model' and timm's tiny test network: SHAP heat-maps add up and
point at the evidence, Grad-CAM leaves the model as it was, faithfulness tells a right map from a wrong
one."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from lucid.core.errors import InvalidInputError
from lucid.explain.explanation import additivity_error, make_explanation
from lucid.explain.image import blur_image, faithfulness, gradcam, shap_heatmap
from lucid.imaging.preprocess import ImagePreprocessing

SIZE = 32


def _left_bright_predict(views: np.ndarray) -> np.ndarray:
    """Two-class 'model': class 1's probability rises with the brightness of the image's left half."""
    views = np.asarray(views, dtype=np.float64)
    half = views.shape[2] // 2
    score = (views[:, :, :half, :].mean(axis=(1, 2, 3)) - 128.0) / 20.0
    p1 = 1.0 / (1.0 + np.exp(-score))
    return np.stack([1 - p1, p1], axis=1).astype(np.float32)


def _left_bright_view() -> np.ndarray:
    rng = np.random.default_rng(0)
    view = rng.integers(0, 40, (SIZE, SIZE, 3)).astype(np.uint8)
    view[4:28, 2:14] = 255  # a bright object on the left, with texture so blurring changes it
    view[8:24:2, 4:12] = 0
    return view


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return timm.create_model("test_efficientnet", pretrained=False, num_classes=3).eval()


def test_shap_heatmap_adds_up_and_points_at_the_evidence():
    view = _left_bright_view()
    expl = shap_heatmap(_left_bright_predict, view, 1, max_evals=80, batch_size=40, class_name="bright left")
    values = np.asarray(expl.values)
    assert values.shape == (SIZE, SIZE)
    flat = make_explanation(values.reshape(1, -1), [float(expl.base_values)])
    assert additivity_error(flat, _left_bright_predict(view[None])[:, 1]) < 1e-4
    # The right half does not enter the model: its attribution is (almost) nil.
    assert np.abs(values[:, SIZE // 2 :]).sum() < 0.05 * np.abs(values[:, : SIZE // 2]).sum()
    assert expl.output_names == "bright left"


def test_faithfulness_prefers_the_right_map():
    view = _left_bright_view()
    good = np.zeros((SIZE, SIZE))
    good[4:28, 2:14] = 1.0
    bad = np.zeros((SIZE, SIZE))
    bad[:, SIZE // 2 :] = 1.0  # all attribution on the half the model ignores
    good_scores = faithfulness(_left_bright_predict, view, good, 1, fractions=(0.1, 0.2), cells=8)
    bad_scores = faithfulness(_left_bright_predict, view, bad, 1, fractions=(0.1, 0.2), cells=8)
    for g, b in zip(good_scores, bad_scores, strict=True):
        assert g.top_drop > 0.02 and g.top_drop > g.random_drop + 0.02
        assert g.score > 0
        assert b.top_drop == pytest.approx(0.0, abs=1e-6) and b.score < g.score - 0.02
    assert good_scores[1].top_drop >= good_scores[0].top_drop
    with pytest.raises(InvalidInputError, match="must match"):
        faithfulness(_left_bright_predict, view, good[:10], 1)


def test_blur_removes_detail():
    view = _left_bright_view()
    blurred = blur_image(view)
    assert blurred.shape == view.shape
    assert blurred.std() < view.std()


def test_gradcam_map_and_model_left_unchanged(tiny_model):
    prep = ImagePreprocessing.from_model(tiny_model, input_size=(3, 48, 48))
    view = prep.view(Image.fromarray(_left_bright_view()))
    flags = [p.requires_grad for p in tiny_model.parameters()]
    cam = gradcam(tiny_model, prep, view, 1, layer="bn2", device="cpu")
    values = np.asarray(cam.values)
    assert values.shape == (48, 48)
    assert values.min() >= 0.0 and values.max() == pytest.approx(1.0) or values.max() == 0.0
    assert [p.requires_grad for p in tiny_model.parameters()] == flags
    assert all(p.grad is None for p in tiny_model.parameters())
    with pytest.raises(InvalidInputError, match="no layer"):
        gradcam(tiny_model, prep, view, 1, layer="no_such_layer", device="cpu")
