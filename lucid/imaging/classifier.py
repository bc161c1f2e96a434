"""Shared image-classifier tools: preprocessing, batched prediction, heat-maps, faithfulness, fine-tuning.

Modality-agnostic: everything takes a torch model (or a ``predict`` function returning class
probabilities), an :class:`ImagePreprocessing` built from a timm-style data config, numpy
``H x W x 3`` uint8 images and class indices. The Vision page and the Medical imaging page both
build on it; nothing here imports Streamlit.

The unit every function works on is the *view*: the image as the model sees it after the geometric
part of preprocessing (resize and centre crop), as ``H x W x 3`` uint8. Heat-maps are drawn on the
view, so they line up with what the model looked at.

Example:
    >>> import timm
    >>> from lucid.imaging.classifier import (ImagePreprocessing, ImageClassifier, shap_heatmap, gradcam,
    ...                               faithfulness)
    >>> model = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    >>> prep = ImagePreprocessing.from_model(model)       # 224 px, bicubic, crop 0.875 from timm
    >>> clf = ImageClassifier(model, prep, class_names=[f"class {i}" for i in range(1000)])
    >>> view = prep.view(pil_image)                       # H x W x 3 uint8, what the model sees
    >>> probs = clf.predict_views(view[None])             # (1, 1000) float32 probabilities
    >>> k = int(probs[0].argmax())
    >>> shap_map = shap_heatmap(clf.predict_views, view, k)   # shap.Explanation, values H x W
    >>> cam = gradcam(model, prep, view, k, layer="bn2")      # shap.Explanation, values in [0, 1]
    >>> scores = faithfulness(clf.predict_views, view, shap_map.values, k)  # top-10% / top-20% blur

Fine-tuning a timm backbone on labelled images held in memory:

    >>> data = labelled_images_from_zip(zip_bytes)       # class folders, or a CSV of file -> label
    >>> result = fine_tune(model, prep, data, FineTuneConfig(mode="head", epochs=3),
    ...                    progress=lambda f, msg: print(f, msg))
    >>> result.metrics["accuracy"], result.metrics["confusion_matrix"]
    >>> save_classifier(store, "vision", "my-cells", result.model, architecture="tf_efficientnet_lite0",
    ...                 class_names=result.class_names, preprocessing=result.preprocessing,
    ...                 metadata={"metrics": result.metrics})
"""

from __future__ import annotations

import copy
import functools
import io
import json
import logging
import math
import os
import threading
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import numpy as np
import pandas as pd
import shap
import timm
import timm.data
import torch
from PIL import Image, ImageFilter
from safetensors.torch import load_file, save_file
from torch import nn

from lucid.core.archives import read_zip
from lucid.core.data import IMAGE_EXTENSIONS, read_image, read_table
from lucid.core.device import autocast, inference_dtype, needs_grad_scaler, resolve_device, training_dtype
from lucid.core.errors import (
    ExplanationError,
    InvalidInputError,
    TrainingCancelled,
    TrainingError,
)
from lucid.core.store import ModelStore, StoredModel, data_hash, validate_name
from lucid.explain.explanation import check_additivity, make_explanation

log = logging.getLogger("lucid.imaging")

Progress = Callable[[float, str], None]
ShouldStop = Callable[[], bool]
PredictFn = Callable[[np.ndarray], np.ndarray]

#: Version of the fine-tuning recipe; stored with every model it produces.
RECIPE_VERSION = "imaging-finetune-1"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val"}
SPLIT_NAMES |= {"test": "test", "testing": "test"}
MIN_IMAGES_PER_CLASS = 3


# ----------------------------------------------------------------------------------------------
# Preprocessing
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImagePreprocessing:
    """Preprocessing derived from a timm data config (input size, interpolation, crop, mean, std).

    The transform itself is always timm's ``create_transform`` for the config; this class only
    splits it into the geometric part (PIL resize + crop -> the *view*) and the tensor part
    (scaling and normalisation), so heat-maps can be drawn on exactly what the model sees.
    """

    data_config: dict[str, Any]

    @classmethod
    def from_model(cls, model: nn.Module, **overrides: Any) -> ImagePreprocessing:
        """The config timm resolves for ``model``; ``overrides`` replace keys (e.g. ``input_size``)."""
        config = dict(timm.data.resolve_model_data_config(model))
        config.update(overrides)
        return cls.from_config(config)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ImagePreprocessing:
        """From a plain dict with timm's keys (``input_size``, ``interpolation``, ``mean``, ``std``,
        ``crop_pct``, optional ``crop_mode``), e.g. one read back from a saved model's JSON."""
        keys = ("input_size", "interpolation", "mean", "std", "crop_pct", "crop_mode")
        clean = {k: config[k] for k in keys if k in config}
        clean["input_size"] = tuple(int(v) for v in clean["input_size"])
        clean["mean"] = tuple(float(v) for v in clean["mean"])
        clean["std"] = tuple(float(v) for v in clean["std"])
        return cls(clean)

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the model's input."""
        _, h, w = self.data_config["input_size"]
        return int(h), int(w)

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable copy of the config."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.data_config.items()}

    def eval_transform(self) -> Callable[[Image.Image], torch.Tensor]:
        """timm's evaluation transform (PIL image -> normalised C x H x W tensor)."""
        return timm.data.create_transform(**self.data_config, is_training=False)

    def train_transform(
        self,
        *,
        scale: tuple[float, float] = (0.6, 1.0),
        hflip: float = 0.5,
        vflip: float = 0.0,
        color_jitter: float = 0.2,
    ) -> Callable[[Image.Image], torch.Tensor]:
        """timm's training transform with standard augmentation (random resized crop, flips, colour)."""
        cfg = {k: v for k, v in self.data_config.items() if k not in ("crop_pct", "crop_mode")}
        return timm.data.create_transform(
            **cfg, is_training=True, scale=scale, hflip=hflip, vflip=vflip, color_jitter=color_jitter
        )

    def _parts(self) -> tuple[list[Callable], list[Callable]]:
        steps = list(getattr(self.eval_transform(), "transforms", []))
        cut = next((i for i, t in enumerate(steps) if "ToTensor" in type(t).__name__), len(steps))
        return steps[:cut], steps[cut + 1 :]

    def view(self, image: Image.Image | np.ndarray) -> np.ndarray:
        """The image as the model sees it, H x W x 3 uint8 (resize and centre crop only)."""
        pil = _to_pil(image)
        geometric, _ = self._parts()
        for step in geometric:
            pil = step(pil)
        out = np.asarray(pil.convert("RGB"), dtype=np.uint8)
        if out.shape[:2] != self.size:  # e.g. crop_pct variants that leave a ragged edge
            out = np.asarray(Image.fromarray(out).resize(self.size[::-1], Image.BICUBIC), dtype=np.uint8)
        return out

    def to_tensor(self, views: np.ndarray) -> torch.Tensor:
        """A batch of views (N x H x W x 3, uint8 or floats in 0-255) as a normalised N x 3 x H x W
        float32 tensor, laid out channels-last in memory (the views' own layout, so nothing is copied
        into another order; convolutions on the CPU run fastest on it)."""
        arr = np.asarray(views)
        if arr.ndim == 3:
            arr = arr[None]
        # A fresh float32 copy (the caller's array, read-only or not, is never written to), in the
        # views' NHWC layout.
        x = torch.from_numpy(np.array(arr, dtype=np.float32, order="C")).permute(0, 3, 1, 2)
        x.mul_(1.0 / 255.0)
        _, tensor_steps = self._parts()
        for step in tensor_steps:  # timm's Normalize (with this config's mean and std)
            x = step(x)
        return x.contiguous(memory_format=torch.channels_last)


