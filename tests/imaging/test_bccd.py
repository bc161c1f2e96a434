"""Fine-tuning the ImageNet EfficientNet-Lite0 on blood-cell crops (BCCD, read in place from shared data)."""

from __future__ import annotations

import pytest

from lucid.imaging.backbones import load_efficientnet_lite0
from lucid.imaging.datasets import LabelledImages, load_voc_crops
from lucid.imaging.preprocess import ImagePreprocessing
from lucid.imaging.training import FineTuneConfig, fine_tune

pytestmark = pytest.mark.slow


def _bccd(shared_data) -> LabelledImages:
    root = shared_data / "bccd" / "BCCD"
    if not root.is_dir():
        pytest.skip(f"BCCD not found at {root}")
    parts = {
        "train": load_voc_crops(root, "train", max_per_class=30, seed=0),
        "val": load_voc_crops(root, "val", max_per_class=10, seed=0),
        "test": load_voc_crops(root, "test", max_per_class=20, seed=0),
    }
    data = LabelledImages()
    data.split = []
    for split, part in parts.items():
        data.images += part.images
        data.labels += part.labels
        data.names += part.names
        data.split += [split] * len(part)
    return data


def test_voc_crops_follow_the_given_splits(shared_data):
    data = _bccd(shared_data)
    assert data.class_counts() == {"Platelets": 60, "RBC": 60, "WBC": 60}
    train_images = {n.split(":")[0] for n, s in zip(data.names, data.split, strict=True) if s == "train"}
    test_images = {n.split(":")[0] for n, s in zip(data.names, data.split, strict=True) if s == "test"}
    assert train_images.isdisjoint(test_images)  # crops of one smear never straddle train and test


def test_head_fine_tuning_on_blood_cells_beats_the_majority_class(shared_data):
    data = _bccd(shared_data)
    model = load_efficientnet_lite0()
    prep = ImagePreprocessing.from_model(model)
    config = FineTuneConfig(mode="head", epochs=3, image_size=96, vflip=True, seed=0)
    result = fine_tune(model, prep, data, config, device="cpu")
    metrics = result.metrics
    assert result.split_sizes == {"train": 90, "val": 30, "test": 60}
    assert result.class_names == ["Platelets", "RBC", "WBC"]
    # Balanced test set: always answering one class scores 1/3; the fine-tuned head must do far better.
    assert metrics["majority_baseline_accuracy"] == pytest.approx(1 / 3)
    assert metrics["accuracy"] >= 0.8
    assert min(v["recall"] for v in metrics["per_class"].values()) >= 0.6
    print(f"BCCD head fine-tuning: test accuracy {metrics['accuracy']:.3f} in {result.seconds:.0f} s")
