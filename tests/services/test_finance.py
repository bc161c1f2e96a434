"""The credit-risk service on German credit (1,000 rows) and small synthetic tables."""

import io
import json

import numpy as np
import pandas as pd
import pytest

from lucid.core.errors import InvalidInputError, ModelNotFoundError, TrainingError
from lucid.core.store import ModelStore
from lucid.domains.finance.model import GBMRecipe
from lucid.domains.finance.service import (
    FinanceService,
    prepare_target,
    risk_grade,
    to_probability_units,
    train_credit_model,
    validate_applicants,
)
from lucid.domains.finance.stats import risk_metrics
from lucid.domains.finance.treeshap import CompiledTreeShap
from lucid.explain.explanation import additivity_error

SMALL = GBMRecipe(n_estimators=60, early_stopping_rounds=15)


@pytest.fixture(scope="session")
def german_store(tmp_path_factory):
    """A model store holding the German credit default, built once per test session."""
    root = tmp_path_factory.getbasetemp() / "finance-store"
    FinanceService(ModelStore(root)).load("german_credit")
    return root


@pytest.fixture
def service(german_store):
    return FinanceService(ModelStore(german_store))


@pytest.fixture
def german(service):
    return service.load("german_credit")


@pytest.fixture
def applicants(german):
    return german.demo_rows.drop(columns=[german.model.target])


