"""The "Train on your data" tab of the recommendations page: the upload form, the training run with
Train and Stop, the quality gate (the new model against popularity on the same held-out users, with
"Save anyway" when it did not pass) and the user's saved models with rename and delete."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from lucid.core.columns import ITEM_COLUMNS, RATING_COLUMNS, TIME_COLUMNS, USER_COLUMNS, find_column
from lucid.core.data import read_table
from lucid.core.errors import InvalidInputError
from lucid.domains.recommend.data import (
    InteractionData,
    attach_item_table,
    attach_user_table,
    prepare_interactions,
)
from lucid.domains.recommend.service import RecommendService, TrainedRecommender
from lucid.ui.model_admin import model_manager, quality_gate_view
from lucid.ui.recommend_plots import metrics_comparison
from lucid.ui.recommend_views import global_view, preview, recommend_new, recommend_user
from lucid.ui.widgets import downloads, guard, progress_bar, training_buttons

NONE = "(none)"
TABLE_TYPES = ["csv", "tsv", "txt", "xlsx", "parquet"]
#: The session-state key of the last training run's outcome (kept across reruns until "Save anyway").
RESULT_KEY = "recommend_trained"
#: The widget-key prefix of the quality gate's view ("Save anyway" is ``{GATE_KEY}_save_anyway``).
GATE_KEY = "recommend_train"
#: The page's model list (its selectbox key).
MODEL_KEY = "recommend_model"


def _choice(value: str) -> str | None:
    return None if value == NONE else value


def _column_choices(log: pd.DataFrame) -> dict[str, Any]:
    """The log's columns (user, item, rating, time, rating scale), guessed by their usual names."""
    cols = list(log.columns)

    def guess(candidates: tuple[str, ...]) -> int:
        found = find_column(cols, candidates)
        return cols.index(found) + 1 if found is not None else 0

    picks: dict[str, Any] = {}
    for column, (label, key, names) in zip(
        st.columns(4),
        (
            ("User column", "user_col", USER_COLUMNS),
            ("Item column", "item_col", ITEM_COLUMNS),
            ("Rating column", "rating_col", RATING_COLUMNS),
            ("Timestamp column", "time_col", TIME_COLUMNS),
        ),
        strict=True,
    ):
        picks[key] = _choice(
            column.selectbox(label, [NONE, *cols], index=guess(names), key=f"recommend_{key}")
        )
    picks["scale"] = None
    if picks["rating_col"] is not None:
        s1, s2 = st.columns(2)
        lo = s1.number_input("Lowest rating", value=1.0, key="recommend_scale_lo")
        hi = s2.number_input("Highest rating", value=5.0, key="recommend_scale_hi")
        picks["scale"] = (lo, hi)
    return picks


def _side_tables() -> tuple[dict[str, Any] | None, dict[str, Any] | None, str | None]:
    """The optional item and user tables with their columns, and which uploaded one is unreadable."""
    items_upload = st.file_uploader("Item table (optional)", type=TABLE_TYPES, key="recommend_items_upload")
    item_args = None
    if items_upload is not None:
        with guard("reading the item table"):
            item_table = read_table(items_upload.getvalue(), items_upload.name)
            icols = list(item_table.columns)
            i1, i2, i3 = st.columns(3)
            item_args = {
                "table": item_table,
                "id_col": i1.selectbox("Item id column", icols, key="recommend_items_id"),
                "title_col": _choice(
                    i2.selectbox("Title column", [NONE, *icols], key="recommend_items_title")
                ),
                "category_cols": i3.multiselect("Category columns", icols, key="recommend_items_cats"),
            }
    users_upload = st.file_uploader("User table (optional)", type=TABLE_TYPES, key="recommend_users_upload")
    user_args = None
    if users_upload is not None:
        with guard("reading the user table"):
            user_table = read_table(users_upload.getvalue(), users_upload.name)
            user_args = {
                "table": user_table,
                "id_col": st.selectbox("User id column", list(user_table.columns), key="recommend_users_id"),
            }
    for what, upload, args in (("item", items_upload, item_args), ("user", users_upload, user_args)):
        if upload is not None and args is None:
            return item_args, user_args, what
    return item_args, user_args, None


