"""Recommendations: top-N items per customer with a reason for every item, metrics against baselines,
and training on an uploaded interaction log."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from lucid.core.columns import ITEM_COLUMNS, RATING_COLUMNS, TIME_COLUMNS, USER_COLUMNS, find_column
from lucid.core.data import read_table
from lucid.core.errors import InvalidInputError
from lucid.core.store import shared_service
from lucid.domains import DOMAINS
from lucid.domains.recommend.batch import batch_frame
from lucid.domains.recommend.data import attach_item_table, attach_user_table, prepare_interactions
from lucid.domains.recommend.ranking import K
from lucid.domains.recommend.service import RecommendService
from lucid.ui import plots
from lucid.ui.recommend_plots import metrics_comparison, popularity_bias, similar_items_bar
from lucid.ui.recommend_views import (
    global_view,
    load_model,
    preview,
    recommend_new,
    recommend_user,
    report_footer,
    show_recommendations,
)
from lucid.ui.report import Report
from lucid.ui.widgets import batch_export, downloads, guard, model_card, progress_bar, training_buttons

NONE = "(none)"
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
        st.markdown(
            "Upload an interaction log (CSV, Excel or Parquet): one row per event with a user and an item, "
            "and optionally a rating (explicit stars) and a time. Without ratings the events (clicks, "
            "purchases) count as implicit interest. Optionally add an item table with titles and categories."
        )
        upload = st.file_uploader(
            "Interaction log", type=["csv", "tsv", "txt", "xlsx", "parquet"], key="recommend_upload"
        )
        if upload is not None:
            log = None
            with guard("reading the interaction log"):
                log = read_table(upload.getvalue(), upload.name)
            if log is not None:
                cols = list(log.columns)
                st.dataframe(preview(log), hide_index=True, width="stretch")

                def guess(candidates: tuple[str, ...]) -> int:
                    found = find_column(cols, candidates)
                    return cols.index(found) + 1 if found is not None else 0

                c1, c2, c3, c4 = st.columns(4)
                user_col = c1.selectbox(
                    "User column",
                    [NONE, *cols],
                    index=guess(USER_COLUMNS),
                    key="recommend_user_col",
                )
                item_col = c2.selectbox(
                    "Item column",
                    [NONE, *cols],
                    index=guess(ITEM_COLUMNS),
                    key="recommend_item_col",
                )
                rating_col = c3.selectbox(
                    "Rating column",
                    [NONE, *cols],
                    index=guess(RATING_COLUMNS),
                    key="recommend_rating_col",
                )
                time_col = c4.selectbox(
                    "Timestamp column",
                    [NONE, *cols],
                    index=guess(TIME_COLUMNS),
                    key="recommend_time_col",
                )
                scale = None
                if rating_col != NONE:
                    s1, s2 = st.columns(2)
                    lo = s1.number_input("Lowest rating", value=1.0, key="recommend_scale_lo")
                    hi = s2.number_input("Highest rating", value=5.0, key="recommend_scale_hi")
                    scale = (lo, hi)
                items_upload = st.file_uploader(
                    "Item table (optional)",
                    type=["csv", "tsv", "txt", "xlsx", "parquet"],
                    key="recommend_items_upload",
                )
                item_args = None
                if items_upload is not None:
                    with guard("reading the item table"):
                        item_table = read_table(items_upload.getvalue(), items_upload.name)
                        icols = list(item_table.columns)
                        i1, i2, i3 = st.columns(3)
                        item_args = {
                            "table": item_table,
                            "id_col": i1.selectbox("Item id column", icols, key="recommend_items_id"),
                            "title_col": i2.selectbox(
                                "Title column", [NONE, *icols], key="recommend_items_title"
                            ),
                            "category_cols": i3.multiselect(
                                "Category columns", icols, key="recommend_items_cats"
                            ),
                        }
                users_upload = st.file_uploader(
                    "User table (optional)",
                    type=["csv", "tsv", "txt", "xlsx", "parquet"],
                    key="recommend_users_upload",
                )
                user_args = None
                if users_upload is not None:
                    with guard("reading the user table"):
                        user_table = read_table(users_upload.getvalue(), users_upload.name)
                        user_args = {
                            "table": user_table,
                            "id_col": st.selectbox(
                                "User id column", list(user_table.columns), key="recommend_users_id"
                            ),
                        }
                new_name = st.text_input(
                    "Save the model as", key="recommend_new_name", placeholder="e.g. shop-2024"
                )
                controls = training_buttons(
                    "recommend_train_run", train_key="recommend_train", stop_key="recommend_train_stop"
                )
                if controls.start:
                    st.session_state.pop("recommend_trained", None)  # no stale result beside a new error
                    with guard("training the recommender"):
                        for what, upload_, args in (
                            ("item", items_upload, item_args),
                            ("user", users_upload, user_args),
                        ):
                            if upload_ is not None and args is None:
                                raise InvalidInputError(
                                    f"The {what} table could not be read (see above); upload a readable "
                                    "file or remove it before training."
                                )
                        data = prepare_interactions(
                            log,
                            user_col=None if user_col == NONE else user_col,
                            item_col=None if item_col == NONE else item_col,
                            rating_col=None if rating_col == NONE else rating_col,
                            timestamp_col=None if time_col == NONE else time_col,
                            rating_scale=scale,
                        )
                        if item_args is not None:
                            data = attach_item_table(
                                data,
                                item_args["table"],
                                id_col=item_args["id_col"],
                                title_col=None if item_args["title_col"] == NONE else item_args["title_col"],
                                category_cols=item_args["category_cols"],
                            )
                        if user_args is not None:
                            data = attach_user_table(data, user_args["table"], id_col=user_args["id_col"])
                        with st.status("Training the recommender...", expanded=True) as status:
                            _, report_training = progress_bar("Preparing")
                            trained = controls.call(service.train, data, new_name, progress=report_training)
                            status.update(label="Training finished", state="complete")
                        st.session_state["recommend_trained"] = {
                            "name": new_name.strip(),
                            "notes": data.notes,
                            "metrics": trained.metrics_table(),
                        }
        result = st.session_state.get("recommend_trained")
        if result:
            st.success(f"Saved as '{result['name']}'. Choose it in the Model list above to explore it.")
            for note in result["notes"]:
                st.info(note, icon=":material/info:")
            st.dataframe(result["metrics"].round(4), hide_index=True, width="stretch")
            st.plotly_chart(metrics_comparison(result["metrics"]), key="recommend_train_metrics")
            downloads("recommend_train_dl", table=result["metrics"], table_name="training_metrics.csv")
