"""The vision service: the real ImageNet model, its card, explanations, the packaged weights' check."""

from __future__ import annotations

import numpy as np
import pytest

from lucid.core.errors import InvalidInputError, ModelNotFoundError
from lucid.domains import DOMAINS
from lucid.domains.base import ModelCard
from lucid.domains.vision.data import sample_images
from lucid.domains.vision.service import DEFAULT_MODEL, VisionService
from lucid.explain.explanation import additivity_error, make_explanation

CATS = {"tiger cat", "Egyptian cat", "tabby, tabby cat"}


def test_unknown_model_lists_valid_names(model_store):
    service = VisionService(model_store)
    with pytest.raises(ModelNotFoundError, match="efficientnet_lite0"):
        service.load("resnet9000")
    with pytest.raises(ModelNotFoundError, match="Valid names"):
        service.card("../../etc")
    assert service.model_names() == [DEFAULT_MODEL] and service.saved_names() == []


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    from lucid.core.store import ModelStore

    return VisionService(ModelStore(tmp_path_factory.mktemp("store")))


@pytest.mark.slow
def test_real_model_recognises_the_sample_photos(service):
    table = service.classify(sample_images(["chelsea", "coffee"]), DEFAULT_MODEL)
    assert table.loc[0, "top1"] in CATS
    assert set(table.loc[0, [f"class_{i}" for i in (1, 2, 3)]]) == CATS  # all three top classes are cats
    assert table.loc[1, "top1"] == "espresso" and table.loc[1, "probability"] > 0.9
    card = service.card(DEFAULT_MODEL)
    assert isinstance(card, ModelCard)
    assert card.licence == "Apache-2.0" and "75.1" in card.metrics["Published ImageNet top-1"]
    assert "'coffee' -> espresso" in card.metrics["Measured here"]
    assert service.is_built(DEFAULT_MODEL)  # checked on first use, so the contract test cards it too


@pytest.fixture(scope="module")
def sample_explanations(service):
    """SHAP + Grad-CAM for the top class of two sample photos, at the page's default SHAP budget."""
    photos = sample_images(["chelsea", "coffee"])
    return {name: service.explain(img, DEFAULT_MODEL) for name, img in photos.items()}


@pytest.mark.slow
@pytest.mark.parametrize("photo", ["chelsea", "coffee"])
def test_real_explanations_add_up_and_are_faithful(sample_explanations, photo):
    result = sample_explanations[photo]
    assert (result.class_name in CATS) if photo == "chelsea" else (result.class_name == "espresso")
    values = np.asarray(result.shap.values)
    flat = make_explanation(values.reshape(1, -1), [float(result.shap.base_values)])
    assert additivity_error(flat, [result.probability]) < 1e-3
    # Blurring the top-SHAP 10% / 20% lowers the class probability more than random regions of that size.
    assert [s.fraction for s in result.shap_faithfulness] == [0.1, 0.2]
    for score in result.shap_faithfulness:
        assert score.top_drop > score.random_drop
    assert np.asarray(result.gradcam.values).shape == values.shape == (224, 224)
    regions = result.region_table()
    assert regions["SHAP value"].sum() == pytest.approx(values.sum(), rel=1e-4, abs=1e-5)


@pytest.mark.slow
def test_explain_any_class_and_bad_class(service):
    photo = sample_images(["coffee"])["coffee"]
    cup = service.class_names(DEFAULT_MODEL).index("cup")
    result = service.explain(photo, DEFAULT_MODEL, class_index=cup, max_evals=50)
    assert result.class_name == "cup" and result.probability < 0.1
    with pytest.raises(InvalidInputError, match="out of range"):
        service.explain(photo, DEFAULT_MODEL, class_index=1000, max_evals=50)


@pytest.mark.slow
def test_ensure_defaults_checks_the_weights_once_and_writes_nothing(model_store):
    messages: list[str] = []
    service = VisionService(model_store)
    assert not service.is_built(DEFAULT_MODEL)
    assert service.ensure_defaults(progress=lambda _f, m: messages.append(m)) == [DEFAULT_MODEL]
    assert "chelsea -> tiger cat" in messages[-1] and "coffee -> espresso" in messages[-1]
    assert service.is_built(DEFAULT_MODEL) and service.ensure_defaults() == []  # checked already
    assert model_store.list("vision") == [] and not (model_store.root / "vision").exists()
    assert DOMAINS["vision"].ensure_defaults(store=model_store) == [DEFAULT_MODEL]  # its own service


@pytest.mark.slow
def test_wrong_predictions_of_the_packaged_weights_are_refused(model_store, monkeypatch):
    import lucid.domains.vision.service as vision_service

    monkeypatch.setitem(vision_service.EXPECTED_TOP1, "coffee", {"teapot"})
    service = VisionService(model_store)
    with pytest.raises(RuntimeError, match="unexpected predictions"):
        service.load(DEFAULT_MODEL)
    assert not service.is_built(DEFAULT_MODEL)
