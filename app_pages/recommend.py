"""Recommendations: top-N items per customer with a reason for every item, metrics against baselines,
and training on an uploaded interaction log."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from lucid.core.columns import USER_COLUMNS, find_column
from lucid.core.data import read_table
from lucid.core.store import shared_service
from lucid.domains import DOMAINS
from lucid.domains.recommend.batch import batch_frame
from lucid.domains.recommend.ranking import K
from lucid.domains.recommend.service import RecommendService
from lucid.ui import plots
from lucid.ui.recommend_plots import metrics_comparison, popularity_bias, similar_items_bar
from lucid.ui.recommend_train import train_tab
from lucid.ui.recommend_views import (
    global_view,
    load_model,
    recommend_new,
    recommend_user,
    report_footer,
    show_recommendations,
)
from lucid.ui.report import Report
from lucid.ui.widgets import batch_export, downloads, guard, model_card

EVERY_USER = "Every user of the model"
FILE_USERS = "The users of a file"


# ----------------------------------------------------------------------------------------------
st.title("Recommendations")
st.markdown(
    "See what the system would recommend to a customer and **why**, check that it beats simply "
    "recommending what is popular, and train it on your own interaction log."
)
st.info(
    "The demo data is **MovieLens 100k** (GroupLens, University of Minnesota). Its licence forbids "
    "commercial use without GroupLens's permission; use it to evaluate this page, not in a product.",
    icon=":material/gavel:",
)

service = shared_service(RecommendService)  # one per process and model store, for every session
names = service.model_names()
name = st.selectbox("Model", names, key="recommend_model")
model = None
with guard("loading the recommender"):
    model = load_model(name)

if model is not None:
    model_key = id(model)
    model_card(service.card(name))
    word, words = model.item_word, model.item_word + "s"
    tab_user, tab_new, tab_similar, tab_global, tab_train = st.tabs(
        ["For a customer", "New customer", f"Similar {words}", "How it performs", "Train on your data"]
    )

    with tab_user:
        query = st.text_input("Search user id", key="recommend_user_query", placeholder="e.g. 196")
        matches = [u for u in model.user_ids if query.strip() in u] if query.strip() else model.user_ids
        if query.strip() and not matches:
            with guard("looking up the user"):
                model.user_index(query)
        if matches:
            user = st.selectbox(f"User ({len(matches):,} found)", matches[:1000], key="recommend_user")
            n = st.slider("How many recommendations", 5, 30, K, key="recommend_n")
            with guard("recommending"):
                recs = recommend_user(model, model_key, user, n)
                left, right = st.columns([2, 3])
                with left:
                    history = model.history(user)
                    st.markdown(f"**History of {user}** ({len(history)} {words}, latest first)")
                    if model.data.users is not None and user in model.data.users.index:
                        attrs = model.data.users.loc[user].dropna()
                        st.caption(" · ".join(f"{k}: {v}" for k, v in attrs.items()))
                    st.dataframe(history.drop(columns=["item"]), hide_index=True, width="stretch", height=420)
                with right:
                    show_recommendations(recs, name, "recommend_user_dl", f"Top {n} for {user}")

    with tab_new:
        st.markdown(f"For someone who is not in the data yet: choose {words} they like.")
        labels = {
            f"{model.titles[i]} [{model.item_ids[i]}]": model.item_ids[i] for i in range(len(model.item_ids))
        }
        popular = model.index.popularity_ranking()
        ordered = [f"{model.titles[i]} [{model.item_ids[i]}]" for i in popular]
        chosen = st.multiselect(f"{words.capitalize()} they like", ordered, key="recommend_new_items")
        if chosen:
            with guard("recommending for the new customer"):
                recs = recommend_new(model, model_key, tuple(labels[c] for c in chosen), K)
                show_recommendations(recs, name, "recommend_new_dl", f"Top {K} for the new customer")

    with tab_similar:
        popular = model.index.popularity_ranking()
        options = [model.item_ids[i] for i in popular]
        item = st.selectbox(
            word.capitalize(),
            options,
            format_func=lambda i: f"{model.titles[model.item_index(i)]} [{i}]",
            key="recommend_similar_item",
        )
        with guard("finding similar items"):
            similar = model.similar_items(item, n=K)
            st.markdown(
                f"**{words.capitalize()} chosen by the same users as {model.titles[model.item_index(item)]}**"
            )
            st.dataframe(similar.drop(columns=["item"]), hide_index=True, width="stretch")
            fig = similar_items_bar(similar)
            st.plotly_chart(fig, key="recommend_similar_chart")
            report = Report(
                f"{words.capitalize()} similar to {model.titles[model.item_index(item)]}",
                subtitle=f"Model: {name}",
                footer=report_footer(name),
            )
            report.add("Similar items", table=similar, figure=fig)
            downloads(
                "recommend_similar_dl",
                table=similar,
                table_name="similar.csv",
                report_html=report.to_html(),
                report_name="similar.html",
            )

    with tab_global:
        st.markdown(
            "Measured on held-out data: each user's latest 20% of interactions (by time; random when the "
            "log has no time) were hidden while training; a hit is a hidden item in the top 10. "
            "**Popularity** recommends the most popular items the user does not have; the **candidate "
            "generator** is the matrix factorisation alone; the **full model** re-ranks its candidates."
        )
        table = model.metrics_table()
        st.dataframe(table.round(4), hide_index=True, width="stretch")
        metrics_fig = metrics_comparison(table, title="Ranking metrics on held-out interactions")
        st.plotly_chart(metrics_fig, key="recommend_metrics_chart")
        full, pop = model.metrics.get("full model", {}), model.metrics.get("popularity", {})
        if pop.get("ndcg@10"):
            st.metric(
                "NDCG@10, full model vs popularity",
                f"{full.get('ndcg@10', 0):.3f}",
                f"{full.get('ndcg@10', 0) / pop['ndcg@10']:.2f}x popularity",
            )
        with guard("explaining the model globally"):
            explanation, bias = global_view(model, model_key)
            bees = plots.beeswarm(explanation, title="What drives recommendations (top 10 of 300 users)")
            st.plotly_chart(bees, key="recommend_beeswarm")
            st.caption(
                "Each dot is one recommended item; right of zero raised its score. "
                "Colour: the feature's value."
            )
            bias_fig = popularity_bias(bias, title="Coverage and popularity bias")
            st.plotly_chart(bias_fig, key="recommend_bias_chart")
            report = Report("Recommender performance", subtitle=f"Model: {name}", footer=report_footer(name))
            report.add("Held-out metrics", table=table.round(4), figure=metrics_fig)
            report.add("What drives recommendations", figure=bees)
            report.add("Coverage and popularity bias", figure=bias_fig)
            downloads(
                "recommend_global_dl",
                report_html=report.to_html(),
                report_name="recommender_performance.html",
            )
        with st.expander(f"Batch job: the top {words} of every user, with reasons", icon=":material/dns:"):
            st.caption(
                "The same job as `lucid recommend score`: the users in order, each with their "
                f"top {words} (never one already in their history) and the reason for each."
            )
            top = st.slider(f"{words.capitalize()} per user", 1, 30, K, key="recommend_batch_top")
            who = st.radio("Users", [EVERY_USER, FILE_USERS], key="recommend_batch_users", horizontal=True)
            users_frame = None
            with guard("reading the users"):
                if who == EVERY_USER:
                    users_frame = batch_frame(model, pd.Series(model.user_ids, name="user"), model_name=name)
                else:
                    users_file = st.file_uploader(
                        "A table with a user column (an interaction log, a customer list)",
                        type=["csv", "tsv", "txt", "xlsx", "parquet"],
                        key="recommend_batch_upload",
                    )
                    if users_file is not None:
                        users_table = read_table(users_file.getvalue(), users_file.name)
                        columns = list(users_table.columns)
                        found = find_column(columns, USER_COLUMNS)
                        guessed = columns.index(found) if found is not None else 0
                        user_col = st.selectbox(
                            "User column", columns, index=guessed, key="recommend_batch_user_col"
                        )
                        users_frame = batch_frame(model, users_table[user_col], model_name=name)
            if users_frame is not None:
                st.caption(f"{len(users_frame):,} users, one row per user and rank.")
                batch_export(
                    "recommend_batch",
                    DOMAINS["recommend"],
                    users_frame,
                    model=name,
                    options={"top": int(top)},
                    explain_label=None,  # every recommendation carries its reason
                    file_name=f"top{top}_per_user.csv",
                )

    with tab_train:
        train_tab(service)
