"""The quality gate of a user's credit-risk model: held-out ROC AUC against the logistic baseline fitted
on the same split and against chance; a model that fails it is saved only on the user's explicit choice."""

import numpy as np
import pytest

from lucid.core.errors import TrainingCancelled
from lucid.core.store import ModelStore
from lucid.domains.finance.gate import credit_quality_gate
from lucid.domains.finance.service import FinanceService

from .tables import SMALL, shuffled


def test_one_class_for_everyone_fails_the_gate_at_chance():
    rng = np.random.default_rng(0)
    y = (rng.random(300) < 0.3).astype(int)
    informative = np.clip(0.3 + 0.4 * y + rng.normal(0, 0.2, 300), 0, 1)
    constant = np.full(300, 0.3)  # the same PD for every applicant ranks nobody
    gate = credit_quality_gate(y, constant, informative)
    assert gate.model == pytest.approx(0.5) and gate.chance == 0.5
    assert not gate.beats_baseline and not gate.beats_chance and not gate.passed
    assert gate.baseline > 0.85
    assert gate.verdict().startswith("Not better than its baseline: ROC AUC 0.500")
    assert gate.as_dict()["n_test"] == 300 and gate.caveats() == []
    # Reversed roles: the informative scores pass against the constant ones, by a clear margin.
    better = credit_quality_gate(y, informative, constant)
    assert better.passed and better.diff_low > 0.3


def test_few_defaulters_in_the_test_rows_get_a_caveat():
    y = np.array([1] * 8 + [0] * 40)
    scores = np.linspace(1, 0, 48)
    gate = credit_quality_gate(y, scores, np.full(48, 0.5))
    assert gate.passed
    assert any("Only 8 held-out rows have the rarer outcome" in c for c in gate.caveats())


def test_a_model_of_shuffled_outcomes_is_not_saved_until_the_user_chooses(model_store):
    service = FinanceService(model_store)
    result = service.train(shuffled(), "default", "noise", recipe=SMALL)
    gate = result.gate
    assert not result.saved and result.bundle is None and not gate.passed
    assert gate.n_test == 180 and gate.metric == "ROC AUC" and gate.chance == 0.5
    assert gate.model_low < 0.5  # the interval of its AUC reaches below chance
    assert gate.model == pytest.approx(result.trained.metrics["auc"], abs=1e-9)
    assert gate.baseline == pytest.approx(result.trained.baseline["auc"], abs=1e-9)
    assert "Saving it needs an explicit choice" in gate.verdict()
    assert "noise" not in service.model_names() and model_store.list("finance") == []

    saved = service.save_trained(result)  # the user's explicit choice
    assert saved.saved and saved.name == "noise" and "noise" in service.model_names()
    meta = ModelStore(model_store.root).load("finance", "noise").metadata
    assert meta["quality_gate"] == gate.as_dict() and meta["quality_gate"]["passed"] is False
    assert "not passed" in service.card("noise").details["Quality gate"]
    reloaded = FinanceService(ModelStore(model_store.root)).load("noise")
    assert np.allclose(reloaded.holdout_pd, result.trained.holdout_pd, atol=1e-6)


def test_save_anyway_saves_a_model_that_fails_the_gate(model_store):
    service = FinanceService(model_store)
    result = service.train(shuffled(), "default", "noise anyway", recipe=SMALL, save_anyway=True)
    assert result.saved and not result.gate.passed
    assert service.stored("noise anyway").metadata["quality_gate"]["passed"] is False
    row = service.saved_models_table().set_index("Name").loc["noise anyway"]
    assert row["Held-out result"] == (
        f"ROC AUC {result.gate.model:.3f} (baseline {result.gate.baseline:.3f})"
    )
    assert row["Data"] == "your upload: 600 labelled rows"


def test_stop_pressed_after_the_fit_still_saves_nothing(model_store):
    service = FinanceService(model_store)
    late = []  # the user presses Stop once the trees are fitted and explained, before the save

    def progress(fraction, message):
        if fraction >= 0.9:
            late.append(message)

    with pytest.raises(TrainingCancelled):
        service.train(
            shuffled(),
            "default",
            "stopped",
            recipe=SMALL,
            save_anyway=True,
            progress=progress,
            should_stop=lambda: bool(late),
        )
    assert late and model_store.list("finance") == [] and "stopped" not in service.model_names()


def test_the_gate_auc_is_scikit_learns_with_ties_and_one_class_refused():
    from sklearn.metrics import roc_auc_score

    from lucid.domains.finance.gate import _auc

    rng = np.random.default_rng(3)
    y = (rng.random(500) < 0.2).astype(int)
    scores = np.round(rng.random(500) + 0.3 * y, 1)  # rounded: many ties
    assert _auc(y, scores) == pytest.approx(roc_auc_score(y, scores), abs=1e-12)
    with pytest.raises(ValueError):
        _auc(np.zeros(10), scores[:10])
