"""Image preprocessing from a timm data config, and inference copies of models with BatchNorm folded.

The unit every image tool works on is the *view*: the image as the model sees it after the geometric
part of preprocessing (resize and centre crop), as ``H x W x 3`` uint8. Heat-maps are drawn on the
view, so they line up with what the model looked at.

Example:
    >>> import timm
    >>> model = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    >>> prep = ImagePreprocessing.from_model(model)       # 224 px, bicubic, crop 0.875 from timm
    >>> view = prep.view(pil_image)                       # H x W x 3 uint8, what the model sees
    >>> x = prep.to_tensor(view[None])                    # 1 x 3 x 224 x 224, normalised
    >>> fast = fold_batchnorm(model, prep.size)           # same outputs, fewer passes over memory
"""

from __future__ import annotations

import copy
import functools
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import timm
import timm.data
import torch
from PIL import Image
from torch import nn

from lucid.core.errors import InvalidInputError

log = logging.getLogger("lucid.imaging")


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
        pil = to_pil(image)
        geometric, _ = self._parts()
        for step in geometric:
            pil = step(pil)
        out = np.asarray(pil.convert("RGB"), dtype=np.uint8)
        if out.shape[:2] != self.size:  # e.g. crop_pct variants that leave a ragged edge
            out = np.asarray(
                Image.fromarray(out).resize(self.size[::-1], Image.Resampling.BICUBIC), dtype=np.uint8
            )
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
def view_pool() -> ThreadPoolExecutor:
    """Threads that resize and crop images (shared by every classifier in the process)."""
    return ThreadPoolExecutor(
        max_workers=max(1, min(4, os.cpu_count() or 1)), thread_name_prefix="lucid-view"
    )


def to_pil(image: Image.Image | np.ndarray) -> Image.Image:
    """An RGB PIL image from a PIL image of any mode or an H x W (x 3 or 4) array (floats in 0-1 or 0-255).

    Raises:
        InvalidInputError: the array is not an image.
    """
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

    # The hooks below are registered on Conv2d and on BatchNorm2d modules only.
    def after_conv(module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        produced[id(output)] = (cast(nn.Conv2d, module), output)

    def before_bn(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        bn = cast(nn.BatchNorm2d, module)
        conv, output = produced.get(id(inputs[0]), (None, None))
        if (
            conv is not None
            and output is inputs[0]
            and id(conv) not in claimed
            and conv.out_channels == bn.num_features
        ):
            claimed.add(id(conv))
            pairs.append((conv, bn))

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
            # The copy has the same module types as the original, pair for pair.
            conv_c, bn_c = cast(nn.Conv2d, copies[conv]), cast(nn.BatchNorm2d, copies[bn])
            mean, var = bn_c.running_mean, bn_c.running_var
            if mean is None or var is None:  # only BatchNorms that track running statistics were paired
                continue
            scale = bn_c.weight / torch.sqrt(var + bn_c.eps)
            conv_c.weight.mul_(scale.reshape(-1, 1, 1, 1))
            bias = conv_c.bias if conv_c.bias is not None else torch.zeros_like(mean)
            conv_c.bias = nn.Parameter((bias - mean) * scale + bn_c.bias)
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
