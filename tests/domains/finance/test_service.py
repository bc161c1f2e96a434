"""The credit-risk service on German credit (1,000 rows): loading, scoring, explaining, exporting."""

import io

import numpy as np
import pandas as pd
import pytest

from lucid.core.errors import ModelNotFoundError
from lucid.core.store import ModelStore
from lucid.domains.finance.data import validate_applicants
from lucid.domains.finance.reasons import risk_grade
from lucid.domains.finance.service import FinanceService
from lucid.domains.finance.stats import risk_metrics
from lucid.explain.explanation import additivity_error


def test_default_model_records_held_out_metrics_that_match_its_stored_scores(german):
    meta = german.metadata
    again = risk_metrics(german.holdout_y, german.holdout_pd, 0.5)
    assert meta["metrics"]["auc"] == pytest.approx(again["auc"], abs=1e-6)
    assert meta["metrics"]["ks"] == pytest.approx(again["ks"], abs=1e-6)
    assert len(german.holdout_y) == 300 and german.holdout_y.sum() == 90  # 30% stratified of 300 bads
    assert 0.72 < meta["metrics"]["auc"] < 0.9
    assert 0.7 < meta["baseline"]["auc"] < 0.9
    assert meta["recipe_version"] >= 1 and meta["data_hash"] and meta["licence"].startswith("MIT")
    assert meta["positive_label"] == "bad"


def test_explanations_are_exact_treeshap_and_add_up(service, german, applicants):
    frame, _ = validate_applicants(applicants, german.model)
    values, base = german.model.contributions(frame)
    margin = german.model.margin(frame)
    assert np.max(np.abs(values.sum(axis=1) + base - margin)) < 1e-4
    expl = service.explain(german, frame)
    assert additivity_error(expl, margin) < 1e-4
    assert expl.feature_names == german.feature_names  # the user's columns, never one-hot internals
    assert set(np.asarray(expl.data)[:, 0]) <= set(german.model.features[0].categories)


def test_reason_codes_agree_in_sign_and_order_with_shap(service, german, applicants):
    scored = service.score(german, applicants.head(12), threshold=0.3)
    expl = service.explain(german, scored.frame)
    for i in range(12):
        order = np.argsort(-np.abs(expl.values[i]), kind="stable")[:4]
        for k, j in enumerate(order):
            sentence = scored.table.loc[i, f"reason_{k + 1}"]
            assert sentence.startswith(german.feature_names[j] + " is ")
            assert ("raises" in sentence) == (expl.values[i, j] > 0)
            assert f"{expl.values[i, j]:+.2f} log-odds" in sentence


def test_score_table_has_pd_grade_decision(service, german, applicants):
    scored = service.score(german, applicants, threshold=0.3)
    table = scored.table
    assert np.allclose(table["pd"], german.model.predict_pd(scored.frame))
    assert ((table["pd"] >= 0.3) == (table["decision"] == "reject")).all()
    assert list(risk_grade([0.01, 0.03, 0.07, 0.15, 0.3, 0.9])) == list("ABCDEF")
    assert table.groupby("grade")["pd"].max().sort_index().is_monotonic_increasing
    # The demo rows come from the held-out 30%: the model discriminates them too.
    y = (german.demo_rows[german.model.target] == "bad").to_numpy()
    assert table["pd"][y].mean() > table["pd"][~y].mean()


def test_what_if_changes_the_pd_like_a_fresh_score(service, german, applicants):
    row = applicants.head(1).copy()
    before = service.score(german, row).pd[0]
    row["status_of_existing_checking_account"] = "no checking account"
    row["duration_in_month"] = 6
    new_pd, expl = service.what_if(german, row)
    assert new_pd == pytest.approx(service.score(german, row).pd[0], abs=1e-6)
    assert new_pd != pytest.approx(before, abs=1e-4)
    assert expl.data[german.feature_names.index("duration_in_month")] == 6


