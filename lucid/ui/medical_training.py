"""The medical page's training result: held-out metrics, the quality gate (with "Save anyway" for a model
that did not pass) and the downloads, plus what the page forgets when saved models change.

The last run lives in ``st.session_state[TRAINED_KEY]`` as a :class:`TrainedRun`; a model that did not
pass keeps its weights there, so it can still be saved on the user's explicit choice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st

from lucid.domains.medical.cards import DISCLAIMER
from lucid.domains.medical.service import MedicalService
from lucid.domains.medical.training import ScanTrainResult
from lucid.ui.model_admin import quality_gate_view
from lucid.ui.report import Report
from lucid.ui.widgets import downloads

TRAINED_KEY = "medical_trained"
GATE_KEY = "medical_train"
#: Session entries that name models: dropped when a saved model is renamed or deleted.
NAMING_KEYS = ("medical_prediction", "medical_explained", "medical_model", TRAINED_KEY)


@dataclass
class TrainedRun:
    """The page's last training run: the name asked for, its metrics and the service's result."""

    name: str
    metrics: dict[str, Any]
    result: ScanTrainResult
    saved: bool


def remember_run(result: ScanTrainResult) -> None:
    """Keep a finished run for the results section; a new run starts its gate afresh."""
    st.session_state.pop(f"{GATE_KEY}_saved_anyway", None)  # the last run's "Save anyway" is not this one's
    st.session_state[TRAINED_KEY] = TrainedRun(result.name, result.metrics, result, result.saved)


def forget_models() -> None:
    """After a rename or delete: nothing the session holds may name a model that is gone."""
    for key in NAMING_KEYS:
        st.session_state.pop(key, None)


def trained_view(service: MedicalService) -> None:
    """The last run's held-out results and quality gate (nothing when there is no run)."""
    run = st.session_state.get(TRAINED_KEY)
    if not isinstance(run, TrainedRun):
        return
    m = run.metrics
    a, b, c = st.columns(3)
    a.metric("Test accuracy", f"{m['accuracy']:.1%}")
    b.metric("Majority-class baseline", f"{m['majority_baseline_accuracy']:.1%}")
    c.metric("Macro AUC", f"{m['macro_auc']:.3f}")
    gate = run.result.gate

    def save() -> None:
        service.save_trained(run.result)

    saved = quality_gate_view(GATE_KEY, gate, saved=run.saved, save=save)
    if saved:
        st.caption(f"Saved as **{run.result.name}**: it is in the model picker and on the Models tab.")
    per_class = pd.DataFrame([{"class": k, **v} for k, v in m["per_class"].items()])
    st.dataframe(per_class, hide_index=True, width="stretch")
    classes = list(m["per_class"])
    confusion = pd.DataFrame(m["confusion_matrix"], index=classes, columns=classes)
    st.markdown("**Confusion matrix** (rows: true class, columns: predicted)")
    st.dataframe(confusion)
    st.caption(
        f"Calibration error (ECE) {m['ece_uncalibrated']:.3f} before and {m['ece']:.3f} after "
        f"temperature scaling (T = {m['temperature']:.2f}, fitted on the validation split). {DISCLAIMER}"
    )
    report = Report(f"Medical imaging: model {run.name}", subtitle=DISCLAIMER)
    if gate is not None:
        report.add("Quality check (held-out test split)", text=" ".join([gate.verdict(), *gate.caveats()]))
    report.add("Per class (test split)", table=per_class)
    report.add("Confusion matrix", table=confusion.reset_index(names="true class"))
    downloads(
        "medical_train_result",
        table=per_class,
        table_name="test_metrics.csv",
        report_html=report.to_html(),
    )
