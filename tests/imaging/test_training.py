"""Fine-tuning on tiny models and synthetic images (seconds, no real weights), saving and reloading."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch

from lucid.core.errors import InvalidInputError, TrainingCancelled, TrainingError
from lucid.imaging.classifier import ImageClassifier
from lucid.imaging.datasets import LabelledImages
from lucid.imaging.persist import load_classifier, save_classifier
from lucid.imaging.preprocess import ImagePreprocessing
from lucid.imaging.training import FineTuneConfig, fine_tune, one_cycle_schedule
from tests.imaging.images import colour_set


def test_fine_tune_learns_saves_and_reloads(model_store):
    torch.manual_seed(0)
    model = timm.create_model("test_efficientnet", pretrained=False)
    prep = ImagePreprocessing.from_model(model, input_size=(3, 32, 32))
    seen: list[float] = []
    result = fine_tune(
        model,
        prep,
        colour_set(40),
        FineTuneConfig(mode="full", epochs=4, learning_rate=3e-3),
        device="cpu",
        progress=lambda f, _m: seen.append(f),
    )
    assert result.class_names == ["blue", "red"]
    assert result.split_sizes == {"train": 28, "val": 6, "test": 6}
    assert result.metrics["accuracy"] > result.metrics["majority_baseline_accuracy"]
    assert result.metrics["accuracy"] == pytest.approx(1.0)
    assert len(result.history) == 4 and seen == sorted(seen) and seen[-1] == 1.0
    stored = save_classifier(
        model_store,
        "vision",
        "colours",
        result.model,
        architecture="test_efficientnet",
        class_names=result.class_names,
        preprocessing=result.preprocessing,
        metadata={"metrics": result.metrics},
        reserved_names=["efficientnet_lite0"],
    )
    assert (stored.path / "model.safetensors").is_file() and not list(stored.path.glob("*.pkl"))
    loaded = load_classifier(model_store.load("vision", "colours"))
    images = colour_set(6).images
    before = ImageClassifier(result.model, result.preprocessing, result.class_names, device="cpu")
    after = ImageClassifier(loaded.model, loaded.preprocessing, loaded.class_names, device="cpu")
    np.testing.assert_allclose(before.predict_images(images), after.predict_images(images), atol=1e-5)
    with pytest.raises(InvalidInputError, match="built-in"):
        save_classifier(
            model_store,
            "vision",
            "efficientnet_lite0",
            result.model,
            architecture="test_efficientnet",
            class_names=result.class_names,
            preprocessing=result.preprocessing,
            reserved_names=["efficientnet_lite0"],
        )


def test_fine_tune_can_be_cancelled_and_refuses_bad_sets():
    model = timm.create_model("test_efficientnet", pretrained=False)
    prep = ImagePreprocessing.from_model(model, input_size=(3, 32, 32))
    with pytest.raises(TrainingCancelled):
        fine_tune(
            model, prep, colour_set(12), FineTuneConfig(epochs=2), device="cpu", should_stop=lambda: True
        )
    one_class = LabelledImages(colour_set(6).images, ["red"] * 6, [str(i) for i in range(6)])
    with pytest.raises(TrainingError, match="at least two classes"):
        fine_tune(model, prep, one_class, device="cpu")
    single = colour_set(7)
    single.labels[-1] = "green"
    with pytest.raises(TrainingError, match="'green' \\(1 image\\)"):
        fine_tune(model, prep, single, device="cpu")


@pytest.mark.parametrize("total", [1, 2, 3, 4, 10, 11, 37])
def test_one_cycle_schedule_runs_any_length(total):
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.1)
    schedule = one_cycle_schedule(optimizer, 0.1, total)
    rates = []
    for step in range(total):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if step < total - 1:
            schedule.step()
    assert all(np.isfinite(rates)) and max(rates) <= 0.1 + 1e-9
    if total >= 4:
        assert rates[-1] < 0.1 * 0.05  # annealed well below the peak by the end
