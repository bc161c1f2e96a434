"""The compiled TreeSHAP tables against XGBoost's own ``pred_contribs``."""

import numpy as np
import pandas as pd

from lucid.domains.finance.data import validate_applicants
from lucid.domains.finance.training import train_credit_model
from lucid.domains.finance.treeshap import CompiledTreeShap

from .tables import SMALL, synthetic


def test_compiled_tables_equal_xgboost_pred_contribs_with_categories(german, applicants):
    frame, _ = validate_applicants(applicants, german.model)
    compiled = german.explainer  # compiled at training time, stored and reloaded with the model
    fast, base = compiled.shap_values(frame)
    exact, exact_base = german.model.contributions(frame)
    assert compiled.compiled_share == 1.0
    assert np.max(np.abs(fast - exact)) < 1e-5
    assert np.allclose(base, exact_base)
    fallback = CompiledTreeShap.compile(german.model, max_cells=4)  # most trees answered by pred_contribs
    assert fallback.compiled_share < 0.5
    assert np.max(np.abs(fallback.shap_values(frame)[0] - exact)) < 1e-5


def test_compiled_tables_handle_missing_values_and_thresholds_exactly():
    trained = train_credit_model(synthetic(), "default", recipe=SMALL, device="cpu")
    frame = trained.model.frame(
        pd.DataFrame(
            {
                "income": [np.nan, 0.0, 1e9, -5.0, *trained.explainer.thresholds[0][:6].tolist()],
                "late": [0, np.nan, 3, 7, 1, 2, 0, 1, 5, 2],
                "region": ["north", None, "east", "south", "east", "east", "north", None, "south", "west"],
            }
        )
    )
    fast, _ = trained.explainer.shap_values(frame)
    exact, _ = trained.model.contributions(frame)
    assert np.max(np.abs(fast - exact)) < 1e-5
