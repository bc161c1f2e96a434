"""Fine-tuning on real labelled cells (BCCD) with a source-level split."""

import pytest

from lucid.domains.medical.data import bccd_cell_crops
from lucid.domains.medical.service import MedicalService
from lucid.domains.medical.training import ScanTrainConfig


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
    assert stored is not None and stored.metadata["metrics"]["accuracy"] == m["accuracy"]
    gate = stored.metadata["quality_gate"]  # the most common training class and chance are 1 / 3 here
    assert gate["passed"] and gate["model"] == pytest.approx(m["accuracy"])
    assert gate["chance"] == pytest.approx(1 / 3) and gate["model_ci"][0] > gate["baseline"]
