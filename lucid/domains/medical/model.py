"""Medical imaging models: the PyTorch port of the phydcm Keras networks and the medical registry.

The ``phydcm`` package (MIT) ships two usable Keras 3 classifiers, a brain-MRI model (glioma /
meningioma / no tumour / pituitary) and a CT model (no tumour / tumour). Both share one small
residual CNN. :class:`PhydcmNet` rebuilds it in PyTorch and :func:`load_keras_weights` fills it
from the packaged ``.keras`` file (a zip of ``config.json`` and ``model.weights.h5``), read with
``zipfile`` and ``h5py`` only: neither keras nor tensorflow is needed or imported. The layer
mapping is derived from the file's own graph, and every shape is checked.

Example:
    >>> model = MEDICAL_MODELS.create("phydcm_brain_mri")   # weights loaded, eval mode
    >>> probs = model.predict_proba(torch.rand(1, 3, 224, 224))
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lucid.core.assets import Asset
from lucid.core.errors import InvalidInputError
from lucid.core.registry import ModelRegistry

PHYDCM_PIP = "phydcm==2.4.0"
PHYDCM_SOURCE = "phydcm 2.4.0 on PyPI (github.com/PhyDCM/PhyDCM), Keras 3 weights read with h5py"
PHYDCM_LICENCE = "MIT (LICENSE file in the phydcm wheel)"
INPUT_SIZE = 224
#: Bump when the port, its preprocessing or the stored conversion changes.
PORT_VERSION = 1


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """Keras/TensorFlow 'same' padding: the odd pixel goes to the bottom/right."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Conv2d):
    """A Conv2d that pads like Keras' ``padding='same'`` (asymmetric when the stride is 2)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size[0], self.stride[0]
        top, bottom = _same_padding(x.shape[-2], k, s)
        left, right = _same_padding(x.shape[-1], k, s)
        return super().forward(F.pad(x, (left, right, top, bottom)))


class SameMaxPool2d(nn.Module):
    """Max pooling with Keras 'same' padding (padded cells never win: they are -inf)."""

    def __init__(self, kernel: int, stride: int) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = _same_padding(x.shape[-2], self.kernel, self.stride)
        left, right = _same_padding(x.shape[-1], self.kernel, self.stride)
        x = F.pad(x, (left, right, top, bottom), value=float("-inf"))
        return F.max_pool2d(x, self.kernel, self.stride)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)


class ResidualBlock(nn.Module):
    """[Conv3x3 -> ReLU -> BN -> Conv3x3 -> BN] + [Conv1x1 -> BN], add, ReLU, MaxPool 2x2."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv_a = SameConv2d(in_channels, out_channels, 3)
        self.bn_a = _bn(out_channels)
        self.conv_b = SameConv2d(out_channels, out_channels, 3)
        self.bn_b = _bn(out_channels)
        self.conv_skip = SameConv2d(in_channels, out_channels, 1)
        self.bn_skip = _bn(out_channels)
        self.act = nn.ReLU()
        self.pool = nn.MaxPool2d(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        main = self.bn_b(self.conv_b(self.bn_a(F.relu(self.conv_a(x)))))
        return self.pool(self.act(main + self.bn_skip(self.conv_skip(x))))


class PhydcmNet(nn.Module):
    """The phydcm classifier: input N x 3 x 224 x 224 RGB in [0, 1]; output logits (softmax = Keras output).

    ``blocks[-1].act`` is the last convolutional activation (14 x 14), the Grad-CAM target.
    """

    def __init__(self, num_classes: int, widths: Sequence[int] = (128, 128, 256, 256)) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.stem_conv = SameConv2d(3, 64, 7, stride=2)
        self.stem_bn = _bn(64)
        self.stem_pool = SameMaxPool2d(3, 2)
        channels = [64, *widths]
        self.blocks = nn.ModuleList(
            ResidualBlock(a, b) for a, b in zip(channels[:-1], channels[1:], strict=True)
        )
        self.fc1 = nn.Linear(widths[-1], 512)
        self.fc2 = nn.Linear(512, 128)
        self.fc3 = nn.Linear(128, num_classes)
        self.dropout = nn.Dropout(0.3)

    @property
    def residual_blocks(self) -> list[ResidualBlock]:
        """The residual blocks in order, typed as such (a ModuleList hands out plain modules)."""
        return [cast(ResidualBlock, block) for block in self.blocks]

    @property
    def target_layer(self) -> nn.Module:
        """The module whose output Grad-CAM weighs (the last block's ReLU)."""
        return self.residual_blocks[-1].act

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Globally pooled features (N x 256), Keras' ``global_average_pooling2d`` output."""
        x = self.stem_pool(self.stem_bn(F.relu(self.stem_conv(x))))
        for block in self.blocks:
            x = block(x)
        return x.mean(dim=(2, 3))

    def penultimate(self, x: torch.Tensor) -> torch.Tensor:
        """The 128-unit dense layer's output (Keras ``dense_1``)."""
        h = self.dropout(F.relu(self.fc1(self.features(x))))
        return F.relu(self.fc2(h))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(self.dropout(self.penultimate(x)))

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax probabilities, computed without gradients."""
        with torch.inference_mode():
            return torch.softmax(self.forward(x).float(), dim=1)


# ----------------------------------------------------------------------------------------------
# Reading the Keras file
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KerasGraph:
    """The layer names of a phydcm ``.keras`` file, in the port's order."""

    stem: tuple[str, str]  # conv, bn
    blocks: tuple[tuple[str, str, str, str, str, str], ...]  # conv_a, bn_a, conv_b, bn_b, skip, bn_skip
    dense: tuple[str, str, str]
    num_classes: int
    widths: tuple[int, ...]


def _inbound(layer: dict) -> list[str]:
    names = []
    for node in layer.get("inbound_nodes") or []:
        args = node.get("args", []) if isinstance(node, dict) else []
        first = args[0] if args else []
        for item in first if isinstance(first, list) else [first]:
            if isinstance(item, dict) and "keras_history" in item.get("config", {}):
                names.append(item["config"]["keras_history"][0])
    return names


def parse_keras_config(config: dict) -> KerasGraph:
    """Map the Keras functional graph onto :class:`PhydcmNet`, checking it is the expected network.

    Raises:
        InvalidInputError: the file describes a different architecture.
    """
    layers = config.get("config", {}).get("layers", [])
    by_name = {layer["config"]["name"]: layer for layer in layers}
    after: dict[str, str] = {}
    for layer in layers:
        if layer["class_name"] == "BatchNormalization":
            (source,) = _inbound(layer)
            after[source] = layer["config"]["name"]
    convs = [layer for layer in layers if layer["class_name"] == "Conv2D"]
    dense = [layer["config"]["name"] for layer in layers if layer["class_name"] == "Dense"]
    if len(convs) < 4 or (len(convs) - 1) % 3 or len(dense) != 3:
        raise InvalidInputError("The Keras file does not hold the phydcm residual network.")
    stem = convs[0]["config"]
    if stem["kernel_size"] != [7, 7] or stem["strides"] != [2, 2] or stem["filters"] != 64:
        raise InvalidInputError("The Keras file's first convolution is not the phydcm 7x7/2 stem.")
    blocks, widths = [], []
    for i in range(1, len(convs), 3):
        a, b, skip = (convs[i + j]["config"] for j in range(3))
        if a["kernel_size"] != [3, 3] or b["kernel_size"] != [3, 3] or skip["kernel_size"] != [1, 1]:
            raise InvalidInputError("The Keras file's residual blocks are not laid out as expected.")
        blocks.append(
            (a["name"], after[a["name"]], b["name"], after[b["name"]], skip["name"], after[skip["name"]])
        )
        widths.append(int(a["filters"]))
    num_classes = int(by_name[dense[-1]]["config"]["units"])
    return KerasGraph(
        stem=(stem["name"], after[stem["name"]]),
        blocks=tuple(blocks),
        dense=(dense[0], dense[1], dense[2]),
        num_classes=num_classes,
        widths=tuple(widths),
    )


def read_keras_file(path: str | Path) -> tuple[KerasGraph, dict[str, list[np.ndarray]]]:
    """The graph and every layer's variables (in Keras order) of a ``.keras`` zip, without keras."""
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
        weights_bytes = archive.read("model.weights.h5")
    graph = parse_keras_config(config)
    variables: dict[str, list[np.ndarray]] = {}
    with h5py.File(io.BytesIO(weights_bytes), "r") as h5:
        for name, group in h5["layers"].items():
            if "vars" in group and len(group["vars"]):
                keys = sorted(group["vars"].keys(), key=int)
                variables[name] = [np.asarray(group["vars"][k], dtype=np.float32) for k in keys]
    return graph, variables


def _copy(target: torch.Tensor | None, value: np.ndarray, what: str) -> None:
    if target is None:  # a bias-free or stat-free layer where the Keras file has values
        raise InvalidInputError(f"The port has no variable for {what}; the Keras file holds one.")
    if tuple(target.shape) != value.shape:
        raise InvalidInputError(f"Weight shape mismatch for {what}: {value.shape} vs {tuple(target.shape)}.")
    with torch.no_grad():
        target.copy_(torch.from_numpy(np.ascontiguousarray(value)))


def _load_conv(conv: nn.Conv2d, values: list[np.ndarray], what: str) -> None:
    _copy(conv.weight, values[0].transpose(3, 2, 0, 1), what)  # HWIO -> OIHW
    _copy(conv.bias, values[1], what)


def _load_bn(bn: nn.BatchNorm2d, values: list[np.ndarray], what: str) -> None:
    gamma, beta, mean, var = values  # Keras 3 order
    _copy(bn.weight, gamma, what)
    _copy(bn.bias, beta, what)
    _copy(bn.running_mean, mean, what)
    _copy(bn.running_var, var, what)


def _load_dense(linear: nn.Linear, values: list[np.ndarray], what: str) -> None:
    _copy(linear.weight, values[0].T, what)  # (in, out) -> (out, in)
    _copy(linear.bias, values[1], what)


def load_keras_weights(path: str | Path) -> PhydcmNet:
    """Build a :class:`PhydcmNet` from a phydcm ``.keras`` file, in eval mode on the CPU."""
    graph, variables = read_keras_file(path)
    model = PhydcmNet(graph.num_classes, graph.widths)
    try:
        _load_conv(model.stem_conv, variables[graph.stem[0]], graph.stem[0])
        _load_bn(model.stem_bn, variables[graph.stem[1]], graph.stem[1])
        for block, names in zip(model.residual_blocks, graph.blocks, strict=True):
            conv_a, bn_a, conv_b, bn_b, skip, bn_skip = names
            _load_conv(block.conv_a, variables[conv_a], conv_a)
            _load_bn(block.bn_a, variables[bn_a], bn_a)
            _load_conv(block.conv_b, variables[conv_b], conv_b)
            _load_bn(block.bn_b, variables[bn_b], bn_b)
            _load_conv(block.conv_skip, variables[skip], skip)
            _load_bn(block.bn_skip, variables[bn_skip], bn_skip)
        for linear, name in zip((model.fc1, model.fc2, model.fc3), graph.dense, strict=True):
            _load_dense(linear, variables[name], name)
    except KeyError as exc:
        raise InvalidInputError(f"The Keras weights file lacks the layer {exc.args[0]!r}.") from None
    return model.eval()


# ----------------------------------------------------------------------------------------------
# Registry
# ----------------------------------------------------------------------------------------------

MRI_WEIGHTS = Asset("phydcm", PHYDCM_PIP, "models/mri_best_model.keras", PHYDCM_LICENCE, PHYDCM_SOURCE)
CT_WEIGHTS = Asset("phydcm", PHYDCM_PIP, "models/ct_best_model.keras", PHYDCM_LICENCE, PHYDCM_SOURCE)
PET_WEIGHTS = Asset("phydcm", PHYDCM_PIP, "models/pet_best_model.keras", PHYDCM_LICENCE, PHYDCM_SOURCE)

PREPROCESSING = (
    "Windowed 8-bit grey image repeated to 3 channels (RGB), resized to 224 x 224 with bilinear "
    "interpolation (no antialiasing, like OpenCV's default), divided by 255; no mean/std normalisation."
)

MEDICAL_MODELS = ModelRegistry("medical")


@MEDICAL_MODELS.register(
    title="Brain MRI tumour classifier (phydcm)",
    source=PHYDCM_SOURCE,
    licence=PHYDCM_LICENCE,
    data=(
        "Trained by the phydcm authors on brain MRI slices in four classes; the training and test "
        "data and their accuracy are not published with the package."
    ),
    description=(
        "Residual CNN (a 7x7 stem and 4 residual blocks, 2.9 M parameters) ported from Keras to PyTorch."
    ),
    labels=("glioma", "meningioma", "notumor", "pituitary"),
    extra={"asset": MRI_WEIGHTS, "modality": "MR", "preprocessing": PREPROCESSING},
)
def phydcm_brain_mri() -> PhydcmNet:
    """The brain-MRI demo classifier with its packaged weights."""
    return load_keras_weights(MRI_WEIGHTS.path())


@MEDICAL_MODELS.register(
    title="CT tumour classifier (phydcm)",
    source=PHYDCM_SOURCE,
    licence=PHYDCM_LICENCE,
    data=(
        "Trained by the phydcm authors on CT slices labelled tumour / no tumour; the training and "
        "test data and their accuracy are not published with the package."
    ),
    description="Same residual CNN as the brain-MRI model, with a two-class head.",
    labels=("notumor", "tumor"),
    extra={"asset": CT_WEIGHTS, "modality": "CT", "preprocessing": PREPROCESSING},
)
def phydcm_ct() -> PhydcmNet:
    """The CT demo classifier with its packaged weights."""
    return load_keras_weights(CT_WEIGHTS.path())


def prepare_input(image_rgb: np.ndarray, size: int = INPUT_SIZE) -> torch.Tensor:
    """A 1 x 3 x size x size float tensor in [0, 1] from an H x W x 3 uint8 image (phydcm preprocessing)."""
    arr = np.asarray(image_rgb)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise InvalidInputError("The classifier needs one 2-D image (H x W x 3).")
    x = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32)).permute(2, 0, 1)[None]
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
    return (x / 255.0).clamp(0.0, 1.0)
