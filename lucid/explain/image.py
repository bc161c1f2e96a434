"""Explanations of image classifiers: SHAP heat-maps, Grad-CAM and a faithfulness score for any map.

Everything works on the *view* (``H x W x 3`` uint8, the image as the model sees it after resizing and
cropping) and either a ``predict`` function mapping N views to N x K class probabilities or, for
Grad-CAM, the torch module itself with an object that turns views into its input tensors (anything with
a ``to_tensor(views)`` method, e.g. :class:`lucid.imaging.preprocess.ImagePreprocessing`). Nothing here
knows about model stores or domains.

Example:
    >>> shap_map = shap_heatmap(clf.predict_views, view, k)   # shap.Explanation, values H x W
    >>> cam = gradcam(model, prep, view, k, layer="bn2")      # shap.Explanation, values in [0, 1]
    >>> scores = faithfulness(clf.predict_views, view, shap_map.values, k)  # top-10% / top-20% blur
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import shap
import torch
from PIL import Image, ImageFilter
from torch import nn

from lucid.core.device import resolve_device
from lucid.core.errors import ExplanationError, InvalidInputError
from lucid.explain.explanation import check_additivity, make_explanation

#: ``predict(views) -> probabilities``: N x H x W x 3 views (values 0-255) to N x K class probabilities.
PredictFn = Callable[[np.ndarray], np.ndarray]


class ToTensor(Protocol):
    """What Grad-CAM needs of a preprocessing: views (N x H x W x 3) to the model's input tensor."""

    def to_tensor(self, views: np.ndarray) -> torch.Tensor: ...


def blur_image(view: np.ndarray, radius: float | None = None) -> np.ndarray:
    """A strongly blurred copy of a view (Gaussian, radius ~1/16 of the shorter side): the "removed" state.

    Used both as the SHAP masker's background and to blur regions out in the faithfulness score, so
    both measure the same thing.
    """
    view = np.asarray(view, dtype=np.uint8)
    radius = float(radius) if radius is not None else max(2.0, min(view.shape[:2]) / 16.0)
    return np.asarray(Image.fromarray(view).filter(ImageFilter.GaussianBlur(radius)), dtype=np.uint8)


def _image_explanation(values: np.ndarray, base: float, view: np.ndarray, name: str) -> shap.Explanation:
    """One image's map as an Explanation: values H x W float32, a scalar base value, the view as data."""
    return shap.Explanation(
        values=np.asarray(values, dtype=np.float32),
        base_values=float(base),
        data=np.asarray(view, dtype=np.uint8),
        output_names=name,
    )


def _class_output(predict: PredictFn, class_index: int) -> Callable[[np.ndarray], np.ndarray]:
    def output(batch: np.ndarray) -> np.ndarray:
        probs = np.asarray(predict(np.asarray(batch)), dtype=np.float64)
        if class_index >= probs.shape[1]:
            raise InvalidInputError(
                f"Class index {class_index} is out of range (the model has {probs.shape[1]})."
            )
        return probs[:, class_index]

    return output


def shap_heatmap(
    predict: PredictFn,
    view: np.ndarray,
    class_index: int,
    *,
    max_evals: int = 300,
    batch_size: int = 64,
    blur_radius: float | None = None,
    class_name: str | None = None,
    check: bool = True,
) -> shap.Explanation:
    """SHAP values of one class's probability over the image's regions (shap's Partition explainer).

    shap's image masker splits the view into a hierarchy of rectangles and replaces the masked
    ones with a blurred copy of the image; ``max_evals`` model calls set how fine the regions get.
    The values are summed over the colour channels.

    Args:
        predict: maps N x H x W x 3 views (values 0-255) to N x K probabilities.
        view: H x W x 3 uint8, as from ``ImagePreprocessing.view``.
        class_index: the class explained.
        max_evals: model evaluations (more = finer regions, slower).
        batch_size: masked images per model call.
        blur_radius: of the background; default 1/16 of the shorter side.
        class_name: shown as the explanation's output name.
        check: verify that the values add up to f(view) - f(blurred), else raise.

    Returns:
        ``shap.Explanation`` with ``values`` H x W (float32), ``base_values`` the probability of the
        fully blurred image, ``data`` the view, ``output_names`` the class name.

    Raises:
        ExplanationError: the additivity check failed.
    """
    view = np.asarray(view, dtype=np.uint8)
    if view.ndim != 3 or view.shape[-1] != 3:
        raise InvalidInputError(f"Expected an H x W x 3 image, got shape {view.shape}.")
    background = blur_image(view, blur_radius).astype(np.float32)
    masker = shap.maskers.Image(background, view.shape)
    output = _class_output(predict, int(class_index))
    explainer = shap.PartitionExplainer(output, masker)
    result = explainer(
        view[None].astype(np.float32), max_evals=int(max_evals), batch_size=int(batch_size), silent=True
    )
    values = np.asarray(result.values[0], dtype=np.float64).reshape(view.shape).sum(axis=-1)
    base = float(np.asarray(result.base_values).reshape(-1)[0])
    explanation = _image_explanation(values, base, view, class_name or f"class {int(class_index)}")
    if check:
        target = float(output(view[None].astype(np.float32))[0])
        flat = make_explanation(values.reshape(1, -1), np.array([base]))  # one row of H*W features
        check_additivity(flat, np.array([target]), atol=1e-3)
    return explanation


