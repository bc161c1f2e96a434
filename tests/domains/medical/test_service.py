"""The medical service: classify, explain (Grad-CAM), train, reload, refuse built-in names."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from lucid.core.errors import InvalidInputError, TrainingCancelled
from lucid.domains.medical.data import LabelledScans, group_split
from lucid.domains.medical.service import MedicalService
from lucid.domains.medical.training import ScanTrainConfig, train_on_scans
from lucid.imaging.datasets import LabelledImages


def test_demo_model_classifies_a_dicom_and_grad_cam_is_non_trivial(model_store):
    service = MedicalService(model_store)
    from lucid.domains.medical.reading import load_scan
    from lucid.domains.medical.windowing import render_for_model

    scan = load_scan(Path(get_testdata_file("MR_small.dcm", download=False)).read_bytes(), "MR_small.dcm")
    prediction = service.classify(render_for_model(scan), "phydcm_brain_mri")
    assert list(prediction.probabilities.index) == ["glioma", "meningioma", "notumor", "pituitary"]
    assert prediction.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    assert prediction.model_image.shape == (224, 224, 3) and not prediction.calibrated
    cam = service.gradcam(prediction.model_image, "phydcm_brain_mri", prediction.class_index)
    assert cam.values.shape == (224, 224) and 0 < float(cam.values.mean()) < 1


def _synthetic_set(n: int = 36) -> LabelledScans:
    rng = np.random.default_rng(0)
    images, labels = [], []
    for i in range(n):
        image = rng.integers(0, 60, (32, 32, 3)).astype(np.uint8)
        if i % 2:
            image[8:24, 8:24] = 230
        images.append(Image.fromarray(image))
        labels.append("spot" if i % 2 else "empty")
    groups = [f"patient{i // 2}" for i in range(n)]  # two images per patient
    data = LabelledImages(images=images, labels=labels, names=[f"{i}.png" for i in range(n)])
    data.split = group_split(labels, groups, seed=0)
    return LabelledScans(data, groups, "patient", "photo", "file")


def test_train_saves_and_reloads_the_same_model_and_refuses_builtin_names(model_store):
    service = MedicalService(model_store)
    labelled = _synthetic_set()
    config = ScanTrainConfig(epochs=1, image_size=32, batch_size=12, mode="full")
    # One untrained-from-scratch epoch need not pass the quality gate; this test is about saving.
    stored, result = service.train(labelled, "spots", config, pretrained=False, save_anyway=True)
    assert stored is not None and result.saved
    assert stored.metadata["class_names"] == ["empty", "spot"]
    m = result.metrics
    assert m["groups_in_train_and_test"] == 0 and m["n_test"] == sum(result.split_counts["test"].values()) > 0
    assert set(m["per_class"]["spot"]) == {"auc", "sensitivity", "specificity", "support"}
    assert 0.25 <= result.temperature <= 10.0
    fresh = MedicalService(model_store)
    assert "spots" in fresh.model_names()
    image = np.asarray(labelled.data.images[1])
    a = service.classify(image, "spots").probabilities.to_numpy()
    b = fresh.classify(image, "spots").probabilities.to_numpy()
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert fresh.classify(image, "spots").calibrated == result.calibrated
    card = fresh.card("spots")
    assert card.metrics["Test accuracy"] == m["accuracy"]
    with pytest.raises(InvalidInputError, match="built-in"):
        service.train(labelled, "phydcm_ct", config, pretrained=False)
    with pytest.raises(TrainingCancelled):
        train_on_scans(labelled, config, pretrained=False, should_stop=lambda: True)


def test_a_stale_default_is_converted_again_and_unknown_names_are_refused(model_store):
    from lucid.core.errors import ModelNotFoundError
    from lucid.domains.medical.model import PORT_VERSION

    # Stored by an older conversion: the port_version alone no longer makes it current.
    stale = {"port_version": PORT_VERSION, "recipe_version": 0}
    model_store.save("medical", "phydcm_ct", lambda folder: None, stale)
    service = MedicalService(model_store)
    assert not service.is_built("phydcm_ct")
    probs = service.classify(np.zeros((32, 32, 3), np.uint8), "phydcm_ct").probabilities
    assert list(probs.index) == ["notumor", "tumor"]
    meta = model_store.load("medical", "phydcm_ct").metadata
    assert meta["recipe_version"] == PORT_VERSION and meta["measured"]
    assert service.is_built("phydcm_ct") and not service.is_built("phydcm_brain_mri")
    assert service.card("phydcm_brain_mri").metrics.startswith("Not available")  # carded before it is built
    with pytest.raises(ModelNotFoundError) as info:
        service.check_name("no-such-scans-model")
    assert "phydcm_brain_mri" in info.value.valid
    with pytest.raises(InvalidInputError, match="built-in"):
        service.delete("phydcm_ct")
