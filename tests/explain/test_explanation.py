import numpy as np
import pytest
import shap

from lucid.core.errors import ExplanationError
from lucid.explain.explanation import check_additivity, make_explanation, mean_abs_importance, top_features


def test_make_explanation_broadcasts_base_and_checks_names():
    expl = make_explanation(np.ones((3, 2)), 0.5, np.zeros((3, 2)), feature_names=["a", "b"])
    assert isinstance(expl, shap.Explanation)
    assert expl.values.dtype == np.float32
    assert expl.base_values.tolist() == [0.5, 0.5, 0.5]
    with pytest.raises(ValueError):
        make_explanation(np.ones((3, 2)), 0.0, feature_names=["a"])


def test_additivity_passes_and_fails():
    values = np.array([[0.1, 0.2], [-0.3, 0.4]])
    expl = make_explanation(values, np.array([1.0, 1.0]))
    assert check_additivity(expl, np.array([1.3, 1.1])) < 1e-6
    with pytest.raises(ExplanationError, match="do not add up"):
        check_additivity(expl, np.array([1.3, 1.2]))


def test_additivity_on_real_tree_shap():
    from sklearn.datasets import make_classification
    from sklearn.ensemble import GradientBoostingRegressor

    X, y = make_classification(200, 5, random_state=0)
    model = GradientBoostingRegressor(n_estimators=20, random_state=0).fit(X, y)
    raw = shap.TreeExplainer(model)(X[:20])
    expl = make_explanation(raw.values, raw.base_values, X[:20])
    assert check_additivity(expl, model.predict(X[:20]), atol=1e-5) < 1e-5


def test_top_features_order_and_sign():
    row = np.array([0.1, -0.5, 0.3, -0.05, 0.0])
    assert top_features(row, 3).tolist() == [1, 2, 0]
    assert top_features(row, 5, sign=1).tolist() == [2, 0]
    assert top_features(row, 5, sign=-1).tolist() == [1, 3]


def test_mean_abs_importance_sorted():
    expl = make_explanation(np.array([[1.0, -3.0], [-1.0, 1.0]]), 0.0, feature_names=["a", "b"])
    imp = mean_abs_importance(expl)
    assert imp.index.tolist() == ["b", "a"] and imp["b"] == 2.0
