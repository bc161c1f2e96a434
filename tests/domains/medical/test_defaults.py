"""The phydcm demo models converted into the store, with measured behaviour and the same outputs."""

import numpy as np
import pytest

from lucid.domains.medical.service import MedicalService


@pytest.mark.slow
def test_default_models_are_converted_once_with_measured_behaviour(model_store):
    assert MedicalService(model_store).ensure_defaults() == ["phydcm_brain_mri", "phydcm_ct"]
    assert MedicalService(model_store).ensure_defaults() == []
    meta = model_store.load("medical", "phydcm_ct").metadata
    assert set(meta["measured"]) >= {"MR_small.dcm", "CT_small.dcm", "retina"}
    service = MedicalService(model_store)
    card = service.card("phydcm_brain_mri").sections()
    assert "not for clinical use" in card["Limits"] and "PET" in card["Limits"]
    # The stored safetensors give the same outputs as the Keras file.
    image = np.random.default_rng(0).integers(0, 255, (64, 64, 3)).astype(np.uint8)
    from lucid.domains.medical.model import MEDICAL_MODELS, prepare_input

    prediction = service.classify(image, "phydcm_ct")
    keras_port = MEDICAL_MODELS.create("phydcm_ct")
    direct = keras_port.predict_proba(prepare_input(prediction.model_image)).numpy()[0]
    np.testing.assert_allclose(prediction.probabilities.to_numpy(), direct, atol=1e-5)