def _interaction_data(
    log: pd.DataFrame,
    picks: dict[str, Any],
    item_args: dict[str, Any] | None,
    user_args: dict[str, Any] | None,
) -> InteractionData:
    data = prepare_interactions(
        log,
        user_col=picks["user_col"],
        item_col=picks["item_col"],
        rating_col=picks["rating_col"],
        timestamp_col=picks["time_col"],
        rating_scale=picks["scale"],
    )
    if item_args is not None:
        data = attach_item_table(
            data,
            item_args["table"],
            id_col=item_args["id_col"],
            title_col=item_args["title_col"],
            category_cols=item_args["category_cols"],
        )
    if user_args is not None:
        data = attach_user_table(data, user_args["table"], id_col=user_args["id_col"])
    return data


def _train_form(service: RecommendService, log: pd.DataFrame) -> None:
    """Columns, side tables, the name, Train and Stop; a finished run goes to :data:`RESULT_KEY`."""
    st.dataframe(preview(log), hide_index=True, width="stretch")
    picks = _column_choices(log)
    item_args, user_args, unreadable = _side_tables()
    new_name = st.text_input("Save the model as", key="recommend_new_name", placeholder="e.g. shop-2024")
    controls = training_buttons(
        "recommend_train_run", train_key="recommend_train", stop_key="recommend_train_stop"
    )
    if not controls.start:
        return
    # No stale result (or an earlier "Save anyway") beside a new run's outcome or error.
    st.session_state.pop(RESULT_KEY, None)
    st.session_state.pop(f"{GATE_KEY}_saved_anyway", None)
    trained = None
    with guard("training the recommender"):
        if unreadable:
            raise InvalidInputError(
                f"The {unreadable} table could not be read (see above); upload a readable file or remove it "
                "before training."
            )
        data = _interaction_data(log, picks, item_args, user_args)
        with st.status("Training the recommender...", expanded=True) as status:
            _, report_training = progress_bar("Preparing")
            trained = controls.call(service.train, data, new_name, progress=report_training)
            status.update(label="Training finished", state="complete")
        st.session_state[RESULT_KEY] = {
            "trained": trained,
            "notes": data.notes,
            "metrics": trained.model.metrics_table(),
        }
    if trained is not None and trained.saved:
        st.rerun()  # so that the Model list at the top of the page offers the new model at once


def _show_result(service: RecommendService) -> None:
    """The last run: the gate's verdict (and "Save anyway"), the data notes and the metrics."""
    result = st.session_state.get(RESULT_KEY)
    if not result:
        return
    trained: TrainedRecommender = result["trained"]

    def save() -> None:
        st.session_state[RESULT_KEY] = {**result, "trained": service.save_trained(trained)}

    saved = quality_gate_view(GATE_KEY, trained.gate, saved=trained.saved, save=save)
    if saved:
        st.success(f"Saved as '{trained.name}'. Choose it in the Model list above to explore it.")
    else:
        st.info(
            f"Not saved: '{trained.name}' does not beat recommending the most popular items on the held-out "
            "users. Save it anyway, or train again on more or richer interactions.",
            icon=":material/info:",
        )
    for note in result["notes"]:
        st.info(note, icon=":material/info:")
    st.dataframe(result["metrics"].round(4), hide_index=True, width="stretch")
    st.plotly_chart(metrics_comparison(result["metrics"]), key="recommend_train_metrics")
    downloads("recommend_train_dl", table=result["metrics"], table_name="training_metrics.csv")


def _models_changed(service: RecommendService) -> None:
    """After a rename or delete: nothing cached or remembered may still name the old model."""
    for cached in (recommend_user, recommend_new, global_view):
        cached.clear()
    names = set(service.model_names())
    result = st.session_state.get(RESULT_KEY)
    if result and result["trained"].saved and result["trained"].name not in names:
        st.session_state.pop(RESULT_KEY, None)
    if st.session_state.get(MODEL_KEY) not in names:
        st.session_state.pop(MODEL_KEY, None)


def train_tab(service: RecommendService) -> None:
    """The whole tab: explanation, upload, training form, the last run's outcome, the saved models."""
    st.markdown(
        "Upload an interaction log (CSV, Excel or Parquet): one row per event with a user and an item, "
        "and optionally a rating (explicit stars) and a time. Without ratings the events (clicks, "
        "purchases) count as implicit interest. Optionally add an item table with titles and categories. "
        "A new model is saved when it beats recommending the most popular items on held-out interactions."
    )
    upload = st.file_uploader("Interaction log", type=TABLE_TYPES, key="recommend_upload")
    if upload is not None:
        log = None
        with guard("reading the interaction log"):
            log = read_table(upload.getvalue(), upload.name)
        if log is not None:
            _train_form(service, log)
    _show_result(service)
    with st.expander("Your models", icon=":material/folder_managed:"):
        model_manager("recommend_models", service, on_change=lambda: _models_changed(service))
