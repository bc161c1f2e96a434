"""The quality gate of the train-your-own flow: test accuracy against the most common training class
and against chance; a model that does not pass is saved only on the user's explicit choice."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from lucid.domains.vision.quality import accuracy_gate, held_out_pairs
from lucid.domains.vision.service import VisionService
from lucid.imaging.datasets import LabelledImages, labelled_images_from_zip
from lucid.imaging.metrics import classification_metrics
from lucid.imaging.training import FineTuneConfig

#: The smallest run that still learns red against blue: one epoch, 64 px, no augmentation.
TINY = FineTuneConfig(epochs=1, image_size=64, augment=False)


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _zip(items: list[tuple[str, np.ndarray]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for path, array in items:
            zf.writestr(path, _png(array))
    return buffer.getvalue()


def colours_zip(n: int = 10) -> bytes:
    """Red against blue noise: trivially separable."""
    rng = np.random.default_rng(0)
    items = []
    for label, channel in (("red", 0), ("blue", 2)):
        for i in range(n):
            arr = rng.integers(0, 60, (40, 40, 3)).astype(np.uint8)
            arr[..., channel] += 180
            items.append((f"{label}/{i}.png", arr))
    return _zip(items)


def identical_zip() -> bytes:
    """Two classes (10 'a', 7 'b') of the very same picture: any model answers one class for all, so
    it cannot beat always answering the most common training class."""
    same = np.random.default_rng(1).integers(0, 255, (40, 40, 3)).astype(np.uint8)
    return _zip([(f"a/{i}.png", same) for i in range(10)] + [(f"b/{i}.png", same) for i in range(7)])


def data_of(blob: bytes) -> LabelledImages:
    return labelled_images_from_zip(blob)


# ------------------------------------------------------------------ the gate from test metrics
def test_pairs_come_back_from_the_confusion_matrix():
    y_true = np.array([0, 0, 1, 1, 1, 2, 2, 0])
    y_pred = np.array([0, 1, 1, 1, 2, 2, 0, 0])
    metrics = classification_metrics(y_true, y_pred, ["a", "b", "c"], train_labels=[0, 1, 1, 2])
    true, pred = held_out_pairs(metrics)
    pairs = sorted(zip(true.tolist(), pred.tolist(), strict=True))
    assert pairs == sorted(zip(y_true.tolist(), y_pred.tolist(), strict=True))


def test_one_class_for_everything_does_not_pass():
    y_true = np.array([0] * 30 + [1] * 20)
    metrics = classification_metrics(y_true, np.zeros(50, int), ["cat", "dog"], train_labels=[0, 0, 1])
    gate = accuracy_gate(metrics)
    assert gate.model == gate.baseline == pytest.approx(0.6) and gate.chance == 0.5
    assert not gate.beats_baseline and not gate.passed
    assert gate.verdict().startswith("Not better than its baseline")
    assert "always predicting 'cat'" in gate.baseline_name and gate.n_test == 50
    assert gate.caveats() == []  # 50 items, 20 or more a class


def test_a_good_model_passes_and_a_small_test_set_is_caveated():
    y_true = np.array([0] * 20 + [1] * 20 + [2] * 3)
    y_pred = y_true.copy()
    y_pred[:2] = 1  # 41 of 43 right
    metrics = classification_metrics(y_true, y_pred, ["a", "b", "c"], train_labels=[0, 0, 1, 2])
    gate = accuracy_gate(metrics)
    assert gate.model == pytest.approx(41 / 43) and gate.baseline == pytest.approx(20 / 43)
    assert gate.chance == pytest.approx(1 / 3) and gate.passed and gate.diff_low > 0
    assert gate.model_low > 0.85
    assert gate.caveats() == [
        "Few held-out images for 'c' (3): per-class recall rests on a handful of images."
    ]
    small = accuracy_gate(classification_metrics([0, 1, 1], [0, 1, 1], ["a", "b"], train_labels=[1, 1, 0]))
    assert small.passed and any("Only 3 held-out items" in c for c in small.caveats())


# ------------------------------------------------------------------ the service
def test_a_model_that_cannot_beat_its_baseline_is_not_saved_until_asked(model_store):
    service = VisionService(model_store)
    trained = service.train(data_of(identical_zip()), "same", TINY)
    gate = trained.gate
    assert not trained.saved and not gate.passed and not gate.beats_baseline
    assert gate.model == pytest.approx(gate.baseline)
    assert gate.baseline_name.startswith("always predicting 'a'")
    assert "Not better than its baseline" in gate.verdict()
    assert not model_store.exists("vision", "same") and "same" not in service.model_names()
    service.save_trained(trained)  # the user's explicit choice, later
    assert trained.saved and service.model_names()[-1] == "same"
    stored = model_store.load("vision", "same")
    assert stored.metadata["quality_gate"] == gate.as_dict()
    assert stored.metadata["quality_gate"]["passed"] is False
    assert "did not pass" in service.card("same").metrics["Quality check"]


def test_save_anyway_saves_a_model_that_did_not_pass(model_store):
    service = VisionService(model_store)
    trained = service.train(data_of(identical_zip()), "kept", TINY, save_anyway=True)
    assert trained.saved and not trained.gate.passed
    meta = model_store.load("vision", "kept").metadata
    assert meta["quality_gate"]["beats_baseline"] is False and meta["data"].startswith("17 labelled images")


def test_a_good_model_is_saved_with_its_gate(model_store):
    service = VisionService(model_store)
    trained = service.train(data_of(colours_zip()), "colours", TINY)
    gate = trained.gate
    assert trained.saved and gate.passed
    assert gate.model == pytest.approx(1.0) and gate.baseline == pytest.approx(0.5) and gate.chance == 0.5
    meta = model_store.load("vision", "colours").metadata
    assert meta["quality_gate"] == gate.as_dict() and meta["quality_gate"]["n_test"] == 4
    table = service.saved_models_table()
    assert list(table["Name"]) == ["colours"]
    assert table.loc[0, "Held-out result"] == "accuracy 1.000 (baseline 0.500)"
    assert table.loc[0, "Data"] == "20 labelled images, 2 classes (blue, red)"
    assert service.card("colours").metrics["Quality check"].startswith("passed: accuracy 1.000")
