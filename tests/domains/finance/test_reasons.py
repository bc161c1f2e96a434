"""Reason codes in plain sentences and SHAP values in probability points."""

import numpy as np
import pytest

from lucid.domains.finance.data import validate_applicants
from lucid.domains.finance.reasons import reason_sentences, to_probability_units


def test_probability_units_add_up_to_the_pd(service, german, applicants):
    frame, _ = validate_applicants(applicants.head(1), german.model)
    one = service.explain(german, frame)[0]
    prob = to_probability_units(one)
    pd_ = german.model.predict_pd(frame)[0]
    assert float(prob.base_values) + prob.values.sum() == pytest.approx(pd_, abs=1e-5)
    assert np.array_equal(np.sign(prob.values), np.sign(one.values))


def test_reason_sentences_read_plainly():
    sentences = reason_sentences(
        np.array([0.05, -0.7, 0.3]),
        [np.float32("nan"), "renter", 12345.6],
        ["income", "housing", "debt"],
        k=3,
    )
    assert sentences == [
        "housing is 'renter', which lowers the risk of default strongly (-0.70 log-odds).",
        "debt is 12,346, which raises the risk of default moderately (+0.30 log-odds).",
        "income is missing, which raises the risk of default slightly (+0.05 log-odds).",
    ]
