"""The Credit risk page through AppTest: score -> explain -> what-if, uploads, bad input, training."""

import numpy as np
import pandas as pd
import pytest

from lucid.core.store import ModelStore
from lucid.domains.finance.service import FinanceService
from tests.domains.finance.tables import shuffled, synthetic

PAGE = "app_pages/finance.py"


@pytest.fixture
def finance_store(tmp_path_factory, monkeypatch):
    """The German credit default built once per session (shared with the service tests) and in use."""
    root = tmp_path_factory.getbasetemp() / "finance-store"
    FinanceService(ModelStore(root)).load("german_credit")
    monkeypatch.setenv("LUCID_MODEL_DIR", str(root))
    return root


def _metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def _scored_table(at) -> pd.DataFrame:
    return next(d.value for d in at.dataframe if "reason_1" in d.value.columns)


def test_score_explain_whatif_on_demo_applicants(app_test, finance_store):
    at = app_test(PAGE)
    assert not at.exception and not at.error
    metrics = _metrics(at)
    assert 0.72 < float(metrics["ROC AUC"]) < 0.9
    assert float(metrics["Baseline AUC (logistic)"]) > 0.7
    table = _scored_table(at)
    assert len(table) == 200 and {"pd", "grade", "decision", "reason_4"} <= set(table.columns)
    assert ((table["pd"] >= 0.3) == (table["decision"] == "reject")).all()
    assert table["reason_1"].str.contains("log-odds").all()

    # Explain the third applicant.
    at.number_input(key="finance_row").set_value(3).run()
    assert not at.exception
    assert _metrics(at)["Applicant 3: PD"] == f"{table['pd'].iloc[2]:.3f}"
    reasons = [m.value for m in at.markdown if m.value.startswith("- ") and "log-odds)" in m.value]
    assert reasons[0] == "- " + table["reason_1"].iloc[2]

    # What-if: a short loan with no checking account, edited in the table.
    at.session_state["finance_whatif_editor_2"] = {
        "edited_rows": {
            0: {"duration_in_month": 6, "status_of_existing_checking_account": "no checking account"}
        },
        "added_rows": [],
        "deleted_rows": [],
    }
    at.run()
    assert not at.exception and not at.error
    after = _metrics(at)
    assert after["PD before"] == f"{table['pd'].iloc[2]:.3f}"
    service = FinanceService(ModelStore(finance_store))
    bundle = service.load("german_credit")
    row = bundle.demo_rows.drop(columns=[bundle.model.target]).iloc[[2]].copy()
    row["duration_in_month"] = 6
    row["status_of_existing_checking_account"] = "no checking account"
    expected, _ = service.what_if(bundle, row)
    assert after["PD after edits"] == f"{expected:.3f}"
    assert float(after["PD after edits"]) < float(after["PD before"])

    # Probability units and the monitor verdict.
    at.radio(key="finance_units").set_value("probability").run()
    assert not at.exception
    assert any("Stable" in s.value or "shift" in s.value for s in [*at.success, *at.warning, *at.error])


def test_upload_with_other_delimiter_encoding_and_extra_columns(app_test, finance_store):
    bundle = FinanceService(ModelStore(finance_store)).load("german_credit")
    rows = bundle.demo_rows.head(25).assign(branch="Zürich")
    data = rows.to_csv(index=False, sep=";").encode("cp1252")
    at = app_test(PAGE)
    at.radio(key="finance_source").set_value("Upload a file").run()
    at.file_uploader(key="finance_upload").set_value(("applicants.csv", data, "text/csv")).run()
    assert not at.exception and not [e.value for e in at.error]
    table = _scored_table(at)
    assert len(table) == 25
    assert any("branch" in w.value for w in at.warning)
    assert "branch" not in table.columns


def test_bad_uploads_get_clear_messages(app_test, finance_store):
    at = app_test(PAGE)
    at.radio(key="finance_source").set_value("Upload a file").run()
    at.file_uploader(key="finance_upload").set_value(
        ("x.csv", b"age_in_years,purpose\n30,car\n", "text/csv")
    ).run()
    assert not at.exception
    assert any("lacks" in e.value and "credit_amount" in e.value for e in at.error)
    at.file_uploader(key="finance_upload").set_value(("x.csv", b"a,a\n1,2\n", "text/csv")).run()
    assert not at.exception
    assert any("more than once" in e.value for e in at.error)
    at.file_uploader(key="finance_upload").set_value(("x.xlsx", b"not a workbook", "text/plain")).run()
    assert not at.exception
    assert any("xlsx" in e.value for e in at.error)


def _labelled(n=600, seed=0, classes=2, shuffle=False) -> bytes:
    """A labelled upload: risk trees learn (see ``synthetic``), outcomes shuffled against the features
    (nothing to learn), or a target with more than two values."""
    table = shuffled(n, seed) if shuffle else synthetic(n, seed)
    if classes > 2:
        table["default"] = np.random.default_rng(seed).integers(0, classes, n)
    return table.to_csv(index=False).encode()


