"""Vision models: the packaged weights map onto timm's architecture, the registry, the class names."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lucid.core.errors import ModelNotFoundError
from lucid.domains.vision.model import VISION_MODELS, imagenet_class_names
from lucid.imaging.backbones import (
    EFFICIENTNET_LITE0_WEIGHTS,
    load_efficientnet_lite0,
    map_state_dict_by_order,
)


def test_packaged_weights_land_on_every_tensor_in_order():
    source = torch.load(EFFICIENTNET_LITE0_WEIGHTS.path(), map_location="cpu", weights_only=True)
    model = load_efficientnet_lite0()
    src = [v for k, v in source.items() if not k.endswith("num_batches_tracked")]
    dst = [v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")]
    assert len(src) == len(dst) == 247
    assert all(torch.equal(a, b) for a, b in zip(src, dst, strict=True))
    assert not model.training


def test_mapping_refuses_mismatches():
    target = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    good = {f"w{i}": v.clone() for i, v in enumerate(target.state_dict().values())}
    mapped = map_state_dict_by_order(good, target)
    assert list(mapped) == list(target.state_dict())
    bad_shape = dict(good)
    bad_shape["w0"] = torch.zeros(5, 5)
    with pytest.raises(ValueError, match="Shape mismatch"):
        map_state_dict_by_order(bad_shape, target)
    with pytest.raises(ValueError, match="3 tensors"):
        map_state_dict_by_order(dict(list(good.items())[:3]), target)


def test_registry_and_class_names():
    assert VISION_MODELS.names() == ["efficientnet_lite0"]
    spec = VISION_MODELS.get("efficientnet_lite0")
    assert spec.licence == "Apache-2.0" and spec.extra["gradcam_layer"] == "bn2"
    with pytest.raises(ModelNotFoundError, match="efficientnet_lite0"):
        VISION_MODELS.get("vgg")
    names = imagenet_class_names()
    assert len(names) == 1000 and names[967] == "espresso" and names[282] == "tiger cat"
