"""Training your own credit-risk model: refused inputs, and a saved model that reloads identically."""

import json

import numpy as np
import pytest

from lucid.core.errors import InvalidInputError, TrainingError
from lucid.core.store import ModelStore
from lucid.domains.finance.service import FinanceService

from .tables import SMALL, synthetic


def test_training_refuses_bad_columns(model_store):
    service = FinanceService(model_store)
    df = synthetic()
    with pytest.raises(InvalidInputError, match="missing for every row and cannot be learned from: empty"):
        service.train(df.assign(empty=np.nan), "default", "m1", recipe=SMALL)
    with pytest.raises(InvalidInputError, match="different values"):
        service.train(df.assign(default=np.arange(len(df)) % 3), "default", "m1", recipe=SMALL)
    with pytest.raises(InvalidInputError, match="built-in model"):
        service.train(df, "default", "german_credit", recipe=SMALL)
    with pytest.raises(InvalidInputError, match="look like identifiers"):
        service.train(df.assign(customer=[f"c{i}" for i in range(len(df))]), "default", "m1", recipe=SMALL)
    with pytest.raises(TrainingError, match="rarer outcome"):
        service.train(df.assign(default=(np.arange(len(df)) < 5).astype(int)), "default", "m1", recipe=SMALL)
    assert model_store.list("finance") == []


def test_train_your_own_saves_a_model_that_reloads_identically(model_store):
    df = synthetic().astype({"late": object})
    df.loc[3, "late"] = "n/a"  # text in a numeric column is counted, not fatal
    service = FinanceService(model_store)
    steps = []
    result = service.train(df, "default", "my model", recipe=SMALL, progress=lambda f, m: steps.append(f))
    assert steps == sorted(steps) and steps[-1] == 1.0
    # Trees learn the U-shaped income risk the logistic baseline cannot: the model passes and is saved.
    assert result.saved and result.gate.passed and result.gate.diff_low > 0
    bundle = result.bundle
    assert [f.kind for f in bundle.model.features] == ["numeric", "numeric", "categorical"]
    meta = json.loads((model_store.path("finance", "my model") / "metadata.json").read_text())
    assert meta["metrics"]["auc"] > 0.6 and "auc" in meta["baseline"] and meta["rows_test"] == 180
    gate = meta["quality_gate"]
    assert gate["passed"] and gate["model"] == pytest.approx(meta["metrics"]["auc"], abs=1e-6)
    assert gate["baseline"] == pytest.approx(meta["baseline"]["auc"], abs=1e-6) and gate["n_test"] == 180
    assert gate["model_ci"][0] > 0.5 and gate["model"] > gate["baseline"]
    reloaded = FinanceService(ModelStore(model_store.root)).load("my model")
    new = synthetic(50, seed=3).drop(columns="default")
    a = service.score(bundle, new)
    b = FinanceService(ModelStore(model_store.root)).score(reloaded, new)
    assert np.allclose(a.pd, b.pd)
    assert "my model" in service.model_names()
    assert reloaded.explainer is not None and reloaded.explainer.compiled_share == 1.0
