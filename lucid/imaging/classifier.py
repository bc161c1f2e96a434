"""Batched, thread-safe prediction with a torch image classifier, its preprocessing and its class names.

Example:
    >>> import timm
    >>> model = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    >>> prep = ImagePreprocessing.from_model(model)
    >>> clf = ImageClassifier(model, prep, class_names=[f"class {i}" for i in range(1000)])
    >>> probs = clf.predict_views(prep.view(pil_image)[None])   # (1, 1000) float32 probabilities
    >>> clf.top_k([pil_image], k=5)[0]                          # [(class index, name, probability), ...]
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from PIL import Image
from torch import nn

from lucid.core.device import autocast, inference_dtype, resolve_device
from lucid.core.errors import InvalidInputError
from lucid.imaging.preprocess import ImagePreprocessing, fold_batchnorm, view_pool


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

    def _prepare(self) -> nn.Module:
        """The inference copy of the model, built and moved to the device on first use."""
        if not self._ready or self._inference is None:
            self.model.to(self.device).eval()
            # Predictions run on a copy with BatchNorm folded into the convolutions; Grad-CAM and
            # training keep using ``self.model`` with its layers as they are.
            inference = fold_batchnorm(self.model.to("cpu").eval(), self.preprocessing.size)
            self.model.to(self.device)
            inference.to(self.device)
            if self.device.type == "cpu":
                self.model.to(memory_format=torch.channels_last)
                inference.to(memory_format=torch.channels_last)
            self._inference = inference
            self._ready = True
        return self._inference

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
            inference = self._prepare()
            device = self.device
            dtype = inference_dtype(device, self.precision)
            outputs = []
            with torch.inference_mode(), autocast(device, dtype):
                for start in range(0, len(arr), self.batch_size):
                    x = self.preprocessing.to_tensor(arr[start : start + self.batch_size]).to(device)
                    outputs.append(self._activate(inference(x)).cpu().numpy())
        return np.concatenate(outputs, axis=0).astype(np.float32) if outputs else np.zeros((0, 0), np.float32)

    def predict_images(self, images: Sequence[Image.Image | np.ndarray]) -> np.ndarray:
        """Class probabilities (N x K) for images of any size (each is resized and cropped first)."""
        if len(images) == 0:
            return np.zeros((0, len(self.class_names)), dtype=np.float32)
        # Resizing runs in PIL, which releases the GIL: two threads halve its share of a batch.
        views = np.stack(list(view_pool().map(self.preprocessing.view, images)))
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