def test_train_your_own_from_the_page(app_test, finance_store):
    at = app_test(PAGE)
    at.file_uploader(key="finance_train_upload").set_value(
        ("loans.csv", _labelled(classes=3), "text/csv")
    ).run()
    at.button(key="finance_train_button").click().run()
    assert not at.exception
    assert any("3 different values" in e.value for e in at.error)

    at.file_uploader(key="finance_train_upload").set_value(("loans.csv", _labelled(), "text/csv")).run()
    assert at.selectbox(key="finance_train_target").value == "default"
    at.text_input(key="finance_train_name").set_value("page-model").run()
    at.button(key="finance_train_button").click().run()
    assert not at.exception and not at.error
    assert any("page-model" in s.value for s in at.success)  # shown again after the page reloads
    saved = ModelStore(finance_store).load("finance", "page-model").metadata
    assert saved["features"] == ["income", "late", "region"] and 0.5 < saved["metrics"]["auc"] <= 1.0
    gate = saved["quality_gate"]
    assert gate["passed"] and gate["model"] > gate["baseline"]
    assert any(s.value.startswith("Better than its baseline: ROC AUC") for s in at.success)
    assert "page-model" in at.selectbox(key="finance_model").options
    assert not _has_button(at, "finance_train_save_anyway")  # a model that passed needs no choice


def _has_button(at, key: str) -> bool:
    return any(b.key == key for b in at.button)


def test_a_model_failing_the_gate_is_saved_on_request_then_renamed_and_deleted(app_test, finance_store):
    store = ModelStore(finance_store)
    at = app_test(PAGE)
    at.file_uploader(key="finance_train_upload").set_value(
        ("noise.csv", _labelled(300, shuffle=True), "text/csv")
    ).run()
    at.text_input(key="finance_train_name").set_value("noise-model").run()
    at.button(key="finance_train_button").click().run()
    assert not at.exception and not at.error
    assert any(w.value.startswith("Not better than its baseline: ROC AUC") for w in at.warning)
    assert any("Not saved" in i.value for i in at.info)
    assert not store.exists("finance", "noise-model")
    assert "noise-model" not in at.selectbox(key="finance_model").options

    at.button(key="finance_train_save_anyway").click().run()
    assert not at.exception and not at.error
    meta = store.load("finance", "noise-model").metadata
    assert meta["quality_gate"]["passed"] is False and meta["quality_gate"]["n_test"] == 90
    assert "noise-model" in at.selectbox(key="finance_model").options  # no reload needed
    assert any("Saved on your request" in i.value for i in at.info)
    assert any("Saved as 'noise-model'" in s.value for s in at.success)
    assert not _has_button(at, "finance_train_save_anyway")

    # Score with it, then rename it in "Your models": the page follows without a stale model.
    at.selectbox(key="finance_model").set_value("noise-model").run()
    assert not at.exception and not at.error
    at.selectbox(key="finance_models_manage_model").set_value("noise-model")
    at.text_input(key="finance_models_manage_new_name").set_value("kept-noise").run()
    at.button(key="finance_models_manage_rename").click().run()
    assert not at.exception and not at.error
    assert store.exists("finance", "kept-noise") and not store.exists("finance", "noise-model")
    options = at.selectbox(key="finance_model").options
    assert "kept-noise" in options and "noise-model" not in options
    assert at.selectbox(key="finance_model").value in options

    at.selectbox(key="finance_models_manage_model").set_value("kept-noise")
    at.button(key="finance_models_manage_delete").click().run()
    at.button(key="finance_models_manage_delete_yes").click().run()
    assert not at.exception and not at.error
    assert not store.exists("finance", "kept-noise")
    assert "kept-noise" not in at.selectbox(key="finance_model").options


def test_large_batch_scores_all_rows_with_reasons_on_demand(app_test, finance_store):
    bundle = FinanceService(ModelStore(finance_store)).load("german_credit")
    rows = pd.concat([bundle.demo_rows] * 30, ignore_index=True)  # 6,000 applicants
    at = app_test(PAGE)
    at.radio(key="finance_source").set_value("Upload a file").run()
    data = rows.to_parquet(index=False)
    at.file_uploader(key="finance_upload").set_value(("big.parquet", data, "application/octet-stream")).run()
    assert not at.exception and not at.error
    assert _metrics(at)["Applicants"] == "6,000"
    table = _scored_table(at)
    assert len(table) == 1000  # the on-screen preview; the download holds all rows
    assert any("first 2,000 applicants" in c.value for c in at.caption)
    assert (table["reason_1"] != "").all()
    assert len(at.get("download_button")) >= 2