def _resolve_layer(model: nn.Module, layer: str | nn.Module) -> nn.Module:
    if isinstance(layer, nn.Module):
        return layer
    modules = dict(model.named_modules())
    if layer not in modules:
        convs = [n for n, m in modules.items() if isinstance(m, nn.Conv2d)]
        raise InvalidInputError(
            f"The model has no layer '{layer}'. Its last conv layers: {', '.join(convs[-3:])}."
        )
    return modules[layer]


def gradcam(
    model: nn.Module,
    preprocessing: ToTensor,
    view: np.ndarray,
    class_index: int,
    *,
    layer: str | nn.Module,
    device: torch.device | str | None = None,
    lock: threading.RLock | None = None,
    class_name: str | None = None,
) -> shap.Explanation:
    """Grad-CAM of one class on a chosen convolutional layer, up-sampled to the view.

    The layer's activations are weighted by the spatial mean of the class logit's gradient,
    summed over channels, passed through ReLU and scaled to [0, 1].

    Args:
        model: the torch classifier (returns logits).
        preprocessing: turns views into the model's input (e.g. an ``ImagePreprocessing``).
        view: H x W x 3 uint8.
        class_index: the class explained.
        layer: module name (e.g. ``"bn2"``, the last conv stage of timm EfficientNets) or the module.
        device: default :func:`lucid.core.device.resolve_device`.
        lock: held while the model runs (share the classifier's lock).
        class_name: the explanation's output name.

    Returns:
        ``shap.Explanation`` with ``values`` H x W in [0, 1], ``base_values`` 0, ``data`` the view.
    """
    view = np.asarray(view, dtype=np.uint8)
    target = _resolve_layer(model, layer)
    device = device if isinstance(device, torch.device) else resolve_device(device)
    captured: dict[str, torch.Tensor] = {}

    def hook(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
        # Cut the graph here: only the layers after the chosen one are recorded for the backward pass.
        leaf = output.detach().requires_grad_(True)
        captured["activation"] = leaf
        return leaf

    with lock or threading.RLock():
        model.to(device).eval()
        handle = target.register_forward_hook(hook)
        flags = [p.requires_grad for p in model.parameters()]
        try:
            for p in model.parameters():
                p.requires_grad_(False)
            with torch.enable_grad():
                x = preprocessing.to_tensor(view[None]).to(device)
                logits = model(x)
                if class_index >= logits.shape[1]:
                    raise InvalidInputError(f"Class index {class_index} is out of range.")
                if "activation" not in captured:
                    raise ExplanationError("Grad-CAM's layer was not used by the model's forward pass.")
                (grad,) = torch.autograd.grad(logits[0, int(class_index)].float(), captured["activation"])
        finally:
            handle.remove()
            for p, flag in zip(model.parameters(), flags, strict=True):
                p.requires_grad_(flag)
        activation = captured["activation"].detach().float()
        weights = grad.float().mean(dim=(2, 3), keepdim=True)
        cam = torch.relu((weights * activation).sum(dim=1, keepdim=True))
        cam = nn.functional.interpolate(cam, size=view.shape[:2], mode="bilinear", align_corners=False)
        heat = cam[0, 0].cpu().numpy().astype(np.float64)
    top = float(heat.max())
    heat = heat / top if top > 0 else heat
    return _image_explanation(heat, 0.0, view, class_name or f"class {int(class_index)}")


@dataclass(frozen=True)
class FaithfulnessScore:
    """How much a class's probability falls when the most-attributed regions are blurred out.

    ``top_drop`` (probability lost when the top ``fraction`` of the image by attribution is
    blurred) against ``random_drop`` (mean loss over random regions of the same size); a faithful
    map has ``score = top_drop - random_drop`` well above zero.
    """

    fraction: float
    original: float
    top_blurred: float
    random_blurred: float
    random_std: float

    @property
    def top_drop(self) -> float:
        return self.original - self.top_blurred

    @property
    def random_drop(self) -> float:
        return self.original - self.random_blurred

    @property
    def score(self) -> float:
        return self.top_drop - self.random_drop

    def as_dict(self) -> dict[str, float]:
        return {
            "fraction": self.fraction,
            "probability": self.original,
            "probability_top_blurred": self.top_blurred,
            "probability_random_blurred": self.random_blurred,
            "drop_top": self.top_drop,
            "drop_random": self.random_drop,
            "faithfulness": self.score,
        }


def patch_grid(shape: tuple[int, int], cells: int = 14) -> tuple[np.ndarray, int]:
    """Label each pixel with its square patch (``cells`` patches along the shorter side).

    Returns:
        An H x W integer array of patch ids and the number of patches.
    """
    h, w = shape
    side = max(1, int(round(min(h, w) / cells)))
    rows, cols = math.ceil(h / side), math.ceil(w / side)
    ids = (np.arange(h)[:, None] // side) * cols + (np.arange(w)[None, :] // side)
    return ids.astype(np.int64), rows * cols


def faithfulness(
    predict: PredictFn,
    view: np.ndarray,
    heatmap: np.ndarray,
    class_index: int,
    *,
    fractions: Iterable[float] = (0.1, 0.2),
    n_random: int = 8,
    cells: int = 14,
    blur_radius: float | None = None,
    seed: int = 0,
) -> list[FaithfulnessScore]:
    """Blur the top-attributed ``fraction`` of the image (in square patches) and random patches of the
    same total size; compare the class probability falls.

    Patches are ranked by their mean attribution (highest first, so for signed SHAP maps the regions
    that pushed the class up). All images are scored in one batched call.

    Args:
        predict: N x H x W x 3 views -> N x K probabilities.
        view: H x W x 3 uint8.
        heatmap: H x W attribution map for ``class_index``.
        class_index: the class whose probability is watched.
        fractions: shares of the image to blur.
        n_random: random draws averaged for the baseline.
        cells: patches along the shorter side.
        blur_radius: as :func:`blur_image`.
        seed: for the random regions.
    """
    view = np.asarray(view, dtype=np.uint8)
    heat = np.asarray(heatmap, dtype=np.float64)
    if heat.ndim == 3:
        heat = heat.sum(axis=-1)
    if heat.shape != view.shape[:2]:
        raise InvalidInputError(f"The heat-map is {heat.shape}, the image {view.shape[:2]}; they must match.")
    blurred = blur_image(view, blur_radius)
    ids, n_patches = patch_grid(view.shape[:2], cells)
    sums = np.bincount(ids.ravel(), weights=heat.ravel(), minlength=n_patches)
    counts = np.maximum(np.bincount(ids.ravel(), minlength=n_patches), 1)
    ranking = np.argsort(-(sums / counts), kind="stable")
    rng = np.random.default_rng(seed)
    fractions = [float(f) for f in fractions]
    batch = [view]
    for fraction in fractions:
        k = max(1, int(round(fraction * n_patches)))
        chosen = [ranking[:k]] + [rng.choice(n_patches, size=k, replace=False) for _ in range(n_random)]
        for patches in chosen:
            mask = np.isin(ids, patches)
            img = view.copy()
            img[mask] = blurred[mask]
            batch.append(img)
    probs = _class_output(predict, int(class_index))(np.stack(batch))
    original = float(probs[0])
    scores = []
    for i, fraction in enumerate(fractions):
        block = probs[1 + i * (1 + n_random) : 1 + (i + 1) * (1 + n_random)]
        scores.append(
            FaithfulnessScore(
                fraction=fraction,
                original=original,
                top_blurred=float(block[0]),
                random_blurred=float(block[1:].mean()),
                random_std=float(block[1:].std()),
            )
        )
    return scores
