"""Where a medical classifier looked: Grad-CAM, a SHAP heat-map and a faithfulness score.

A thin adapter over a :class:`ImageClassifier` (any torch model with its own preprocessing, a
Grad-CAM layer and class names), so the phydcm ports and the fine-tuned timm models are explained
the same way. Results are :class:`shap.Explanation` objects whose ``data`` is the image the model
saw (H x W x 3 uint8) and whose ``values`` are an H x W map, ready for ``ui.plots.image_overlay``.

Example:
    >>> cam = gradcam(classifier, image, class_index=2)
    >>> heat = shap_heatmap(classifier, image, class_index=2, max_evals=300)
    >>> score = faithfulness(classifier, image, heat, class_index=2)
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import shap
import torch
import torch.nn.functional as F
from torch import nn

from services.explain import check_additivity, make_explanation

#: Torch modules are not safe to run from several threads at once with hooks attached.
_LOCK = threading.RLock()


@dataclass
class ImageClassifier:
    """A loaded classifier with everything needed to run and explain it.

    Attributes:
        model: the torch module (eval mode) returning logits.
        classes: class names in output order.
        input_size: square side the model takes.
        mean, std: per-channel normalisation applied after scaling to [0, 1].
        target_layer: module whose activations Grad-CAM weighs.
        temperature: logits are divided by it before the softmax (1 = uncalibrated).
        calibrated: the temperature was fitted on held-out data.
        device: where the model runs.
    """

    model: nn.Module
    classes: list[str]
    input_size: int
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    target_layer: nn.Module | None = None
    temperature: float = 1.0
    calibrated: bool = False
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    def resize(self, image: np.ndarray) -> np.ndarray:
        """The H x W x 3 uint8 image at the model's input size (bilinear, no antialiasing)."""
        x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None]
        x = F.interpolate(x, size=(self.input_size,) * 2, mode="bilinear", align_corners=False)
        return x[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy()

    def to_tensor(self, batch: np.ndarray) -> torch.Tensor:
        """N x H x W x 3 images in 0-255 (already at input size) -> normalised N x 3 x S x S tensor."""
        x = torch.as_tensor(np.asarray(batch, dtype=np.float32)).permute(0, 3, 1, 2) / 255.0
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            x = F.interpolate(x, size=(self.input_size,) * 2, mode="bilinear", align_corners=False)
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        return ((x - mean) / std).to(self.device)

    def probabilities(self, batch: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """Softmax probabilities (N x classes, float32 on the CPU) for images at input size."""
        out = []
        with _LOCK, torch.inference_mode():
            for start in range(0, len(batch), batch_size):
                logits = self.model(self.to_tensor(batch[start : start + batch_size])).float()
                out.append(torch.softmax(logits / self.temperature, dim=1).cpu().numpy())
        return np.concatenate(out).astype(np.float32)


def gradcam(classifier: ImageClassifier, image: np.ndarray, class_index: int) -> shap.Explanation:
    """Grad-CAM of one class on one image (already at the model's input size).

    Returns:
        An Explanation whose values are the non-negative map in [0, 1] (H x W) and whose data is
        the image. Grad-CAM maps are not additive; ``base_values`` is 0.
    """
    if classifier.target_layer is None:
        raise ValueError("This classifier has no Grad-CAM layer.")
    store: dict[str, torch.Tensor] = {}

    def keep(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
        output.retain_grad()
        store["act"] = output

    with _LOCK:
        handle = classifier.target_layer.register_forward_hook(keep)
        try:
            with torch.enable_grad():
                x = classifier.to_tensor(image[None]).requires_grad_(True)
                logits = classifier.model(x)
                classifier.model.zero_grad(set_to_none=True)
                logits[0, class_index].backward()
            act = store["act"].detach()
            grad = store["act"].grad.detach()
        finally:
            handle.remove()
    weights = grad.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * act).sum(dim=1, keepdim=True)).float()
    cam = F.interpolate(cam, size=image.shape[:2], mode="bilinear", align_corners=False)[0, 0]
    cam = cam.cpu().numpy()
    top = float(cam.max())
    cam = cam / top if top > 0 else cam
    return _map_explanation(cam, 0.0, image, classifier.classes[class_index])


def _map_explanation(values: np.ndarray, base: float, image: np.ndarray, name: str) -> shap.Explanation:
    """An Explanation of one image: an H x W map, a scalar base value, the image as data."""
    return shap.Explanation(
        values=np.asarray(values, dtype=np.float32), base_values=float(base), data=image, output_names=name
    )


def _class_function(classifier: ImageClassifier, class_index: int) -> Callable[[np.ndarray], np.ndarray]:
    def f(batch: np.ndarray) -> np.ndarray:
        return classifier.probabilities(np.asarray(batch))[:, class_index]

    return f


def shap_heatmap(
    classifier: ImageClassifier,
    image: np.ndarray,
    class_index: int,
    *,
    max_evals: int = 300,
    batch_size: int = 50,
    background: float = 0.0,
) -> shap.Explanation:
    """SHAP values of one class probability over image regions (Partition explainer, image masker).

    Hidden regions are replaced by ``background`` (black: outside the body on most scans). The
    values add up exactly to ``p(class | image) - p(class | all hidden)``; this is checked.

    Returns:
        An Explanation with values H x W (summed over colour channels), ``base_values`` the
        probability with everything hidden, and ``data`` the image.
    """
    f = _class_function(classifier, class_index)
    masker = shap.maskers.Image(np.full(image.shape, background, dtype=np.float32), image.shape)
    explainer = shap.Explainer(f, masker, algorithm="partition")
    with np.errstate(all="ignore"):
        result = explainer(
            image[None].astype(np.float32), max_evals=max_evals, batch_size=batch_size, silent=True
        )
    values = np.asarray(result.values, dtype=np.float64)[0].sum(axis=-1)
    base = float(np.asarray(result.base_values).reshape(-1)[0])
    check_additivity(make_explanation(values.reshape(1, -1), np.array([base])), f(image[None]), atol=1e-3)
    return _map_explanation(values, base, image, classifier.classes[class_index])


def faithfulness(
    classifier: ImageClassifier,
    image: np.ndarray,
    explanation: shap.Explanation,
    class_index: int,
    *,
    fractions: tuple[float, ...] = (0.1, 0.2, 0.3),
    grid: int = 8,
    background: float = 0.0,
    repeats: int = 3,
    seed: int = 0,
) -> dict[str, float | list[float]]:
    """A deletion test on a ``grid`` x ``grid`` raster of cells: hiding the cells the map ranks most
    important should lower the class probability more than hiding as many random cells.

    Returns:
        ``score`` = mean over ``fractions`` of (p after random deletion - p after top deletion),
        divided by the original probability: about 0 means no better than chance, positive means
        the map points at what the model uses (at most 1). Also the two deletion curves.
    """
    heat = np.asarray(explanation.values, dtype=np.float64)
    if heat.ndim == 3:
        heat = heat.sum(axis=-1)
    if heat.shape != image.shape[:2]:
        raise ValueError("The explanation's map must match the image size.")
    h, w = heat.shape
    rows = np.minimum(np.arange(h) * grid // h, grid - 1)
    cols = np.minimum(np.arange(w) * grid // w, grid - 1)
    cell_of = rows[:, None] * grid + cols[None, :]
    cell_score = np.bincount(cell_of.ravel(), weights=heat.ravel(), minlength=grid * grid)
    order_top = np.argsort(-cell_score, kind="stable")
    rng = np.random.default_rng(seed)
    orders = [order_top] + [rng.permutation(grid * grid) for _ in range(repeats)]
    batch = [image]
    for order in orders:
        for frac in fractions:
            hidden = np.isin(cell_of, order[: max(1, int(round(frac * grid * grid)))])
            masked = image.copy()
            masked[hidden] = background
            batch.append(masked)
    probs = _class_function(classifier, class_index)(np.stack(batch))
    p0, k = float(probs[0]), len(fractions)
    top = probs[1 : 1 + k]
    rand = probs[1 + k :].reshape(repeats, k).mean(axis=0)
    score = float(np.mean(rand - top) / max(p0, 1e-6))
    return {
        "score": score,
        "original_probability": p0,
        "top_deletion": [float(v) for v in top],
        "random_deletion": [float(v) for v in rand],
        "fractions": list(fractions),
    }
