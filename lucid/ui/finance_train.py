"""The "Train your own" tab of the Credit risk page: the labelled upload and the training form with Train
and Stop, the quality gate (the new model's held-out ROC AUC against the logistic baseline on the same
30%, with "Save anyway" when it did not pass), the held-out plots, and the user's saved models with
rename and delete."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from lucid.domains.finance.gate import CreditTraining
from lucid.domains.finance.service import FinanceService
from lucid.domains.finance.stats import calibration_table, ks_curve
from lucid.ui import finance_plots
from lucid.ui.finance_session import read_upload
from lucid.ui.model_admin import model_manager, quality_gate_view
from lucid.ui.widgets import guard, model_card, progress_bar, training_buttons

#: The last training run's outcome (a :class:`CreditTraining`), kept until the next run.
RESULT_KEY = "finance_trained"
#: The widget-key prefix of the quality gate's view ("Save anyway" is ``{GATE_KEY}_save_anyway``).
GATE_KEY = "finance_train"
#: The page's model list (its selectbox key).
MODEL_KEY = "finance_model"
#: What the page keeps per session that was computed with a named model.
MODEL_CACHES = ("finance_scored", "finance_scored_sig", "finance_export", "finance_global")
TABLE_TYPES = ["csv", "tsv", "txt", "xlsx", "parquet"]


def _train_form(service: FinanceService, labelled: pd.DataFrame) -> None:
    """Target, default value, features and name; Train and Stop; the run itself."""
    columns = [str(c) for c in labelled.columns]
    target = st.selectbox(
        "Target (did the loan default?)", columns, index=len(columns) - 1, key="finance_train_target"
    )
    values = sorted(labelled[target].dropna().astype(str).str.strip().unique().tolist())[:50]
    positive = st.selectbox("Value meaning default", ["(guess)", *values], key="finance_train_positive")
    feature_cols = st.multiselect(
        "Features",
        [c for c in columns if c != target],
        default=[c for c in columns if c != target],
        key="finance_train_features",
    )
    model_name = st.text_input("Save as", value="my-credit-model", key="finance_train_name")
    controls = training_buttons("finance_train", train_key="finance_train_button")
    if not controls.start:
        return
    # A new run replaces the last one's outcome, and "Save anyway" applied to that one only.
    st.session_state.pop(RESULT_KEY, None)
    st.session_state.pop(f"{GATE_KEY}_saved_anyway", None)
    _, report = progress_bar()
    result: CreditTraining | None = None
    with guard("training the model"):
        result = controls.call(
            service.train,
            labelled,
            target,
            model_name,
            features=feature_cols,
            positive_label=None if positive == "(guess)" else positive,
            progress=report,
        )
    if result is None:
        return
    st.session_state[RESULT_KEY] = result
    if result.saved:
        st.rerun()  # the model picker at the top of the page now lists the new model


def _show_result(service: FinanceService) -> None:
    """The last run: the gate's verdict (and "Save anyway"), the model card or the held-out figures."""
    result: CreditTraining | None = st.session_state.get(RESULT_KEY)
    if result is None:
        return

    def save() -> None:
        st.session_state[RESULT_KEY] = service.save_trained(result)

    st.subheader(f"Model '{result.name}'")
    # A model saved past a failed gate is reported as such by the view (its "saved anyway" mark).
    passed_and_saved = result.saved and result.gate.passed
    saved = quality_gate_view(GATE_KEY, result.gate, saved=passed_and_saved, save=save) or result.saved
    trained = result.trained
    if saved:
        st.success(f"Saved as '{result.name}'. Pick it in the Model list above to score with it.")
        with guard("showing the trained model"):
            model_card(service.card(result.name), expanded=True, title=f"Model card: {result.name}")
    else:
        st.info(
            f"Not saved: on the held-out 30%, '{result.name}' does not beat both a logistic regression "
            "fitted on the same rows and chance. Save it anyway, or train again with more rows or other "
            "features.",
            icon=":material/info:",
        )
        cols = st.columns(4)
        cols[0].metric("ROC AUC", f"{trained.metrics['auc']:.3f}")
        cols[1].metric("Baseline AUC (logistic)", f"{trained.baseline['auc']:.3f}")
        cols[2].metric("Gini", f"{trained.metrics['gini']:.3f}")
        cols[3].metric("KS", f"{trained.metrics['ks']:.3f}")
    y, p = trained.holdout_y, trained.holdout_pd
    c1, c2 = st.columns(2)
    c1.plotly_chart(finance_plots.ks_plot(ks_curve(y, p), title="KS plot (held-out)"), key="finance_train_ks")
    c2.plotly_chart(
        finance_plots.calibration_plot(calibration_table(y, p), title="Calibration (held-out)"),
        key="finance_train_calibration",
    )


def _models_changed(service: FinanceService) -> None:
    """After a rename or delete: nothing kept in the session may still name the old model."""
    for key in MODEL_CACHES:
        st.session_state.pop(key, None)
    names = set(service.model_names())
    result: CreditTraining | None = st.session_state.get(RESULT_KEY)
    if result is not None and result.saved and result.name not in names:
        st.session_state.pop(RESULT_KEY, None)
    if st.session_state.get(MODEL_KEY) not in names:
        st.session_state.pop(MODEL_KEY, None)


def train_tab(service: FinanceService) -> None:
    """The whole tab: explanation, upload, training form, the last run's outcome, the saved models."""
    st.markdown(
        "Upload a labelled file (one row per past loan with a binary outcome). Lucid trains gradient-boosted "
        "trees with a 70/30 stratified split and early stopping, fits a logistic baseline on the same split "
        "and saves the model under your name when its held-out ROC AUC beats the baseline's and chance "
        "(otherwise you choose whether to save it)."
    )
    train_file = st.file_uploader(
        "Labelled file (CSV, Excel or Parquet)", type=TABLE_TYPES, key="finance_train_upload"
    )
    labelled: pd.DataFrame | None = None
    if train_file is not None:
        with guard("reading the file"):
            labelled = read_upload(train_file.getvalue(), train_file.name)
    if labelled is not None:
        _train_form(service, labelled)
    _show_result(service)
    with st.expander("Your models", icon=":material/folder_managed:"):
        model_manager("finance_models", service, on_change=lambda: _models_changed(service))