def test_other_delimiter_and_encoding_score_like_utf8(service, german, applicants):
    head = applicants.head(20)
    utf8 = head.to_csv(index=False).encode()
    latin = head.to_csv(index=False, sep=";").encode("cp1252")
    a = service.score(german, service.read_applicants(utf8, "a.csv")).pd
    b = service.score(german, service.read_applicants(latin, "b.csv")).pd
    assert np.allclose(a, b)


def test_unknown_model_lists_valid_names(model_store):
    with pytest.raises(ModelNotFoundError, match="german_credit, give_me_some_credit"):
        FinanceService(model_store).load("no-such-model")


def test_threshold_analysis_on_held_out_rows(service, german):
    table = service.threshold_analysis(german, cost_false_approval=5, cost_false_rejection=1)
    assert table["approval_rate"].is_monotonic_increasing
    row = table.set_index("threshold").loc[0.5]
    assert row["approval_rate"] == pytest.approx((german.holdout_pd < 0.5).mean())


def test_full_export_has_shap_columns_adding_up(service, german, applicants):
    scored = service.score(german, applicants, reasons_rows=10)
    export = service.export_full(german, scored, chunk=64)
    shap_cols = [f"shap_{c}" for c in german.feature_names]
    assert (export["reason_1"] != "").all()
    total = export[shap_cols].sum(axis=1).to_numpy() + german.explainer.base
    assert np.max(np.abs(total - scored.margin)) < 1e-4


def test_score_csv_neutralises_formulas(service, german, applicants):
    from lucid.core.data import to_safe_csv

    rows = applicants.head(3).copy()
    rows.loc[0, "purpose"] = "=cmd|' /C calc'!A0"
    table = service.score(german, rows).table
    text = to_safe_csv(table).decode("utf-8-sig")
    assert "'=cmd" in text and "\n=cmd" not in text and ",=cmd" not in text
    assert pd.read_csv(io.StringIO(text)).shape[0] == 3


@pytest.mark.slow
def test_default_models_are_built_with_held_out_quality(tmp_path, german_store):
    import shutil

    from lucid.domains import DOMAINS

    store = ModelStore(tmp_path / "models")
    # German credit is already built for this session: only the missing default is trained.
    shutil.copytree(german_store / "finance" / "german_credit", store.path("finance", "german_credit"))
    steps = []
    assert FinanceService(store).ensure_defaults(progress=lambda f, m: steps.append(m)) == [
        "give_me_some_credit"
    ]
    assert steps and all(m.startswith("give_me_some_credit: ") for m in steps)
    assert DOMAINS["finance"].ensure_defaults(store=store) == []
    gmsc = FinanceService(store).load("give_me_some_credit")
    assert gmsc.metadata["metrics"]["auc"] >= 0.86
    assert gmsc.metadata["metrics"]["auc"] > gmsc.metadata["baseline"]["auc"]
    assert gmsc.metadata["rows_test"] == 45_000


def test_a_default_from_another_recipe_version_is_not_current(german_store, tmp_path):
    import json
    import shutil

    store = ModelStore(tmp_path / "models")
    folder = store.path("finance", "german_credit")
    shutil.copytree(german_store / "finance" / "german_credit", folder)
    service = FinanceService(store)
    assert service.is_built("german_credit")
    meta = json.loads((folder / "metadata.json").read_text())
    (folder / "metadata.json").write_text(json.dumps({**meta, "recipe_version": meta["recipe_version"] + 1}))
    assert not FinanceService(store).is_built("german_credit")  # load() would build it again
    assert FinanceService(store).saved_names() == []  # a default is never listed as a saved model


def test_loaded_models_are_read_once_until_forgotten(service):
    first = service.load("german_credit")
    assert service.load("german_credit") is first
    service.forget("german_credit")
    again = service.load("german_credit")
    assert again is not first and again.feature_names == first.feature_names
