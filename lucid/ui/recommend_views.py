"""Streamlit pieces of the recommendations page: loading the model with a progress bar, the cached
recommendation calls, and the view of one user's top-N with the waterfall of a chosen item."""

from __future__ import annotations

import numpy as np
import pandas as pd
import shap
import streamlit as st

from lucid.core.store import shared_service
from lucid.domains.recommend.model import DEFAULT_MODEL
from lucid.domains.recommend.ranking import K
from lucid.domains.recommend.recommender import Recommendations, Recommender
from lucid.domains.recommend.service import RecommendService
from lucid.ui import plots
from lucid.ui.report import Report
from lucid.ui.widgets import downloads, progress_bar

WATERFALL_UNITS = "log-odds that the user picks the item"


def load_model(name: str) -> Recommender:
    """The model, built with a progress bar when it is a default that is not built yet."""
    service = shared_service(RecommendService)
    if not (service.is_default(name) and not service.is_built(name)):
        return service.load(name)
    with st.status("Building the demo recommender (first use only, about half a minute)...") as status:
        _, report = progress_bar()
        model = service.load(name, progress=report)
        status.update(label="Demo recommender ready", state="complete")
    return model


# The model is passed unhashed (``_model``); ``model_key`` (its id) tells the caches apart.
@st.cache_data(show_spinner=False, max_entries=64)
def recommend_user(_model: Recommender, model_key: int, user: str, n: int) -> Recommendations:
    """The top ``n`` of a known user, cached per model and user."""
    return _model.recommend(user, n=n)


@st.cache_data(show_spinner=False, max_entries=32)
def recommend_new(_model: Recommender, model_key: int, items: tuple[str, ...], n: int) -> Recommendations:
    """The top ``n`` of a new customer who chose ``items``, cached per model and choice."""
    return _model.recommend_new_user(list(items), n=n)


@st.cache_data(show_spinner=False, max_entries=8)
def global_view(_model: Recommender, model_key: int) -> tuple[shap.Explanation, pd.DataFrame]:
    """The SHAP values of the top items of 300 users (beeswarm) and the popularity-bias table."""
    explanation = _model.global_explanation(max_users=300)
    top_all = _model.recommend_all(K, reasons=False)
    return explanation, _model.popularity_bias(top_all)


def preview(df: pd.DataFrame, rows: int = 5) -> pd.DataFrame:
    """The first rows for display; text columns holding mixed values (numbers and text, bytes, lists)
    are shown as text so that every upload displays as it is."""
    head = df.head(rows).copy()
    for col in head.columns:
        if head[col].dtype == object:
            head[col] = head[col].astype("string")
    return head


def recommendations_table(recs: Recommendations) -> pd.DataFrame:
    """The top-N with each item's SHAP values, for the CSV download."""
    shap_cols = pd.DataFrame(
        np.asarray(recs.explanation.values), columns=[f"SHAP: {n}" for n in recs.explanation.feature_names]
    )
    return pd.concat([recs.table.assign(user=recs.user), shap_cols], axis=1)


def report_footer(model_name: str) -> str:
    """The licence line of a report: the demo data may not be used commercially."""
    if model_name == DEFAULT_MODEL:
        return "Demo data: MovieLens 100k (GroupLens); no commercial use without GroupLens's permission"
    return ""


def show_recommendations(recs: Recommendations, model_name: str, key: str, heading: str) -> None:
    """The top-N table, the reason and waterfall of one chosen item, and the downloads."""
    st.markdown(f"**{heading}**")
    st.dataframe(
        recs.table.drop(columns=["item"]),
        hide_index=True,
        width="stretch",
        column_config={"score": st.column_config.ProgressColumn("score", min_value=0.0, max_value=1.0)},
    )
    options = list(range(len(recs.table)))
    pick = st.selectbox(
        "Explain one recommendation",
        options,
        format_func=lambda i: f"#{i + 1} {recs.table['title'].iloc[i]}",
        key=f"{key}_explain",
    )
    st.markdown(f"**Why #{pick + 1}:** {recs.table['reason'].iloc[pick]}")
    fig = plots.waterfall(
        recs.explanation[pick], units=WATERFALL_UNITS, title=f"{recs.table['title'].iloc[pick]}"
    )
    st.plotly_chart(fig, key=f"{key}_waterfall")
    st.caption(
        "Red bars raised the item's score, blue bars lowered it; they add up from the average candidate "
        "(base value) to this item's score. The reason quotes the strongest red bars."
    )
    report = Report(
        f"Recommendations for {recs.user}", subtitle=f"Model: {model_name}", footer=report_footer(model_name)
    )
    report.add("Top recommendations", table=recs.table)
    report.add(
        f"Why #{pick + 1}: {recs.table['title'].iloc[pick]}", text=recs.table["reason"].iloc[pick], figure=fig
    )
    downloads(
        key,
        table=recommendations_table(recs),
        table_name="recommendations.csv",
        report_html=report.to_html(),
        report_name="recommendations.html",
    )
