"""What the review-sentiment page shows after "Train your own": the quality gate (with "Save anyway"
when the model did not pass), the held-out metrics beside the TF-IDF baseline, per class, the
confusion matrix, the loss curve and the downloads; and the list of saved models with rename and delete.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import streamlit as st

from lucid.domains.nlp.cards import metrics_table
from lucid.domains.nlp.quality import TrainedText
from lucid.domains.nlp.service import NLPService
from lucid.ui.model_admin import model_manager, quality_gate_view
from lucid.ui.nlp_plots import loss_curve
from lucid.ui.nlp_reports import training_report
from lucid.ui.plots import confusion_matrix
from lucid.ui.widgets import downloads

#: The session keys of the page's results that name a model: stale once a model is renamed or deleted.
MODEL_VIEWS = ("nlp_analysis", "nlp_batch", "nlp_drivers", "nlp_trained", "nlp_train_saved_anyway")


def trained_view(service: NLPService, trained: TrainedText) -> None:
    """The outcome of a training run: the gate's verdict first, then the figures it rests on."""
    saved = quality_gate_view(
        "nlp_train", trained.gate, saved=trained.saved, save=lambda: service.save_trained(trained)
    )
    if saved:
        st.success(f"Saved as '{trained.name}'. Pick it in the Model list above to use it on this page.")
    else:
        st.info(
            f"Not saved: '{trained.name}' is not in the Model list. Label more texts and train again, "
            "or save it anyway."
        )
    meta = trained.metadata
    st.markdown("**Held-out test metrics, beside the TF-IDF baseline on the same split**")
    table = metrics_table(meta)
    st.dataframe(table, hide_index=True, width="stretch")
    per_class = pd.DataFrame(meta["test_details"]["per_class"]).T.reset_index(names="class")
    st.markdown("**Per class (test rows)**")
    st.dataframe(per_class, hide_index=True, width="stretch")
    left, right = st.columns(2)
    confusion = confusion_matrix(meta["test_details"]["confusion_matrix"], meta["labels"])
    left.plotly_chart(confusion, key="nlp_confusion")
    curve = loss_curve(trained.result.history.losses)
    right.plotly_chart(curve, key="nlp_loss")
    if meta.get("validation"):
        st.markdown("**Validation after each epoch**")
        st.dataframe(pd.DataFrame(meta["validation"]), hide_index=True, width="stretch")
    report_html = training_report(trained.name, table, per_class, confusion, curve)
    downloads("nlp_train", table=per_class, table_name="test_metrics.csv", report_html=report_html)


def your_models(service: NLPService, *, clear_caches: Callable[[], None] | None = None) -> None:
    """The saved models with rename and delete; a change drops every result that names a model."""

    def on_change() -> None:
        for key in MODEL_VIEWS:
            st.session_state.pop(key, None)
        # The Model list must not keep a name that is gone (renamed or deleted).
        if st.session_state.get("nlp_model") not in service.model_names():
            st.session_state.pop("nlp_model", None)
        if clear_caches is not None:
            clear_caches()

    st.subheader("Your models")
    model_manager("nlp_models", service, on_change=on_change)
