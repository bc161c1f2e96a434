"""The quality gate of training on your own scans: held-out accuracy against the most common training
class, what is saved (only models that pass, unless asked), and the command line's view of it."""

import json

import numpy as np
import pytest
from PIL import Image

from lucid.domains.medical.data import LabelledScans, group_split
from lucid.domains.medical.service import MedicalService
from lucid.domains.medical.training import ScanTrainConfig
from lucid.imaging.datasets import LabelledImages
from tests.fixtures.medical.builders import make_zip

TINY = ScanTrainConfig(epochs=1, image_size=32, batch_size=16, mode="head")


def _scans(n: int, *, informative: bool) -> LabelledScans:
    """``n`` scans of two classes, two per patient (one of each class); with ``informative`` false every
    scan is the same image, so no model can tell the classes apart."""
    rng = np.random.default_rng(0)
    flat = rng.integers(0, 60, (32, 32, 3)).astype(np.uint8)
    images, labels = [], []
    for i in range(n):
        image = rng.integers(0, 60, (32, 32, 3)).astype(np.uint8) if informative else flat.copy()
        if informative and i % 2:
            image[8:24, 8:24] = 230
        images.append(Image.fromarray(image))
        labels.append("spot" if i % 2 else "empty")
    groups = [f"patient{i // 2}" for i in range(n)]
    data = LabelledImages(images=images, labels=labels, names=[f"{i}.png" for i in range(n)])
    data.split = group_split(labels, groups, seed=0)
    return LabelledScans(data, groups, "patient", "photo", "file")


def test_a_model_that_cannot_beat_the_majority_class_is_not_saved_until_asked(model_store):
    service = MedicalService(model_store)
    stored, result = service.train(_scans(36, informative=False), "flat", TINY, pretrained=False)
    gate = result.gate
    assert stored is None and not result.saved and result.name == "flat"
    assert not model_store.exists("medical", "flat") and "flat" not in service.model_names()
    # Identical scans get one prediction, which is right on exactly the majority class's share.
    assert len(set(result.test_predictions.tolist())) == 1
    assert gate.model == pytest.approx(0.5) and gate.baseline == pytest.approx(0.5)
    assert gate.chance == 0.5 and gate.n_test == len(result.test_labels) > 0
    assert not gate.beats_baseline and not gate.passed
    assert gate.verdict().startswith("Not better than its baseline")
    assert "most common training class" in gate.verdict()
    assert any("held-out items" in c for c in gate.caveats())  # a tiny test split is stated as such
    # The user's explicit choice saves it, gate and all.
    saved = service.save_trained(result)
    assert saved.name == "flat" and result.saved and "flat" in service.model_names()
    meta = model_store.load("medical", "flat").metadata
    assert meta["quality_gate"]["passed"] is False and meta["saved_anyway"] is True
    assert meta["quality_gate"]["baseline"] == pytest.approx(0.5)
    table = service.saved_models_table()
    assert table.loc[0, "Held-out result"] == "accuracy 0.500 (baseline 0.500)"
    assert "36 photo scans, 2 classes" in table.loc[0, "Data"]
    assert "did not pass" in service.card("flat").details["Quality gate (held-out)"]


def test_save_anyway_saves_a_model_that_does_not_pass(model_store):
    service = MedicalService(model_store)
    stored, result = service.train(
        _scans(36, informative=False), "flat-anyway", TINY, pretrained=False, save_anyway=True
    )
    assert stored is not None and result.saved and not result.gate.passed
    assert model_store.load("medical", "flat-anyway").metadata["quality_gate"] == result.gate.as_dict()


@pytest.mark.slow
def test_a_good_model_is_saved_with_its_gate(model_store):
    service = MedicalService(model_store)
    config = ScanTrainConfig(epochs=3, image_size=32, batch_size=16, mode="head", learning_rate=0.01)
    stored, result = service.train(_scans(60, informative=True), "spots-gate", config)
    gate = result.gate
    assert stored is not None and result.saved, gate.verdict()
    assert gate.passed and gate.model > gate.baseline == pytest.approx(0.5)
    assert gate.model == pytest.approx(result.metrics["accuracy"])
    assert gate.model_low > gate.chance
    meta = model_store.load("medical", "spots-gate").metadata
    assert meta["quality_gate"]["passed"] is True and meta["saved_anyway"] is False
    assert meta["quality_gate"]["model"] == pytest.approx(gate.model)


def _flat_zip(tmp_path):
    """A zip of two class folders holding the same image: no model can beat the majority class."""
    from lucid.domains.medical.windowing import to_png

    image = to_png(np.random.default_rng(0).integers(0, 60, (32, 32, 3)).astype(np.uint8))
    path = tmp_path / "flat.zip"
    path.write_bytes(make_zip({f"{label}/{i}.png": image for label in ("a", "b") for i in range(10)}))
    return str(path)


def _last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.slow
def test_cli_train_reports_the_gate_and_saves_only_with_save_anyway(model_store, tmp_path, capsys):
    from lucid.cli import main

    argv = ["medical", "train", _flat_zip(tmp_path), "--name", "flat-cli", "--epochs", "1"]
    argv += ["--image-size", "32", "--mode", "head"]
    assert main(argv) == 0
    out = _last_json(capsys)
    assert out["saved"] is False and out["beats_baseline"] is False
    gate = out["quality_gate"]
    assert gate["passed"] is False and gate["model"] == gate["baseline"] == pytest.approx(0.5)
    assert gate["chance"] == 0.5 and "--save-anyway" in out["message"]
    assert "flat-cli" not in MedicalService(model_store).model_names()
    assert main([*argv, "--save-anyway"]) == 0
    out = _last_json(capsys)
    assert out["saved"] is True and out["beats_baseline"] is False and out["model"] == "flat-cli"
    assert "flat-cli" in MedicalService(model_store).model_names()
    # Rename and delete through the command line change the store.
    assert main(["medical", "models", "--rename", "flat-cli", "renamed-cli"]) == 0
    listed = _last_json(capsys)
    assert listed["renamed"] == {"from": "flat-cli", "to": "renamed-cli"}
    assert [m["Name"] for m in listed["saved"]] == ["renamed-cli"]
    assert model_store.exists("medical", "renamed-cli") and not model_store.exists("medical", "flat-cli")
    assert main(["medical", "models", "--delete", "renamed-cli"]) == 0
    assert _last_json(capsys)["saved"] == [] and model_store.list("medical") == []