@functools.lru_cache(maxsize=1)
def _view_pool() -> ThreadPoolExecutor:
    """Threads that resize and crop images (shared by every classifier in the process)."""
    return ThreadPoolExecutor(
        max_workers=max(1, min(4, os.cpu_count() or 1)), thread_name_prefix="lucid-view"
    )


def _to_pil(image: Image.Image | np.ndarray) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB") if image.mode != "RGB" else image
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
        raise InvalidInputError(f"Expected an H x W x 3 image, got an array of shape {arr.shape}.")
    if arr.dtype != np.uint8:
        arr = np.clip(arr * (255.0 if arr.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    return Image.fromarray(arr[..., :3], "RGB")


# ----------------------------------------------------------------------------------------------
# Batched prediction
# ----------------------------------------------------------------------------------------------


def fold_batchnorm(model: nn.Module, input_size: tuple[int, int] = (224, 224)) -> nn.Module:
    """An inference copy of ``model`` with every BatchNorm that directly follows a convolution folded
    into that convolution's weights and bias (the model itself is left as it is).

    Which BatchNorm reads which convolution's output is found by running one input through the model
    with hooks (data flow, not layer names). timm's BatchNormAct layers keep their activation. The copy
    is checked against the original in float32 and the original is returned if they differ, so a model
    of any other shape is served unchanged. On CPUs this removes about a third of a mobile network's
    inference time (the BatchNorms are memory-bound passes over every activation).
    """
    model = model.eval()
    produced: dict[int, tuple[nn.Conv2d, torch.Tensor]] = {}  # the tensors are kept so ids stay unique
    pairs: list[tuple[nn.Conv2d, nn.BatchNorm2d]] = []
    claimed: set[int] = set()

    def after_conv(module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        produced[id(output)] = (module, output)  # type: ignore[assignment]

    def before_bn(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        conv, output = produced.get(id(inputs[0]), (None, None))
        if (
            conv is not None
            and output is inputs[0]
            and id(conv) not in claimed
            and conv.out_channels == module.num_features  # type: ignore[union-attr]
        ):
            claimed.add(id(conv))
            pairs.append((conv, module))  # type: ignore[arg-type]

    handles = []
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(after_conv))
        elif isinstance(module, nn.BatchNorm2d) and module.track_running_stats:
            handles.append(module.register_forward_pre_hook(before_bn))
    probe = torch.randn(2, 3, *input_size, generator=torch.Generator().manual_seed(0))
    try:
        with torch.inference_mode():
            reference = model(probe)
    finally:
        for handle in handles:
            handle.remove()
        produced.clear()
    if not pairs:
        return model
    folded = copy.deepcopy(model)
    copies = dict(zip(model.modules(), folded.modules(), strict=True))
    parent_of = {
        id(child): (parent, name) for parent in folded.modules() for name, child in parent.named_children()
    }
    with torch.no_grad():
        for conv, bn in pairs:
            conv_c, bn_c = copies[conv], copies[bn]
            scale = bn_c.weight / torch.sqrt(bn_c.running_var + bn_c.eps)
            conv_c.weight.mul_(scale.reshape(-1, 1, 1, 1))
            bias = conv_c.bias if conv_c.bias is not None else torch.zeros_like(bn_c.running_mean)
            conv_c.bias = nn.Parameter((bias - bn_c.running_mean) * scale + bn_c.bias)
            act = getattr(bn_c, "act", None)
            drop = getattr(bn_c, "drop", None)
            rest = [m for m in (drop, act) if isinstance(m, nn.Module)]
            parent, name = parent_of[id(bn_c)]
            setattr(parent, name, nn.Sequential(*rest) if rest else nn.Identity())
    with torch.inference_mode():
        same = torch.allclose(folded.eval()(probe), reference, rtol=1e-3, atol=1e-4)
    if not same:
        log.warning("BatchNorm folding changed the outputs of %s; serving it unfolded", type(model).__name__)
        return model
    return folded


class ImageClassifier:
    """A torch image classifier with its preprocessing and class names: batched, thread-safe prediction.

    Construction is cheap (the model is already built); the model is moved to the device on first use.

    Args:
        model: a torch module mapping N x 3 x H x W normalised tensors to N x K logits.
        preprocessing: how images become the model's input.
        class_names: K names.
        device: default :func:`lucid.core.device.resolve_device`.
        batch_size: images per forward pass.
        activation: ``"softmax"`` (logits in, probabilities out), ``"sigmoid"``, or ``"none"`` when
            the model already returns probabilities.
        precision: ``"fp32"``, ``"bf16"``, ``"fp16"`` or ``None`` for the device's default
            (:func:`lucid.core.device.inference_dtype`).

    Example:
        >>> clf = ImageClassifier(model, ImagePreprocessing.from_model(model), names)
        >>> top = clf.top_k([pil_image], k=5)[0]   # [(class index, name, probability), ...]
    """

    def __init__(
        self,
        model: nn.Module,
        preprocessing: ImagePreprocessing,
        class_names: Sequence[str],
        *,
        device: torch.device | str | None = None,
        batch_size: int = 8,
        activation: Literal["softmax", "sigmoid", "none"] = "softmax",
        precision: str | None = None,
    ) -> None:
        self.model = model
        self.precision = precision
        self.preprocessing = preprocessing
        self.class_names = [str(c) for c in class_names]
        self._device_request = device
        self.batch_size = int(batch_size)
        self.activation = activation
        self.lock = threading.RLock()
        self._ready = False
        self._inference: nn.Module | None = None

    @property
    def device(self) -> torch.device:
        if isinstance(self._device_request, torch.device):
            return self._device_request
        return resolve_device(self._device_request)

    def _prepare(self) -> None:
        if not self._ready:
            self.model.to(self.device).eval()
            # Predictions run on a copy with BatchNorm folded into the convolutions; Grad-CAM and
            # training keep using ``self.model`` with its layers as they are.
            self._inference = fold_batchnorm(self.model.to("cpu").eval(), self.preprocessing.size)
            self.model.to(self.device)
            self._inference.to(self.device)
            if self.device.type == "cpu":
                self.model.to(memory_format=torch.channels_last)
                self._inference.to(memory_format=torch.channels_last)
            self._ready = True

    def _activate(self, logits: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if self.activation == "softmax":
            return logits.softmax(dim=-1)
        if self.activation == "sigmoid":
            return logits.sigmoid()
        return logits

    def predict_views(self, views: np.ndarray) -> np.ndarray:
        """Class probabilities (N x K float32) for views (N x H x W x 3, values 0-255), in batches."""
        arr = np.asarray(views)
        if arr.ndim == 3:
            arr = arr[None]
        if arr.ndim != 4 or arr.shape[-1] != 3:
            raise InvalidInputError(f"Expected views of shape N x H x W x 3, got {arr.shape}.")
        with self.lock:
            self._prepare()
            device = self.device
            dtype = inference_dtype(device, self.precision)
            outputs = []
            with torch.inference_mode(), autocast(device, dtype):
                for start in range(0, len(arr), self.batch_size):
                    x = self.preprocessing.to_tensor(arr[start : start + self.batch_size]).to(device)
                    outputs.append(self._activate(self._inference(x)).cpu().numpy())
        return np.concatenate(outputs, axis=0).astype(np.float32) if outputs else np.zeros((0, 0), np.float32)

    def predict_images(self, images: Sequence[Image.Image | np.ndarray]) -> np.ndarray:
        """Class probabilities (N x K) for images of any size (each is resized and cropped first)."""
        if len(images) == 0:
            return np.zeros((0, len(self.class_names)), dtype=np.float32)
        # Resizing runs in PIL, which releases the GIL: two threads halve its share of a batch.
        views = np.stack(list(_view_pool().map(self.preprocessing.view, images)))
        return self.predict_views(views)

    def top_k(
        self, images: Sequence[Image.Image | np.ndarray], k: int = 5
    ) -> list[list[tuple[int, str, float]]]:
        """The ``k`` most likely classes of each image: (index, name, probability), most likely first."""
        probs = self.predict_images(images)
        return top_k_from_probabilities(probs, self.class_names, k)


def top_k_from_probabilities(
    probs: np.ndarray, class_names: Sequence[str], k: int = 5
) -> list[list[tuple[int, str, float]]]:
    """Rank each row of a probability matrix: (index, name, probability), most likely first."""
    k = max(1, min(int(k), probs.shape[1]))
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return [
        [(int(j), str(class_names[j]), float(row[j])) for j in idx]
        for row, idx in zip(probs, order, strict=True)
    ]


# ----------------------------------------------------------------------------------------------
# Explanations
# ----------------------------------------------------------------------------------------------


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
        view: H x W x 3 uint8, as from :meth:`ImagePreprocessing.view`.
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
    preprocessing: ImagePreprocessing,
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
        preprocessing: its preprocessing.
        view: H x W x 3 uint8.
        class_index: the class explained.
        layer: module name (e.g. ``"bn2"``, the last conv stage of timm EfficientNets) or the module.
        device: default :func:`lucid.core.device.resolve_device`.
        lock: held while the model runs (share the :class:`ImageClassifier`'s lock).
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
        cam = cam[0, 0].cpu().numpy().astype(np.float64)
    top = float(cam.max())
    cam = cam / top if top > 0 else cam
    return _image_explanation(cam, 0.0, view, class_name or f"class {int(class_index)}")


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


# ----------------------------------------------------------------------------------------------
# Labelled image sets
# ----------------------------------------------------------------------------------------------


@dataclass
class LabelledImages:
    """Images with a class label each (and optionally a given train/val/test split), in memory.

    Attributes:
        images: RGB PIL images.
        labels: one class name per image.
        names: where each image came from (file name inside the archive, or a description).
        split: ``"train"``, ``"val"`` or ``"test"`` per image when the data came split, else ``None``.
        skipped: files that were left out, each with the reason.
    """

    images: list[Image.Image] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    split: list[str] | None = None
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.images)

    def class_counts(self) -> dict[str, int]:
        """Images per class, classes sorted by name."""
        return dict(sorted(Counter(self.labels).items()))

    def subset(self, indices: Sequence[int]) -> LabelledImages:
        """The images at ``indices`` (shares the image objects)."""
        idx = list(indices)
        return LabelledImages(
            [self.images[i] for i in idx],
            [self.labels[i] for i in idx],
            [self.names[i] for i in idx],
            [self.split[i] for i in idx] if self.split is not None else None,
            list(self.skipped),
        )

    def fingerprint(self) -> str:
        """A short hash of the labels and pixel data (for the model's metadata)."""
        parts: list[bytes | str] = ["|".join(self.labels)]
        parts += [np.asarray(im.resize((16, 16))).tobytes() for im in self.images]
        return data_hash(*parts)


ImageDecoder = Callable[[bytes, str], Image.Image]


def _default_decoder(data: bytes, name: str) -> Image.Image:
    return read_image(data, name)


def _find_column(columns: Sequence[str], candidates: Sequence[str]) -> str | None:
    lowered = {c.lower().strip(): c for c in columns}
    return next((lowered[c] for c in candidates if c in lowered), None)


def labelled_images_from_zip(
    data: bytes,
    *,
    decode: ImageDecoder = _default_decoder,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
    max_skipped_listed: int = 50,
) -> LabelledImages:
    """Read a labelled image set from a zip archive.

    Two layouts are understood:

    * class folders: each image's label is the name of the folder it sits in
      (``cats/a.jpg``, ``data/train/dogs/b.png``); a folder named ``train``, ``val``/``validation``
      or ``test`` above the class folder gives the split;
    * a CSV anywhere in the archive with a file-name column (``file``, ``filename``, ``image``,
      ``path``) and a label column (``label``, ``class``, ``category``), optionally ``split``;
      file names are matched by path or by base name.

    Hidden files, files that are not images and images that cannot be decoded (truncated, too small,
    decompression bombs) are skipped and listed in ``skipped`` with the reason.

    Args:
        data: the archive's bytes (read with the safety limits of :func:`lucid.core.archives.read_zip`).
        decode: bytes + file name -> RGB PIL image; raises :class:`InvalidInputError` on bad files.
        extensions: file endings treated as images.

    Raises:
        InvalidInputError: not a zip, unsafe archive, or no labelled image found.
    """
    contents = read_zip(data)
    out = LabelledImages(skipped=list(contents.skipped))
    image_members = [m for m in contents.members if m.name.lower().endswith(tuple(extensions))]
    tables = [m for m in contents.members if m.name.lower().endswith((".csv", ".tsv", ".txt"))]
    others = [m for m in contents.members if m not in image_members and m not in tables]
    out.skipped += [f"{m.path} (not an image)" for m in others]
    labels_csv = None
    for table in tables:
        try:
            df = read_table(table.data, table.name)
        except InvalidInputError:
            continue
        file_col = _find_column(list(df.columns), ("file", "filename", "file_name", "image", "path", "name"))
        label_col = _find_column(list(df.columns), ("label", "class", "category", "target"))
        if file_col and label_col:
            labels_csv = (df, file_col, label_col, _find_column(list(df.columns), ("split", "subset")))
            break
    splits: list[str | None] = []
    if labels_csv is not None:
        df, file_col, label_col, split_col = labels_csv
        by_path = {m.path: m for m in image_members}
        by_name: dict[str, list] = {}
        for m in image_members:
            by_name.setdefault(m.name, []).append(m)
        for _, row in df.iterrows():
            key = str(row[file_col]).strip().replace("\\", "/").lstrip("./")
            label = str(row[label_col]).strip()
            member = by_path.get(key)
            if member is None:
                candidates = [m for m in by_name.get(PurePosixPath(key).name, []) if m.path.endswith(key)]
                member = candidates[0] if len(candidates) == 1 else None
            if member is None:
                out.skipped.append(f"{key} (listed in the CSV but not found in the archive)")
                continue
            if not label or label.lower() == "nan":
                out.skipped.append(f"{key} (no label)")
                continue
            split = SPLIT_NAMES.get(str(row[split_col]).strip().lower()) if split_col else None
            _add_decoded(out, splits, member.data, member.path, label, split, decode)
    else:
        for member in image_members:
            parts = member.parts
            if len(parts) < 2:
                out.skipped.append(f"{member.path} (not inside a class folder)")
                continue
            label = parts[-2].strip()
            split = next((SPLIT_NAMES[p.lower()] for p in parts[:-2] if p.lower() in SPLIT_NAMES), None)
            _add_decoded(out, splits, member.data, member.path, label, split, decode)
    if not out.images:
        reasons = "; ".join(out.skipped[:5])
        raise InvalidInputError(
            "No labelled images were found. Put each class's images in a folder named after the class "
            "(cats/a.jpg, dogs/b.jpg) or add a CSV with 'file' and 'label' columns."
            + (f" Skipped: {reasons}" if reasons else "")
        )
    if all(s is not None for s in splits):
        out.split = [str(s) for s in splits]
    if len(out.skipped) > max_skipped_listed:
        extra = len(out.skipped) - max_skipped_listed
        out.skipped = out.skipped[:max_skipped_listed] + [f"... and {extra} more"]
    return out


def _add_decoded(
    out: LabelledImages,
    splits: list[str | None],
    blob: bytes,
    path: str,
    label: str,
    split: str | None,
    decode: ImageDecoder,
) -> None:
    try:
        image = decode(blob, path)
    except InvalidInputError as exc:
        out.skipped.append(f"{path} ({exc})")
        return
    out.images.append(image)
    out.labels.append(label)
    out.names.append(path)
    splits.append(split)


def labelled_images_from_folder(
    folder: str | Path, *, decode: ImageDecoder = _default_decoder
) -> LabelledImages:
    """Read ``folder/<class>/<image>`` (or with ``train``/``val``/``test`` above the classes) from disk."""
    root = Path(folder)
    if not root.is_dir():
        raise InvalidInputError(f"No such folder: {folder}")
    buffer = io.BytesIO()
    import zipfile

    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zf:
        for path in sorted(root.rglob("*")):
            if path.is_file() and not path.is_symlink():
                zf.write(path, path.relative_to(root).as_posix())
    return labelled_images_from_zip(buffer.getvalue(), decode=decode)


def load_voc_crops(
    folder: str | Path,
    split: str = "train",
    *,
    classes: Sequence[str] | None = None,
    max_per_class: int | None = None,
    min_side: int = 8,
    margin: float = 0.0,
    seed: int = 0,
) -> LabelledImages:
    """Crop the labelled boxes of a Pascal VOC set into a classification set.

    Args:
        folder: the VOC root holding ``Annotations/``, ``JPEGImages/`` and ``ImageSets/Main/<split>.txt``.
        split: which image list to read (``train``, ``val``, ``test``, ``trainval``).
        classes: keep only these class names (default: all).
        max_per_class: keep at most this many crops per class (a seeded random sample).
        min_side: drop boxes smaller than this (pixels).
        margin: extra context around each box, as a share of its size.
        seed: for the sample.
    """
    root = Path(folder)
    ids_file = root / "ImageSets" / "Main" / f"{split}.txt"
    if not ids_file.is_file():
        raise InvalidInputError(f"No split list at {ids_file}.")
    ids = [line.strip() for line in ids_file.read_text().splitlines() if line.strip()]
    boxes: list[tuple[str, str, tuple[int, int, int, int]]] = []
    for image_id in ids:
        tree = ET.parse(root / "Annotations" / f"{image_id}.xml")
        for obj in tree.getroot().iter("object"):
            name = (obj.findtext("name") or "").strip()
            box = obj.find("bndbox")
            if not name or box is None or (classes is not None and name not in classes):
                continue
            coords = [int(float(box.findtext(k) or 0)) for k in ("xmin", "ymin", "xmax", "ymax")]
            boxes.append((image_id, name, tuple(coords)))  # type: ignore[arg-type]
    if max_per_class is not None:
        rng = np.random.default_rng(seed)
        by_class: dict[str, list[int]] = {}
        for i, (_, name, _) in enumerate(boxes):
            by_class.setdefault(name, []).append(i)
        keep = sorted(
            j
            for idx in by_class.values()
            for j in (rng.permutation(idx)[:max_per_class] if len(idx) > max_per_class else idx)
        )
        boxes = [boxes[i] for i in keep]
    out = LabelledImages()
    cache: dict[str, Image.Image] = {}
    for image_id, name, (x0, y0, x1, y1) in boxes:
        if image_id not in cache:
            cache.clear()
            cache[image_id] = Image.open(root / "JPEGImages" / f"{image_id}.jpg").convert("RGB")
        img = cache[image_id]
        dx, dy = int((x1 - x0) * margin), int((y1 - y0) * margin)
        x0, y0 = max(0, x0 - dx), max(0, y0 - dy)
        x1, y1 = min(img.width, x1 + dx), min(img.height, y1 + dy)
        if x1 - x0 < min_side or y1 - y0 < min_side:
            out.skipped.append(f"{image_id} {name} box {x1 - x0}x{y1 - y0} (too small)")
            continue
        out.images.append(img.crop((x0, y0, x1, y1)))
        out.labels.append(name)
        out.names.append(f"{image_id}:{name}:{x0},{y0},{x1},{y1}")
    if not out.images:
        raise InvalidInputError(f"No boxes were found in the '{split}' split of {folder}.")
    return out


# ----------------------------------------------------------------------------------------------
# Splits and metrics
# ----------------------------------------------------------------------------------------------


def check_trainable(labels: Sequence[str], *, min_per_class: int = MIN_IMAGES_PER_CLASS) -> dict[str, int]:
    """Raise :class:`TrainingError` unless there are two or more classes with enough images each."""
    counts = dict(sorted(Counter(labels).items()))
    if len(counts) < 2:
        only = next(iter(counts), "(none)")
        raise TrainingError(
            f"Training needs at least two classes; the data has only one ('{only}'). "
            "Add a folder of images for each category you want the model to tell apart."
        )
    small = {c: n for c, n in counts.items() if n < min_per_class}
    if small:
        listed = ", ".join(f"'{c}' ({n} image{'s' if n != 1 else ''})" for c, n in small.items())
        raise TrainingError(
            f"Each class needs at least {min_per_class} images (for training, validation and test); "
            f"too few in: {listed}."
        )
    return counts


def stratified_split(
    labels: Sequence[str], *, val_fraction: float = 0.15, test_fraction: float = 0.15, seed: int = 0
) -> np.ndarray:
    """Assign ``train``/``val``/``test`` per item, keeping each class's share in every part.

    Every class gets at least one validation and one test item (so needs three or more items).
    """
    check_trainable(labels)
    labels_arr = np.asarray([str(x) for x in labels])
    out = np.empty(len(labels_arr), dtype=object)
    rng = np.random.default_rng(seed)
    for cls in sorted(set(labels_arr)):
        idx = rng.permutation(np.flatnonzero(labels_arr == cls))
        n = len(idx)
        n_test = max(1, int(round(n * test_fraction)))
        n_val = max(1, int(round(n * val_fraction)))
        if n - n_test - n_val < 1:
            n_val = max(1, n - n_test - 1)
        out[idx[:n_test]] = "test"
        out[idx[n_test : n_test + n_val]] = "val"
        out[idx[n_test + n_val :]] = "train"
    return out.astype(str)


def classification_metrics(
    y_true: Sequence[int],
    y_pred: Sequence[int],
    class_names: Sequence[str],
    *,
    train_labels: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1/support, macro F1, confusion matrix and the majority baseline.

    Args:
        y_true: true class indices.
        y_pred: predicted class indices.
        class_names: index -> name.
        train_labels: training labels, to score the baseline of always predicting their majority
            class (default: the majority of ``y_true``).
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    y_true = np.asarray(y_true, dtype=int)
    y_pred = np.asarray(y_pred, dtype=int)
    k = len(class_names)
    labels = list(range(k))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    reference = np.asarray(train_labels if train_labels is not None else y_true, dtype=int)
    majority = int(np.bincount(reference, minlength=k).argmax()) if len(reference) else 0
    return {
        "accuracy": float((y_true == y_pred).mean()) if len(y_true) else float("nan"),
        "majority_class": str(class_names[majority]),
        "majority_baseline_accuracy": float((y_true == majority).mean()) if len(y_true) else float("nan"),
        "macro_f1": float(np.mean(f1)) if k else float("nan"),
        "n": int(len(y_true)),
        "per_class": {
            str(class_names[i]): {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i in labels
        },
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        "class_names": [str(c) for c in class_names],
    }


def per_class_table(metrics: dict[str, Any]) -> pd.DataFrame:
    """The per-class part of :func:`classification_metrics` as a table."""
    rows = [{"class": c, **v} for c, v in metrics["per_class"].items()]
    return pd.DataFrame(rows, columns=["class", "precision", "recall", "f1", "support"])


def evaluate_classifier(classifier: ImageClassifier, data: LabelledImages) -> dict[str, Any]:
    """Score a classifier on labelled images whose labels are among its classes."""
    unknown = sorted(set(data.labels) - set(classifier.class_names))
    if unknown:
        raise InvalidInputError(
            f"Labels {', '.join(repr(u) for u in unknown[:5])} are not classes of this model "
            f"({', '.join(classifier.class_names[:10])})."
        )
    index = {c: i for i, c in enumerate(classifier.class_names)}
    probs = classifier.predict_images(data.images)
    return classification_metrics(
        [index[x] for x in data.labels], probs.argmax(axis=1), classifier.class_names
    )


# ----------------------------------------------------------------------------------------------
# Fine-tuning
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FineTuneConfig:
    """The fine-tuning recipe.

    Attributes:
        mode: ``"head"`` trains only a new classifier on the frozen backbone (fast, few images);
            ``"full"`` trains every layer (slower, better with more images).
        epochs: passes over the training images; the epoch with the best validation accuracy is kept.
        batch_size: images per step at most (small sets use smaller batches: at least 4 steps an epoch).
        learning_rate: default 2e-3 for the head, 3e-4 for full fine-tuning (AdamW, cosine decay).
        weight_decay: AdamW weight decay.
        augment: random resized crops, flips and colour jitter on the training images.
        vflip: also flip vertically (for images with no "up", e.g. microscopy).
        image_size: train and predict at this square size instead of the model's default.
        label_smoothing: of the cross-entropy loss.
        val_fraction, test_fraction: shares held out when the data has no split of its own.
        seed: for the split, the shuffling and the augmentation.
    """

    mode: Literal["head", "full"] = "head"
    epochs: int = 5
    batch_size: int = 32
    learning_rate: float | None = None
    weight_decay: float = 1e-4
    augment: bool = True
    vflip: bool = False
    image_size: int | None = None
    label_smoothing: float = 0.1
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 0

    def lr(self) -> float:
        return float(self.learning_rate or (2e-3 if self.mode == "head" else 3e-4))

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__} | {"learning_rate": self.lr()}


@dataclass
class FineTuneResult:
    """What :func:`fine_tune` produced: the trained model (eval mode, CPU), its classes and test metrics."""

    model: nn.Module
    class_names: list[str]
    preprocessing: ImagePreprocessing
    metrics: dict[str, Any]
    history: list[dict[str, float]]
    split_sizes: dict[str, int]
    config: FineTuneConfig
    data_hash: str
    seconds: float


def _stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack(tensors).contiguous()


def one_cycle_schedule(
    optimizer: torch.optim.Optimizer, max_lr: float, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """One-cycle learning rate (10% warm-up, cosine decay) that is safe for very short runs.

    torch's OneCycleLR divides by zero when its warm-up phase is a single step, so the warm-up
    is at least two steps; runs of fewer than four steps keep a constant rate.
    """
    if total_steps < 4:
        for group in optimizer.param_groups:
            group["lr"] = max_lr
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _step: 1.0)
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=max_lr,
        total_steps=total_steps,
        pct_start=max(0.1, 2.0 / total_steps),
        anneal_strategy="cos",
    )


def fine_tune(
    model: nn.Module,
    preprocessing: ImagePreprocessing,
    data: LabelledImages,
    config: FineTuneConfig = FineTuneConfig(),
    *,
    device: torch.device | str | None = None,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
) -> FineTuneResult:
    """Fine-tune a pretrained timm classifier on labelled images.

    The data is split stratified into train/validation/test (or the split it came with is used
    when every class appears in train and test); the classifier head is replaced for the new
    classes (``model.reset_classifier``); training uses AdamW with cosine decay, standard
    augmentation, and mixed precision where the device has it (float16 autocast + GradScaler on
    CUDA, bfloat16 autocast on CPUs with AVX-512 BF16; weights stay float32). After each epoch the
    validation accuracy is measured and the best epoch's weights are kept; the test metrics are
    measured once, at the end, on images never used for training or model selection.

    Args:
        model: a timm model with pretrained weights (modified in place and returned).
        preprocessing: the model's preprocessing (``config.image_size`` overrides its size).
        data: the labelled images.
        config: the recipe.
        device: default :func:`lucid.core.device.resolve_device`.
        progress: called with (fraction done, message) after every step and epoch.
        should_stop: polled every step; returning true cancels (raises :class:`TrainingCancelled`).

    Raises:
        TrainingError: one class only, a class with too few images, or a model without a timm head.
        TrainingCancelled: ``should_stop`` returned true.
    """
    started = time.perf_counter()
    check_trainable(data.labels)
    if not hasattr(model, "reset_classifier"):
        raise TrainingError("This model cannot be fine-tuned here: it has no replaceable classifier head.")
    class_names = sorted(set(data.labels))
    index = {c: i for i, c in enumerate(class_names)}
    y = np.asarray([index[x] for x in data.labels], dtype=np.int64)
    split = _choose_split(data, config)
    parts = {name: np.flatnonzero(split == name) for name in ("train", "val", "test")}
    if config.image_size:
        s = int(config.image_size)
        preprocessing = ImagePreprocessing.from_config(preprocessing.data_config | {"input_size": (3, s, s)})
    device = device if isinstance(device, torch.device) else resolve_device(device)
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)

    model.reset_classifier(len(class_names))
    model.to(device)
    head = model.get_classifier()
    if config.mode == "head":
        for p in model.parameters():
            p.requires_grad_(False)
        for p in head.parameters():
            p.requires_grad_(True)
    elif config.mode == "full":
        for p in model.parameters():
            p.requires_grad_(True)
    else:
        raise InvalidInputError(f"Unknown fine-tuning mode '{config.mode}'; use 'head' or 'full'.")
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.lr(), weight_decay=config.weight_decay)
    # Small sets get smaller batches so every epoch still takes several optimiser steps.
    batch_size = int(max(4, min(config.batch_size, len(parts["train"]) // 4)))
    steps_per_epoch = max(1, math.ceil(len(parts["train"]) / batch_size))
    total_steps = steps_per_epoch * max(1, config.epochs)
    scheduler = one_cycle_schedule(optimizer, config.lr(), total_steps)
    dtype = training_dtype(device)
    scaler = torch.amp.GradScaler(device.type, enabled=needs_grad_scaler(dtype))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    train_tf = (
        preprocessing.train_transform(vflip=0.5 if config.vflip else 0.0)
        if config.augment
        else preprocessing.eval_transform()
    )
    eval_views = {
        name: np.stack([preprocessing.view(data.images[i]) for i in parts[name]])
        for name in ("val", "test")
        if len(parts[name])
    }

    def forward(x: torch.Tensor) -> torch.Tensor:
        if config.mode == "head":
            with torch.no_grad():
                features = model.forward_head(model.forward_features(x), pre_logits=True)
            return head(features.detach())
        return model(x)

    def predict(views: np.ndarray) -> np.ndarray:
        model.eval()
        out = []
        with torch.inference_mode(), autocast(device, dtype):
            for start in range(0, len(views), 64):
                x = preprocessing.to_tensor(views[start : start + 64]).to(device)
                out.append(model(x).float().argmax(dim=1).cpu().numpy())
        return np.concatenate(out)

    history: list[dict[str, float]] = []
    best_state: dict[str, torch.Tensor] | None = None
    best_val = -1.0
    step = 0
    for epoch in range(config.epochs):
        epoch_start = time.perf_counter()
        if config.mode == "full":
            model.train()
        else:
            model.eval()  # frozen BatchNorm statistics
        order = rng.permutation(parts["train"])
        total_loss, correct, seen = 0.0, 0, 0
        for start in range(0, len(order), batch_size):
            if should_stop is not None and should_stop():
                raise TrainingCancelled("Training was cancelled; nothing was saved.")
            batch_idx = order[start : start + batch_size]
            x = _stack([_train_tensor(train_tf, data.images[i], generator) for i in batch_idx]).to(device)
            target = torch.as_tensor(y[batch_idx], device=device)
            optimizer.zero_grad(set_to_none=True)
            with autocast(device, dtype):
                logits = forward(x)
                loss = loss_fn(logits.float(), target)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            total_loss += float(loss.detach()) * len(batch_idx)
            correct += int((logits.detach().argmax(dim=1) == target).sum())
            seen += len(batch_idx)
            step += 1
            if progress is not None:
                progress(step / total_steps * 0.95, f"Epoch {epoch + 1}/{config.epochs}: step {step}")
        val_acc = (
            float((predict(eval_views["val"]) == y[parts["val"]]).mean())
            if "val" in eval_views
            else float("nan")
        )
        record = {
            "epoch": epoch + 1,
            "train_loss": total_loss / max(seen, 1),
            "train_accuracy": correct / max(seen, 1),
            "val_accuracy": val_acc,
            "seconds": time.perf_counter() - epoch_start,
        }
        history.append(record)
        if not (val_acc <= best_val) or best_state is None:  # NaN (no val set) keeps the last epoch
            best_val = val_acc if not math.isnan(val_acc) else best_val
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        if progress is not None:
            progress(
                (epoch + 1) / config.epochs * 0.95,
                f"Epoch {epoch + 1}/{config.epochs}: loss {record['train_loss']:.3f}, "
                f"train accuracy {record['train_accuracy']:.3f}, validation accuracy {val_acc:.3f} "
                f"({record['seconds']:.0f} s)",
            )
    if best_state is not None:
        model.load_state_dict(best_state)
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()
    test_pred = predict(eval_views["test"])
    metrics = classification_metrics(y[parts["test"]], test_pred, class_names, train_labels=y[parts["train"]])
    metrics["val_accuracy"] = best_val
    if progress is not None:
        progress(1.0, f"Test accuracy {metrics['accuracy']:.3f} on {len(parts['test'])} held-out images")
    model.to("cpu")
    return FineTuneResult(
        model=model,
        class_names=class_names,
        preprocessing=preprocessing,
        metrics=metrics,
        history=history,
        split_sizes={k: int(len(v)) for k, v in parts.items()},
        config=config,
        data_hash=data.fingerprint(),
        seconds=time.perf_counter() - started,
    )


def _train_tensor(transform: Callable, image: Image.Image, generator: torch.Generator) -> torch.Tensor:
    # torchvision's random transforms draw from torch's global generator; seed it per image from ours.
    torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
    return transform(image)


def _choose_split(data: LabelledImages, config: FineTuneConfig) -> np.ndarray:
    if data.split is not None:
        split = np.asarray(data.split, dtype=str)
        labels = np.asarray(data.labels)
        classes = set(data.labels)
        if set(labels[split == "train"]) == classes and set(labels[split == "test"]) == classes:
            if not (split == "val").any():  # carve a validation set out of train
                train_idx = np.flatnonzero(split == "train")
                inner = (
                    stratified_split(
                        labels[train_idx].tolist(),
                        val_fraction=config.val_fraction,
                        test_fraction=0.0,
                        seed=config.seed,
                    )
                    if min(Counter(labels[train_idx]).values()) >= MIN_IMAGES_PER_CLASS
                    else None
                )
                if inner is not None:
                    inner = np.where(inner == "test", "train", inner)
                    split = split.copy()
                    split[train_idx] = inner
            return split
    return stratified_split(
        data.labels, val_fraction=config.val_fraction, test_fraction=config.test_fraction, seed=config.seed
    )


# ----------------------------------------------------------------------------------------------
# Saving and loading
# ----------------------------------------------------------------------------------------------


def save_classifier(
    store: ModelStore,
    domain: str,
    name: str,
    model: nn.Module,
    *,
    architecture: str,
    class_names: Sequence[str],
    preprocessing: ImagePreprocessing,
    metadata: dict[str, Any] | None = None,
    reserved_names: Iterable[str] = (),
    gradcam_layer: str | None = None,
) -> StoredModel:
    """Save a classifier to the model store: ``model.safetensors`` + ``config.json`` + ``metadata.json``.

    Args:
        store: the model store.
        domain: e.g. ``"vision"`` or ``"medical"``.
        name: the user's name (validated; must not be one of ``reserved_names``).
        model: the trained module.
        architecture: the timm model name it was built from (used to rebuild it).
        class_names: index -> class.
        preprocessing: its preprocessing.
        metadata: metrics, data hash, recipe, ... (stored in ``metadata.json``).
        reserved_names: built-in model names that user models may not take.
        gradcam_layer: module name Grad-CAM should use.

    Raises:
        InvalidInputError: bad or reserved name.
    """
    clean = validate_name(name)
    reserved = {r.lower() for r in reserved_names}
    if clean.lower() in reserved:
        raise InvalidInputError(f"'{clean}' is the name of a built-in model; choose another name.")
    config = {
        "architecture": architecture,
        "num_classes": len(class_names),
        "class_names": [str(c) for c in class_names],
        "data_config": preprocessing.to_json(),
        "gradcam_layer": gradcam_layer,
        "format": "safetensors",
    }
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}

    def write(folder: Path) -> None:
        save_file(state, str(folder / WEIGHTS_FILE))
        (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2))

    meta = {"base_model": architecture, "recipe_version": RECIPE_VERSION, **(metadata or {})}
    meta.setdefault("class_names", config["class_names"])
    return store.save(domain, clean, write, meta)


@dataclass
class LoadedClassifier:
    """A classifier read back from the store."""

    model: nn.Module
    class_names: list[str]
    preprocessing: ImagePreprocessing
    architecture: str
    gradcam_layer: str | None
    metadata: dict[str, Any]


def load_classifier(
    stored: StoredModel, *, build: Callable[[dict[str, Any]], nn.Module] | None = None
) -> LoadedClassifier:
    """Rebuild a saved classifier (timm architecture by default, or ``build(config)``) and load its weights.

    Raises:
        InvalidInputError: the folder does not hold a classifier saved by :func:`save_classifier`.
    """
    config_path = stored.path / CONFIG_FILE
    weights_path = stored.path / WEIGHTS_FILE
    if not config_path.is_file() or not weights_path.is_file():
        raise InvalidInputError(f"The saved model '{stored.name}' is incomplete (no weights or config).")
    config = json.loads(config_path.read_text())
    if build is not None:
        model = build(config)
    else:
        model = timm.create_model(
            config["architecture"], pretrained=False, num_classes=int(config["num_classes"])
        )
    state = load_file(str(weights_path))
    model.load_state_dict(state, strict=True)
    model.eval()
    return LoadedClassifier(
        model=model,
        class_names=list(config["class_names"]),
        preprocessing=ImagePreprocessing.from_config(config["data_config"]),
        architecture=str(config["architecture"]),
        gradcam_layer=config.get("gradcam_layer"),
        metadata=dict(stored.metadata),
    )


def clone_model(model: nn.Module) -> nn.Module:
    """A deep copy (fine-tuning modifies its model in place; keep the shared default untouched)."""
    return copy.deepcopy(model)
