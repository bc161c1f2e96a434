import numpy as np
import pandas as pd
import pytest

from lucid.core.errors import ModelNotFoundError, TrainingCancelled
from lucid.domains.finance.model import (
    FINANCE_MODELS,
    CreditModel,
    FeatureSchema,
    GBMRecipe,
    fit_booster,
)

TINY = GBMRecipe(n_estimators=30, max_depth=3, early_stopping_rounds=10)
SCHEMA = [
    FeatureSchema("amount", "numeric"),
    FeatureSchema("region", "categorical", ("east", "north", "south")),
]


def _data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    raw = pd.DataFrame({"amount": rng.normal(size=n), "region": rng.choice(["east", "north", "south"], n)})
    y = ((raw["amount"] + (raw["region"] == "east") * 1.5 + rng.normal(scale=0.5, size=n)) > 1).to_numpy(int)
    return raw, y


def _model(device="cpu"):
    raw, y = _data()
    skeleton = CreditModel(None, SCHEMA, "default", "1", "0", 0)
    frame = skeleton.frame(raw)
    booster, best = fit_booster(frame[:300], y[:300], frame[300:], y[300:], TINY, device=device)
    return CreditModel(booster, SCHEMA, "default", "1", "0", best), raw, y


def test_registry_lists_the_defaults_and_refuses_unknown_names():
    assert FINANCE_MODELS.names() == ["german_credit", "give_me_some_credit"]
    with pytest.raises(ModelNotFoundError, match="german_credit, give_me_some_credit"):
        FINANCE_MODELS.get("credit_magic")
    spec = FINANCE_MODELS.get("give_me_some_credit")
    assert spec.extra["target"] == "SeriousDlqin2yrs" and "BSD-3" in spec.licence


def test_packaged_data_sets_are_read_without_importing_their_packages():
    german = FINANCE_MODELS.create("german_credit")
    assert german.shape == (1000, 21)
    assert german["creditability"].value_counts().to_dict() == {"good": 700, "bad": 300}
    gmsc = FINANCE_MODELS.create("give_me_some_credit")
    assert gmsc.shape == (150_000, 11) and "id" not in gmsc.columns
    assert int(gmsc["SeriousDlqin2yrs"].sum()) == 10_026
    assert int(gmsc["MonthlyIncome"].isna().sum()) == 29_731


def test_frame_keeps_training_categories_and_types():
    model = CreditModel(None, SCHEMA, "default", "1", "0", 0)
    frame = model.frame(pd.DataFrame({"region": [" north", "west", None], "amount": ["1.5", "x", None]}))
    assert list(frame.columns) == ["amount", "region"]
    assert list(frame["region"].cat.categories) == ["east", "north", "south"]
    assert frame["region"].iloc[0] == "north" and frame["region"].isna().tolist() == [False, True, True]
    assert frame["amount"].dtype == np.float32 and np.isnan(frame["amount"].iloc[1])


def test_trees_learn_the_categorical_effect_and_explain_in_original_columns(device):
    model, raw, y = _model(device="cuda" if device == "cuda" else "cpu")
    frame = model.frame(raw)
    values, base = model.contributions(frame)
    assert values.shape == (400, 2)  # one column per original feature, not per category
    assert np.max(np.abs(values.sum(axis=1) + base - model.margin(frame))) < 1e-4
    east = (raw["region"] == "east").to_numpy()
    assert values[east, 1].mean() > 0 > values[~east, 1].mean()


def test_save_and_load_give_identical_predictions(tmp_path):
    model, raw, _ = _model()
    model.save(tmp_path)
    loaded = CreditModel.load(tmp_path)
    assert loaded.features == model.features and loaded.best_iteration == model.best_iteration
    assert np.allclose(loaded.predict_pd(loaded.frame(raw)), model.predict_pd(model.frame(raw)))
    assert not list(tmp_path.glob("*.pkl"))


def test_training_reports_progress_and_can_be_cancelled():
    raw, y = _data()
    frame = CreditModel(None, SCHEMA, "default", "1", "0", 0).frame(raw)
    seen = []
    fit_booster(frame[:300], y[:300], frame[300:], y[300:], TINY, progress=lambda f, m: seen.append((f, m)))
    assert seen and seen[0][0] > 0 and "validation AUC" in seen[0][1]
    calls = iter(range(100))
    with pytest.raises(TrainingCancelled):
        fit_booster(frame[:300], y[:300], frame[300:], y[300:], TINY, should_stop=lambda: next(calls) >= 3)


def test_recipe_parameters_follow_the_device():
    assert GBMRecipe().params("cuda")["device"] == "cuda"
    params = GBMRecipe().params("cpu")
    assert params["tree_method"] == "hist" and params["objective"] == "binary:logistic"