def synthetic(n=600, seed=0):
    rng = np.random.default_rng(seed)
    income = rng.normal(3000, 800, n)
    late = rng.poisson(0.5, n)
    region = rng.choice(["north", "south", "east"], n)
    logit = -2 + 1.2 * late - 0.001 * (income - 3000) + (region == "east") * 0.8
    default = rng.random(n) < 1 / (1 + np.exp(-logit))
    income[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame({"income": income, "late": late, "region": region, "default": default.astype(int)})


# -- the default model -----------------------------------------------------------------------------


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


def test_probability_units_add_up_to_the_pd(service, german, applicants):
    frame, _ = validate_applicants(applicants.head(1), german.model)
    one = service.explain(german, frame)[0]
    prob = to_probability_units(one)
    pd_ = german.model.predict_pd(frame)[0]
    assert float(prob.base_values) + prob.values.sum() == pytest.approx(pd_, abs=1e-5)
    assert np.array_equal(np.sign(prob.values), np.sign(one.values))


def test_what_if_changes_the_pd_like_a_fresh_score(service, german, applicants):
    row = applicants.head(1).copy()
    before = service.score(german, row).pd[0]
    row["status_of_existing_checking_account"] = "no checking account"
    row["duration_in_month"] = 6
    new_pd, expl = service.what_if(german, row)
    assert new_pd == pytest.approx(service.score(german, row).pd[0], abs=1e-6)
    assert new_pd != pytest.approx(before, abs=1e-4)
    assert expl.data[german.feature_names.index("duration_in_month")] == 6


# -- validation of uploads ------------------------------------------------------------------------


def test_missing_columns_are_named_and_extras_listed(service, german, applicants):
    with pytest.raises(InvalidInputError, match="purpose, credit_amount"):
        service.score(german, applicants.drop(columns=["purpose", "credit_amount"]))
    scored = service.score(german, applicants.assign(customer_id=1, branch="x"))
    assert scored.validation.extra_columns == ["customer_id", "branch"]
    assert "customer_id, branch" in scored.validation.messages()[0]


def test_text_in_numeric_columns_and_unknown_categories_are_counted(service, german, applicants):
    bad = applicants.head(10).copy().astype({"credit_amount": object})
    bad.loc[0:2, "credit_amount"] = "lots"
    bad.loc[5, "purpose"] = "spaceship"
    bad.loc[6, "age_in_years"] = None
    scored = service.score(german, bad)
    assert scored.validation.coerced == {"credit_amount": 3}
    assert scored.validation.unknown_categories == {"purpose": 1}
    assert np.isnan(scored.frame.loc[0, "credit_amount"]) and np.isfinite(scored.pd).all()
    assert any("'credit_amount': 3 value(s)" in m for m in scored.validation.messages())


def test_all_missing_column_is_reported_when_scoring(service, german, applicants):
    scored = service.score(german, applicants.head(5).assign(credit_amount=np.nan))
    assert scored.validation.all_missing == ["credit_amount"]


def test_other_delimiter_and_encoding_score_like_utf8(service, german, applicants):
    head = applicants.head(20)
    utf8 = head.to_csv(index=False).encode()
    latin = head.to_csv(index=False, sep=";").encode("cp1252")
    a = service.score(german, service.read_applicants(utf8, "a.csv")).pd
    b = service.score(german, service.read_applicants(latin, "b.csv")).pd
    assert np.allclose(a, b)


def test_duplicated_columns_and_row_limit_are_refused(service, german):
    with pytest.raises(InvalidInputError, match="more than once"):
        service.read_applicants(b"age,age\n1,2\n", "d.csv")
    frame = pd.DataFrame([[1, 2]], columns=["a", "a"])
    with pytest.raises(InvalidInputError, match="more than once"):
        service.score(german, frame)
    rows = "x\n" + "\n".join(str(i) for i in range(101))
    with pytest.raises(InvalidInputError, match="limit is 100"):
        service.read_applicants(rows.encode(), "big.csv", max_rows=100)


# -- training ----------------------------------------------------------------------------------------


def test_target_must_be_binary_with_both_classes():
    with pytest.raises(InvalidInputError, match="3 different values"):
        prepare_target(pd.Series(["a", "b", "c"], name="t"))
    with pytest.raises(InvalidInputError, match="only one value"):
        prepare_target(pd.Series([0, 0, 0], name="t"))
    y, pos, neg = prepare_target(pd.Series(["good", "bad", "good"], name="t"))
    assert (pos, neg) == ("bad", "good") and y.tolist() == [0, 1, 0]
    y, pos, _ = prepare_target(pd.Series([1.0, 0.0, 0.0], name="t"))
    assert pos == "1" and y.tolist() == [1, 0, 0]


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
    bundle = service.train(df, "default", "my model", recipe=SMALL, progress=lambda f, m: steps.append(f))
    assert steps == sorted(steps) and steps[-1] == 1.0
    assert [f.kind for f in bundle.model.features] == ["numeric", "numeric", "categorical"]
    meta = json.loads((model_store.path("finance", "my model") / "metadata.json").read_text())
    assert meta["metrics"]["auc"] > 0.6 and "auc" in meta["baseline"] and meta["rows_test"] == 180
    reloaded = FinanceService(ModelStore(model_store.root)).load("my model")
    new = synthetic(50, seed=3).drop(columns="default")
    a = service.score(bundle, new)
    b = FinanceService(ModelStore(model_store.root)).score(reloaded, new)
    assert np.allclose(a.pd, b.pd)
    assert "my model" in service.model_names()
    assert reloaded.explainer is not None and reloaded.explainer.compiled_share == 1.0


def test_unknown_model_lists_valid_names(model_store):
    with pytest.raises(ModelNotFoundError, match="german_credit, give_me_some_credit"):
        FinanceService(model_store).load("no-such-model")


# -- monitoring and decisions --------------------------------------------------------------------


def test_psi_is_small_for_similar_data_and_large_for_a_shift(service, german, applicants):
    same = service.stability(german, service.score(german, applicants))[0]
    assert same.iloc[0]["variable"] == "score (PD)"
    shifted_rows = applicants.assign(
        duration_in_month=applicants["duration_in_month"] * 3,
        status_of_existing_checking_account="no checking account",
    )
    table, verdict = service.stability(german, service.score(german, shifted_rows))
    psi = table.set_index("variable")["psi"]
    assert psi["duration_in_month"] > 0.25 and psi["status_of_existing_checking_account"] > 0.25
    assert same.set_index("variable")["psi"]["duration_in_month"] < 0.25
    assert verdict.startswith("Major shift") and "duration_in_month" in verdict


def test_threshold_analysis_on_held_out_rows(service, german):
    table = service.threshold_analysis(german, cost_false_approval=5, cost_false_rejection=1)
    assert table["approval_rate"].is_monotonic_increasing
    row = table.set_index("threshold").loc[0.5]
    assert row["approval_rate"] == pytest.approx((german.holdout_pd < 0.5).mean())


# -- export and command line ----------------------------------------------------------------------


def test_full_export_has_shap_columns_adding_up(service, german, applicants):
    scored = service.score(german, applicants, reasons_rows=10)
    export = service.export_full(german, scored, chunk=64)
    shap_cols = [f"shap_{c}" for c in german.feature_names]
    assert (export["reason_1"] != "").all()
    total = export[shap_cols].sum(axis=1).to_numpy() + german.explainer.base
    assert np.max(np.abs(total - scored.margin)) < 1e-4


def test_cli_train_score_evaluate(model_store, tmp_path, german_store, capsys):
    from lucid.cli import main

    data = synthetic(400)
    train_file = tmp_path / "train.csv"
    data.to_csv(train_file, index=False)
    assert main(["finance", "train", str(train_file), "--target", "default", "--name", "cli-model"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["model"] == "cli-model" and 0.5 < metrics["auc"] <= 1.0
    apply = data.drop(columns="default").head(30).assign(note="=HYPERLINK(1)")
    apply_file, out = tmp_path / "apply.csv", tmp_path / "scored.csv"
    apply.to_csv(apply_file, index=False)
    assert (
        main(["finance", "score", str(apply_file), "--model", "cli-model", "--out", str(out), "--explain"])
        == 0
    )
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    scored = pd.read_csv(out)
    assert summary["rows"] == 30 and "shap_income" in scored.columns and "reason_4" in scored.columns
    assert "note" not in scored.columns  # ignored extra column never comes back
    assert summary["model"] == "cli-model" and summary["mean_pd"] == pytest.approx(scored["pd"].mean())
    assert summary["rejected"] == int((scored["pd"] >= 0.5).sum())
    assert any("note" in w for w in summary["warnings"])  # the extra column is reported, not silently dropped
    assert main(["finance", "evaluate", str(train_file), "--model", "cli-model", "--target", "default"]) == 0
    evaluated = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert evaluated["rows"] == 400 and evaluated["auc"] > 0.6
    assert main(["finance", "score", str(apply_file), "--model", "nope", "--out", str(out)]) == 1
    assert "Valid names" in capsys.readouterr().err


def test_score_csv_neutralises_formulas(service, german, applicants):
    from lucid.core.data import to_safe_csv

    rows = applicants.head(3).copy()
    rows.loc[0, "purpose"] = "=cmd|' /C calc'!A0"
    table = service.score(german, rows).table
    text = to_safe_csv(table).decode("utf-8-sig")
    assert "'=cmd" in text and "\n=cmd" not in text and ",=cmd" not in text
    assert pd.read_csv(io.StringIO(text)).shape[0] == 3


# -- the real Give Me Some Credit default ---------------------------------------------------------


@pytest.mark.slow
def test_default_models_are_built_with_held_out_quality(tmp_path, german_store):
    import shutil

    from lucid.domains.finance.service import ensure_default_models

    store = ModelStore(tmp_path / "models")
    # German credit is already built for this session: only the missing default is trained.
    shutil.copytree(german_store / "finance" / "german_credit", store.path("finance", "german_credit"))
    steps = []
    assert ensure_default_models(progress=lambda f, m: steps.append(m), store=store) == [
        "give_me_some_credit"
    ]
    assert steps and all(m.startswith("give_me_some_credit: ") for m in steps)
    assert ensure_default_models(store=store) == []
    gmsc = FinanceService(store).load("give_me_some_credit")
    assert gmsc.metadata["metrics"]["auc"] >= 0.86
    assert gmsc.metadata["metrics"]["auc"] > gmsc.metadata["baseline"]["auc"]
    assert gmsc.metadata["rows_test"] == 45_000


def test_reason_sentences_read_plainly():
    from lucid.domains.finance.service import reason_sentences

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
