import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp
from sklearn.metrics import brier_score_loss, roc_auc_score

from lucid.core.errors import InvalidInputError
from lucid.domains.finance.stats import (
    calibration_table,
    category_shares,
    confusion_at,
    ks_statistic,
    numeric_bins,
    numeric_shares,
    psi_band,
    psi_from_shares,
    risk_metrics,
    threshold_table,
)


@pytest.fixture
def scores():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 600)
    p = np.clip(0.3 * y + rng.uniform(0, 0.7, 600), 0, 1)
    return y, p


def test_metrics_match_scikit_learn_and_scipy(scores):
    y, p = scores
    m = risk_metrics(y, p, threshold=0.5)
    assert m["auc"] == pytest.approx(roc_auc_score(y, p))
    assert m["gini"] == pytest.approx(2 * roc_auc_score(y, p) - 1)
    assert m["brier"] == pytest.approx(brier_score_loss(y, p))
    assert m["ks"] == pytest.approx(ks_2samp(p[y == 1], p[y == 0]).statistic)
    assert m["bad_rate"] == pytest.approx(y.mean())


def test_confusion_counts_follow_the_threshold(scores):
    y, p = scores
    c = confusion_at(y, p, 0.4)
    assert c["true_bad_rejected"] == int(((p >= 0.4) & (y == 1)).sum())
    assert c["good_rejected"] == int(((p >= 0.4) & (y == 0)).sum())
    assert sum(c.values()) == len(y)
    assert confusion_at(y, p, 0.9)["true_bad_rejected"] < c["true_bad_rejected"]


def test_ks_is_one_for_perfect_separation():
    y = np.array([0, 0, 0, 1, 1])
    ks, at = ks_statistic(y, np.array([0.1, 0.2, 0.3, 0.8, 0.9]))
    assert ks == pytest.approx(1.0) and at == pytest.approx(0.8)


def test_calibration_table_groups_into_deciles(scores):
    y, p = scores
    table = calibration_table(y, p, bins=10)
    assert len(table) == 10 and table["count"].sum() == len(y)
    assert table["mean_pd"].is_monotonic_increasing
    assert table["observed_rate"].iloc[-1] > table["observed_rate"].iloc[0]


def test_one_class_is_refused():
    with pytest.raises(InvalidInputError, match="both outcomes"):
        risk_metrics(np.zeros(5), np.linspace(0, 1, 5))


def test_threshold_table_counts_outcomes_by_brute_force(scores):
    y, p = scores
    table = threshold_table(p, y, cost_false_approval=5.0, cost_false_rejection=1.0, thresholds=[0.3, 0.6])
    for _, row in table.iterrows():
        approved = p < row["threshold"]
        assert row["approval_rate"] == pytest.approx(approved.mean())
        assert row["bad_rate_approved"] == pytest.approx(y[approved].mean())
        loss = (5.0 * (approved & (y == 1)).sum() + 1.0 * (~approved & (y == 0)).sum()) / len(y)
        assert row["expected_loss_per_applicant"] == pytest.approx(loss)


def test_threshold_table_without_labels_expects_outcomes_from_pd():
    p = np.array([0.1, 0.2, 0.6])
    table = threshold_table(p, None, cost_false_approval=1.0, cost_false_rejection=0.0, thresholds=[0.5])
    assert table["expected_bad_approved"].iloc[0] == pytest.approx(0.3)
    assert table["approval_rate"].iloc[0] == pytest.approx(2 / 3)
    full = threshold_table(p)
    assert full["approval_rate"].is_monotonic_increasing


def test_psi_of_a_sample_against_itself_is_zero_and_against_a_shift_is_large():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=5000)
    edges = numeric_bins(ref)
    same = psi_from_shares(numeric_shares(ref, edges), numeric_shares(ref, edges))
    shifted = psi_from_shares(numeric_shares(ref, edges), numeric_shares(ref + 1.0, edges))
    assert same == pytest.approx(0.0, abs=1e-12)
    assert shifted > 0.25
    assert (
        psi_band(same) == "stable"
        and psi_band(shifted) == "major shift"
        and psi_band(0.15) == "moderate shift"
    )


def test_missing_values_and_new_categories_have_their_own_bins():
    shares = numeric_shares(np.array([1.0, np.nan, 3.0, np.nan]), [2.0])
    assert shares == [0.25, 0.25, 0.5]
    cats = category_shares(pd.Series(["a", "b", None, "z"]), ["a", "b"])
    assert cats == [0.25, 0.25, 0.25, 0.25]
