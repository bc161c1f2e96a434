"""The PyTorch port of the phydcm Keras networks reproduces the original Keras outputs."""

import copy
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from lucid.core.errors import InvalidInputError, ModelNotFoundError
from lucid.domains.medical.model import (
    MEDICAL_MODELS,
    MRI_WEIGHTS,
    PhydcmNet,
    _same_padding,
    parse_keras_config,
    prepare_input,
)
from tests.fixtures.medical.golden_inputs import golden_inputs

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "medical"
GOLDEN = np.load(FIXTURES / "phydcm_golden.npz")


@pytest.fixture(scope="module")
def inputs() -> torch.Tensor:
    return torch.from_numpy(golden_inputs()).permute(0, 3, 1, 2).contiguous()


@pytest.mark.parametrize(("name", "key"), [("phydcm_brain_mri", "mri"), ("phydcm_ct", "ct")])
def test_port_reproduces_keras_reference_outputs(name, key, inputs, device):
    model = MEDICAL_MODELS.create(name).to(device)
    x = inputs.to(device)
    with torch.inference_mode():
        pooled = model.features(x).cpu().numpy()
        dense = model.penultimate(x).cpu().numpy()
        probs = torch.softmax(model(x), dim=1).cpu().numpy()
    np.testing.assert_allclose(probs, GOLDEN[f"{key}_probs"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(pooled, GOLDEN[f"{key}_pooled"], atol=1e-4, rtol=1e-5)
    np.testing.assert_allclose(dense, GOLDEN[f"{key}_dense128"], atol=1e-4, rtol=1e-5)
    assert np.abs(GOLDEN[f"{key}_pooled"][0] - GOLDEN[f"{key}_pooled"][2]).max() > 0.1


def test_a_random_network_does_not_match_the_reference(inputs):
    torch.manual_seed(0)
    model = PhydcmNet(4).eval()
    with torch.inference_mode():
        probs = torch.softmax(model(inputs), 1).numpy()
    assert np.abs(probs - GOLDEN["mri_probs"]).max() > 1e-2


def test_keras_same_padding_puts_the_extra_pixel_bottom_right():
    assert _same_padding(224, 7, 2) == (2, 3)
    assert _same_padding(112, 3, 2) == (0, 1)
    assert _same_padding(56, 3, 1) == (1, 1)


def test_config_of_another_network_is_refused():
    with zipfile.ZipFile(MRI_WEIGHTS.path()) as archive:
        config = json.loads(archive.read("config.json"))
    graph = parse_keras_config(config)
    assert graph.num_classes == 4 and graph.widths == (128, 128, 256, 256)
    broken = copy.deepcopy(config)
    first_conv = next(layer for layer in broken["config"]["layers"] if layer["class_name"] == "Conv2D")
    first_conv["config"]["kernel_size"] = [5, 5]
    with pytest.raises(InvalidInputError, match="stem"):
        parse_keras_config(broken)


def test_registry_lists_names_and_prepares_inputs():
    assert MEDICAL_MODELS.names() == ["phydcm_brain_mri", "phydcm_ct"]
    assert MEDICAL_MODELS.get("phydcm_ct").labels == ("notumor", "tumor")
    with pytest.raises(ModelNotFoundError, match="phydcm_brain_mri, phydcm_ct"):
        MEDICAL_MODELS.get("phydcm_pet")
    image = np.zeros((100, 60, 3), dtype=np.uint8)
    image[:, :30] = 255
    x = prepare_input(image)
    assert x.shape == (1, 3, 224, 224)
    assert float(x[0, 0, 0, 0]) == 1.0 and float(x[0, 0, 0, -1]) == 0.0
