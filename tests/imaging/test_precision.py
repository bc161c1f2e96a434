"""Reduced precision where the device has it: same answers as float32 within stated bounds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lucid.domains.vision.data import sample_images
from lucid.domains.vision.model import imagenet_class_names
from lucid.domains.vision.service import DEFAULT_MODEL, VisionService
from lucid.imaging.backbones import load_efficientnet_lite0
from lucid.imaging.classifier import ImageClassifier
from lucid.imaging.preprocess import ImagePreprocessing, fold_batchnorm

PHOTOS = ["chelsea", "coffee", "astronaut", "rocket"]


@pytest.fixture(scope="module")
def lite0():
    model = load_efficientnet_lite0()
    return model, ImagePreprocessing.from_model(model)


def test_bfloat16_classifies_the_sample_photos_like_float32(lite0):
    model, prep = lite0
    images = list(sample_images(PHOTOS).values())
    full = ImageClassifier(model, prep, imagenet_class_names(), precision="fp32").predict_images(images)
    half = ImageClassifier(model, prep, imagenet_class_names(), precision="bf16").predict_images(images)
    assert half.dtype == np.float32
    np.testing.assert_array_equal(full.argmax(1), half.argmax(1))
    assert np.abs(full - half).max() < 0.05
    assert np.abs(half.sum(1) - 1).max() < 1e-4  # softmax is taken in float32


def test_bfloat16_outputs_do_not_depend_on_the_batch(lite0):
    """SHAP's additivity check compares a single call with batched calls: they must agree."""
    model, prep = lite0
    clf = ImageClassifier(model, prep, imagenet_class_names(), precision="bf16", batch_size=16)
    views = np.stack([prep.view(im) for im in sample_images(PHOTOS).values()] * 3)
    alone = clf.predict_views(views[:1])
    batched = clf.predict_views(views)[:1]
    assert np.abs(alone - batched).max() < 1e-3


def test_float32_can_be_forced_by_environment(lite0, monkeypatch):
    model, prep = lite0
    monkeypatch.setenv("LUCID_PRECISION", "fp32")
    images = list(sample_images(["coffee"]).values())
    forced = ImageClassifier(model, prep, imagenet_class_names()).predict_images(images)
    with torch.inference_mode():
        direct = model.eval()(prep.to_tensor(np.stack([prep.view(im) for im in images]))).softmax(-1).numpy()
    assert np.abs(forced - direct).max() < 1e-5


def test_vision_card_reports_the_sample_photos_as_served(tmp_path):
    from lucid.core.store import ModelStore

    card = VisionService(ModelStore(tmp_path)).card(DEFAULT_MODEL)
    measured = card.sections()["Held-out test metrics"]["Measured here"]
    assert "'coffee' -> espresso 0.9" in measured
    assert "'chelsea' -> tiger cat" in measured or "'chelsea' -> Egyptian cat" in measured
    assert "computed in " in measured


def test_medical_models_always_compute_in_float32(tmp_path, monkeypatch):
    from lucid.core.store import ModelStore
    from lucid.domains.medical.service import MEDICAL_MODELS, MedicalService

    monkeypatch.setenv("LUCID_PRECISION", "bf16")
    service = MedicalService(ModelStore(tmp_path))
    name = MEDICAL_MODELS.names()[0]
    classifier = service.load(name).classifier
    assert classifier.precision == "fp32"
    views = np.random.default_rng(0).integers(0, 255, size=(2, 224, 224, 3)).astype(np.uint8)
    served = classifier.predict_views(views)
    with torch.inference_mode():
        direct = classifier.model(classifier.preprocessing.to_tensor(views)).softmax(-1).numpy()
    assert np.abs(served - direct).max() < 1e-5


def test_batchnorm_folding_keeps_the_outputs_and_leaves_the_model_alone(lite0):
    model, _ = lite0
    folded = fold_batchnorm(model)
    assert folded is not model
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == 49  # Grad-CAM still has bn2
    x = torch.randn(3, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        assert (model(x) - folded(x)).abs().max() < 1e-4


def test_batchnorm_after_an_inplace_activation_is_not_folded_into_the_convolution():
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(inplace=True), torch.nn.BatchNorm2d(4)
    ).eval()
    net[2].running_mean.uniform_(-1, 1)
    net[2].running_var.uniform_(0.5, 2)
    x = torch.randn(2, 3, 16, 16)
    with torch.inference_mode():
        expected = net(x)
        got = fold_batchnorm(net, (16, 16))(x)
    assert (expected - got).abs().max() < 1e-5  # folding would move the BatchNorm before the ReLU


def test_preprocessing_never_writes_into_the_callers_array(lite0):
    _, prep = lite0
    views = np.random.default_rng(0).uniform(0, 255, size=(2, 224, 224, 3)).astype(np.float32)
    before = views.copy()
    x = prep.to_tensor(views)
    np.testing.assert_array_equal(views, before)
    assert x.is_contiguous(memory_format=torch.channels_last)
    expected = (before / 255.0 - 0.5) / 0.5  # timm's config for EfficientNet-Lite0: mean = std = 0.5
    np.testing.assert_allclose(x.permute(0, 2, 3, 1).numpy(), expected, atol=1e-5)
