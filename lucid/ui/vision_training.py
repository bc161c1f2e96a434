"""The Vision page's training results: the quality gate (with "Save anyway" for a model that did not
pass), the held-out test metrics and the list of saved models with rename and delete."""

from __future__ import annotations

from typing import Any

import streamlit as st

from lucid.domains.vision.service import TrainedImages, VisionService
from lucid.imaging.metrics import per_class_table
from lucid.ui.model_admin import model_manager, quality_gate_view
from lucid.ui.vision_cache import forget_models
from lucid.ui.vision_plots import confusion_matrix_figure, training_history_figure
from lucid.ui.vision_reports import training_report
from lucid.ui.widgets import downloads

#: Session keys: the last run's summary, and the trained model itself while it waits for "Save anyway".
TRAINED_KEY = "vision_trained"
PENDING_KEY = "vision_trained_pending"
GATE_KEY = "vision_train"  # quality_gate_view's key prefix; it marks "{GATE_KEY}_saved_anyway" when saved


def keep_trained(trained: TrainedImages) -> None:
    """Remember a finished run for the page (the model itself only while it is not saved)."""
    st.session_state[TRAINED_KEY] = {
        "name": trained.name,
        "metrics": trained.result.metrics,
        "history": trained.result.history,
        "split": trained.result.split_sizes,
        "gate": trained.gate,
        "saved": trained.saved,
    }
    st.session_state.pop(f"{GATE_KEY}_saved_anyway", None)  # that mark was about the previous run
    if trained.saved:
        st.session_state.pop(PENDING_KEY, None)
    else:
        st.session_state[PENDING_KEY] = trained


def _save_pending(service: VisionService) -> None:
    """Save the model that did not pass the gate, on the user's explicit choice."""
    pending: TrainedImages = st.session_state[PENDING_KEY]
    service.save_trained(pending)
    forget_models()  # cached predictions of an older model of that name
    st.session_state.pop(PENDING_KEY, None)


def show_trained(service: VisionService) -> None:
    """The last training run: the verdict of the gate, the test metrics, the plots and the report."""
    trained: dict[str, Any] | None = st.session_state.get(TRAINED_KEY)
    if trained is None:
        return
    metrics = trained["metrics"]
    st.subheader(f"Model '{trained['name']}'")
    saved = quality_gate_view(
        GATE_KEY,
        trained.get("gate"),
        saved=bool(trained.get("saved", True)),
        save=lambda: _save_pending(service),
    )
    m1, m2, m3 = st.columns(3)
    m1.metric("Test accuracy", f"{metrics['accuracy']:.1%}")
    m2.metric(f"Always '{metrics['majority_class']}'", f"{metrics['majority_baseline_accuracy']:.1%}")
    m3.metric("Macro F1", f"{metrics['macro_f1']:.3f}")
    st.caption(f"Images used: {trained['split']} (train / validation / test).")
    per_class = per_class_table(metrics)
    st.dataframe(per_class.round(3), hide_index=True, width="stretch", key="vision_train_per_class")
    left, right = st.columns(2)
    left.plotly_chart(confusion_matrix_figure(metrics), width="stretch", key="vision_confusion")
    right.plotly_chart(
        training_history_figure(trained["history"], title="Per epoch"), width="stretch", key="vision_history"
    )
    gate = trained.get("gate")
    downloads(
        "vision_train_dl",
        table=per_class,
        table_name="test_metrics.csv",
        report_html=training_report(
            trained["name"],
            trained["split"],
            metrics,
            per_class,
            [confusion_matrix_figure(metrics), training_history_figure(trained["history"])],
            verdict=gate.verdict() if gate is not None else "",
        ),
        report_name="training_report.html",
    )
    if saved:
        st.info("Pick the new model in the 'Model' box at the top to classify and explain with it.")


def _after_change(service: VisionService) -> None:
    """After a rename or delete: drop cached results and selections that name a model no longer there."""
    forget_models()
    names = set(service.model_names())
    if st.session_state.get("vision_model") not in names:
        st.session_state.pop("vision_model", None)  # the selector falls back to the built-in model
    shown = st.session_state.get("vision_explanation")
    if shown is not None and shown.get("model") not in names:
        st.session_state.pop("vision_explanation", None)
    trained = st.session_state.get(TRAINED_KEY)
    if trained is not None and PENDING_KEY not in st.session_state and trained["name"] not in names:
        st.session_state.pop(TRAINED_KEY, None)


def your_models(service: VisionService) -> None:
    """The saved models of this page, with rename and delete."""
    with st.expander("Your models", icon=":material/inventory_2:"):
        model_manager("vision_models", service, on_change=lambda: _after_change(service))
