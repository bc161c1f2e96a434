"""Fixtures of the image-machinery tests."""

from __future__ import annotations

import pytest
import timm
import torch
from torch import nn


@pytest.fixture(scope="module")
def tiny_model() -> nn.Module:
    """timm's tiny test EfficientNet with three classes, random weights (seeded)."""
    torch.manual_seed(0)
    return timm.create_model("test_efficientnet", pretrained=False, num_classes=3).eval()
