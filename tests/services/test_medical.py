"""The medical service: classify, explain (Grad-CAM, SHAP, faithfulness), train, evaluate, CLI."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures" / "medical"))

from builders import make_dicom, make_zip  # noqa: E402

from lucid.core.errors import InvalidInputError, TrainingCancelled  # noqa: E402
from lucid.domains.medical.service import MedicalService, ensure_default_models  # noqa: E402
from lucid.domains.medical.training import (  # noqa: E402
    LabelledScans,
    ScanTrainConfig,
    bccd_cell_crops,
    fit_temperature,
    group_split,
    labelled_scans_from_zip,
    medical_metrics,
    train_on_scans,
)
from lucid.imaging.classifier import LabelledImages  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def test_demo_model_classifies_a_dicom_and_grad_cam_is_non_trivial(model_store):
    service = MedicalService(model_store)
    from lucid.domains.medical.scans import load_scan
    from lucid.domains.medical.training import render_for_model

    scan = load_scan(Path(get_testdata_file("MR_small.dcm", download=False)).read_bytes(), "MR_small.dcm")
    prediction = service.classify(render_for_model(scan), "phydcm_brain_mri")
    assert list(prediction.probabilities.index) == ["glioma", "meningioma", "notumor", "pituitary"]
    assert prediction.probabilities.sum() == pytest.approx(1.0, abs=1e-5)
    assert prediction.model_image.shape == (224, 224, 3) and not prediction.calibrated
    cam = service.gradcam(prediction.model_image, "phydcm_brain_mri", prediction.class_index)
    assert cam.values.shape == (224, 224) and 0 < float(cam.values.mean()) < 1


def test_metrics_and_temperature():
    labels = np.array([0, 0, 1, 1, 2, 2])
    probs = np.eye(3)[labels] * 0.7 + 0.1
    m = medical_metrics(probs, labels, ["a", "b", "c"])
    assert m["accuracy"] == 1.0 and m["macro_auc"] == 1.0
    assert m["confusion_matrix"] == [[2, 0, 0], [0, 2, 0], [0, 0, 2]]
    assert m["per_class"]["a"]["sensitivity"] == 1.0 and m["per_class"]["a"]["specificity"] == 1.0
    assert m["ece"] == pytest.approx(0.2, abs=1e-6)  # confident 0.8, always right
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    logits = rng.normal(0, 1, (300, 3))
    logits[np.arange(300), y] += 1.0
    assert fit_temperature(logits * 4, y) > 2.5  # over-confident logits get a large temperature
    assert fit_temperature(logits / 4, y) < 0.5


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
    stored, result = service.train(labelled, "spots", config, pretrained=False)
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
    card = fresh.model_card("spots")
    assert card["Held-out test accuracy"] == m["accuracy"]
    with pytest.raises(InvalidInputError, match="built-in"):
        service.train(labelled, "phydcm_ct", config, pretrained=False)
    with pytest.raises(TrainingCancelled):
        train_on_scans(labelled, config, pretrained=False, should_stop=lambda: True)


@pytest.mark.slow
def test_default_models_are_converted_once_with_measured_behaviour(model_store):
    assert ensure_default_models(store=model_store) == ["phydcm_brain_mri", "phydcm_ct"]
    assert ensure_default_models(store=model_store) == []
    meta = model_store.load("medical", "phydcm_ct").metadata
    assert set(meta["measured"]) >= {"MR_small.dcm", "CT_small.dcm", "retina"}
    service = MedicalService(model_store)
    card = service.model_card("phydcm_brain_mri")
    assert "not for clinical use" in card["Limits"] and "PET" in card["Limits"]
    # The stored safetensors give the same outputs as the Keras file.
    image = np.random.default_rng(0).integers(0, 255, (64, 64, 3)).astype(np.uint8)
    from lucid.domains.medical.model import MEDICAL_MODELS, prepare_input

    prediction = service.classify(image, "phydcm_ct")
    keras_port = MEDICAL_MODELS.create("phydcm_ct")
    direct = keras_port.predict_proba(prepare_input(prediction.model_image)).numpy()[0]
    np.testing.assert_allclose(prediction.probabilities.to_numpy(), direct, atol=1e-5)


def test_cli_scores_a_zip_of_scans_and_reports_bad_files(model_store, tmp_path, capsys):
    from lucid.cli import main

    ct = Path(get_testdata_file("CT_small.dcm", download=False)).read_bytes()
    data = make_zip({"a/CT_small.dcm": ct, "a/broken.dcm": b"not dicom" * 30})
    (tmp_path / "in.zip").write_bytes(data)
    argv = ["medical", "score", str(tmp_path / "in.zip"), "--out", str(tmp_path / "out.csv"), "--explain"]
    assert main([*argv, "--model", "phydcm_ct"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["scored"] == 1 and summary["failed"] == 1
    frame = pd.read_csv(tmp_path / "out.csv")
    ok = frame[frame["file"] == "a/CT_small.dcm"].iloc[0]
    assert ok["p_notumor"] + ok["p_tumor"] == pytest.approx(1.0, abs=1e-4)
    assert 0 <= ok["gradcam_peak_row"] < 224
    assert "not a DICOM file" in frame[frame["file"] == "a/broken.dcm"].iloc[0]["error"]
    assert main([*argv, "--model", "no_such_model"]) == 1
    assert "phydcm_brain_mri" in capsys.readouterr().err


def test_cli_evaluate_on_labelled_zip_via_subprocess(model_store, tmp_path):
    pixels = np.random.default_rng(1).integers(0, 3000, (4, 24, 24)).astype(np.uint16)
    files = {f"{label}/{i}.dcm": make_dicom(pixels[i]) for label in ("notumor", "tumor") for i in range(4)}
    (tmp_path / "labelled.zip").write_bytes(make_zip(files))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "lucid",
            "medical",
            "evaluate",
            str(tmp_path / "labelled.zip"),
            "--model",
            "phydcm_ct",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    metrics = json.loads(out.stdout.strip().splitlines()[-1])
    assert metrics["n_test"] == 8 and 0 <= metrics["accuracy"] <= 1
    assert sum(map(sum, metrics["confusion_matrix"])) == 8
    # Same images under both labels: the model cannot tell them apart, so AUC is exactly 0.5.
    assert metrics["per_class"]["tumor"]["auc"] == pytest.approx(0.5)


def test_zip_of_png_folders_reads_labels():
    from lucid.domains.medical.scans import to_png

    files = {
        f"{c}/{i}.png": to_png(np.full((20, 20, 3), 40 * i, np.uint8)) for c in ("x", "y") for i in range(4)
    }
    labelled = labelled_scans_from_zip(make_zip(files))
    assert labelled.counts() == {"x": 4, "y": 4}
    assert labelled.group_kind == "file" and labelled.modality == "photo"
    with pytest.raises(InvalidInputError, match="at least 4"):
        labelled_scans_from_zip(make_zip({k: v for k, v in files.items() if not k.endswith("3.png")}))


@pytest.mark.slow
def test_fine_tuning_on_bccd_cell_crops_beats_the_majority_class(shared_data, model_store):
    crops = bccd_cell_crops(shared_data / "bccd", per_class={"train": 40, "val": 12, "test": 30})
    service = MedicalService(model_store)
    config = ScanTrainConfig(epochs=3, image_size=96, batch_size=16, mode="head")
    stored, result = service.train(crops, "bccd-cells", config)
    m = result.metrics
    assert m["groups_in_train_and_test"] == 0  # cells of one smear never straddle train and test
    assert m["majority_baseline_accuracy"] == pytest.approx(1 / 3)
    assert m["accuracy"] >= m["majority_baseline_accuracy"] + 0.35, m
    assert m["macro_auc"] > 0.9
    assert stored.metadata["metrics"]["accuracy"] == m["accuracy"]
