"""Review sentiment: analyse one text, score a batch, train your own text classifier."""

from __future__ import annotations

import html

import pandas as pd
import streamlit as st

from lucid.core.errors import InvalidInputError
from lucid.core.store import default_root, shared_service
from lucid.domains import DOMAINS
from lucid.domains.nlp.batch import batch_frame
from lucid.domains.nlp.data import column_texts, demo_reviews, read_texts_file, text_columns
from lucid.domains.nlp.model import DEFAULT_MODEL, TrainConfig
from lucid.domains.nlp.results import BatchScores, TextAnalysis, WordDrivers
from lucid.domains.nlp.service import NLPService
from lucid.ui.nlp_plots import drivers_bar, score_histogram
from lucid.ui.nlp_reports import batch_report, one_text_report
from lucid.ui.nlp_training import trained_view, your_models
from lucid.ui.plots import text_highlight_html, token_bar
from lucid.ui.widgets import batch_export, downloads, guard, model_card, progress_bar, training_buttons

EXAMPLE = (
    "I ordered this dress for a wedding. The colour is gorgeous and the fabric feels expensive, "
    "but the zipper broke the first time I wore it and the customer service never answered."
)
DEMO_SIZE = 300


@st.cache_data(show_spinner=False, max_entries=64)
def analyse_text(
    _service: NLPService,
    store_root: str,
    model: str,
    stamp: str,
    text: str,
    target: str | None,
    int8: bool,
    units: str,
) -> TextAnalysis:
    return _service.analyse(text, model, target=target, int8=int8, units=units)


@st.cache_data(show_spinner=False)
def cached_demo_reviews() -> pd.DataFrame:
    return demo_reviews(DEMO_SIZE)


store_root = str(default_root())
service = shared_service(NLPService, store_root)  # one per process and store, for every session

st.title("Review sentiment")
st.caption(
    "Score customer reviews, tickets or survey answers as positive or negative, see which words drove "
    "each score, find what drives negative feedback across many texts, and train the model on your own "
    "labelled texts. Colours: red words push towards the explained class, blue words push away from it."
)

if not service.is_built(DEFAULT_MODEL):
    with guard("building the default model"):
        with st.status("Building the default sentiment model (first use only)...", expanded=True) as status:
            st.write(
                "The default model is fine-tuned here from the packaged MiniLM encoder on 10,000 clothing "
                "reviews. On a laptop CPU this takes 10-30 minutes, on a GPU seconds; it is kept afterwards."
            )
            _, report_build = progress_bar()
            service.load(DEFAULT_MODEL, progress=report_build)
            status.update(label="Default model ready", state="complete", expanded=False)

names = service.model_names()
top_left, top_right = st.columns([3, 1])
model_name = top_left.selectbox(
    "Model",
    names,
    key="nlp_model",
    help="The built-in model, or one you trained in 'Train your own'.",
)
int8 = top_right.toggle(
    "Faster int8 scoring",
    key="nlp_int8",
    help="A quantised copy of the model: faster on a CPU, with slightly different scores "
    "(its measured accuracy is on the model card).",
)
card = None
with guard("reading the model card"):
    card = service.card(model_name)
    model_card(card)
entry_stamp = ""
classes: list[str] = []
with guard("loading the model"):
    entry_stamp = str(service.stored(model_name).metadata.get("created", ""))
    classes = service.load(model_name).labels

tab_one, tab_batch, tab_train = st.tabs(["Analyse a text", "Score a batch", "Train your own"])

# ------------------------------------------------------------------------------------------------
# One text
# ------------------------------------------------------------------------------------------------
with tab_one:
    text = st.text_area("Text", value=EXAMPLE, height=140, key="nlp_text", max_chars=None)
    left, middle, right = st.columns([2, 2, 1])
    choice = left.selectbox(
        "Explain the class",
        ["the predicted class", *classes],
        key="nlp_target",
        help="SHAP values explain this class's probability (or log-odds).",
    )
    units = middle.radio(
        "Units",
        ["probability", "log-odds"],
        horizontal=True,
        key="nlp_units",
        help="Probability: each word's share of the class's probability, the numbers shap gives for a "
        "transformers pipeline. Log-odds: the same in the model's own additive scale.",
    )
    analyse_clicked = right.button("Analyse", type="primary", key="nlp_analyse", icon=":material/search:")
    if analyse_clicked:
        st.session_state.pop("nlp_analysis", None)
        with guard("analysing the text"), st.spinner("Explaining the prediction word by word..."):
            target = None if choice == "the predicted class" else choice
            st.session_state["nlp_analysis"] = (
                model_name,
                analyse_text(service, store_root, model_name, entry_stamp, text, target, int8, units),
            )
    stored_analysis = st.session_state.get("nlp_analysis")
    if stored_analysis and stored_analysis[0] == model_name:
        result: TextAnalysis = stored_analysis[1]
        cols = st.columns(len(result.probabilities) + 1)
        cols[0].metric("Prediction", result.label)
        for col, (label, prob) in zip(cols[1:], result.probabilities.items(), strict=True):
            col.metric(f"P({label})", f"{prob:.1%}")
        if result.truncated:
            st.warning(result.truncation_notice(), icon=":material/content_cut:")
        scale = "probability" if result.units == "probability" else "log-odds"
        digits = 3 if result.units == "probability" else 2
        st.markdown(
            f"**Why:** each word's share of the {scale} of **{html.escape(result.explained_label)}** "
            f"(base value {float(result.explanation.base_values):+.{digits}f} with every word masked, output "
            f"{result.output:+.{digits}f}; shares add up within {result.additivity_error:.0e}). "
            f"Computed in {result.seconds:.1f} s from the SHAP values of its word pieces."
        )
        highlight = text_highlight_html(result.explanation)
        st.markdown(highlight, unsafe_allow_html=True)
        if result.truncated:
            st.caption(f"Shown: the first {result.used_chars:,} characters, the part the model read.")
        figure = token_bar(result.explanation, title=f"Strongest words for '{result.explained_label}'")
        st.plotly_chart(figure, key="nlp_token_bar")
        words = result.word_table()
        with st.expander("Word pieces: the values before they are summed into words"):
            st.caption(
                "The model reads word pieces; SHAP gives each piece its share, and a word's share is the "
                "sum of its pieces'."
            )
            st.dataframe(result.piece_table(), hide_index=True, width="stretch")
        report_html = one_text_report(model_name, result, highlight, figure)
        downloads("nlp_one", table=words, table_name="word_shap.csv", report_html=report_html)

# ------------------------------------------------------------------------------------------------
# Batch
# ------------------------------------------------------------------------------------------------
with tab_batch:
    st.markdown(
        "Upload a CSV, Excel or Parquet file and pick the text column, or a .txt file with one text per "
        f"line. Or try {DEMO_SIZE} held-out demo reviews."
    )
    upload = st.file_uploader(
        "Texts to score", type=["csv", "tsv", "txt", "xlsx", "parquet"], key="nlp_batch_upload"
    )
    if st.button("Use the demo reviews", key="nlp_batch_demo"):
        st.session_state["nlp_batch_source"] = "demo"
    frame = None
    if upload is not None:
        with guard("reading the file"):
            frame = read_texts_file(upload.getvalue(), upload.name)
            source = upload.name
    elif st.session_state.get("nlp_batch_source") == "demo":
        with guard("loading the demo reviews"):
            frame = cached_demo_reviews()
            source = "demo reviews"
    if frame is not None:
        guesses = text_columns(frame) or list(frame.columns)
        column = st.selectbox(
            "Text column",
            list(frame.columns),
            index=list(frame.columns).index(guesses[0]),
            key="nlp_batch_column",
        )
        st.caption(f"{len(frame):,} rows from {source}.")
        if st.button("Score", type="primary", key="nlp_batch_score", icon=":material/play_arrow:"):
            st.session_state.pop("nlp_batch", None)
            st.session_state.pop("nlp_drivers", None)
            with guard("scoring the texts"):
                _, report_scoring = progress_bar("Scoring")
                texts = column_texts(frame, column)
                scores = service.score(texts, model_name, int8=int8, progress=report_scoring)
                st.session_state["nlp_batch"] = (model_name, source, column, scores)
        with st.expander(
            "Batch job: export every row, with each text's strongest words", icon=":material/dns:"
        ):
            st.caption(
                "The same job as `lucid nlp score --explain`: every row of the file, in order, "
                "with its label, probabilities and (optionally) its five strongest words by SHAP."
            )
            batch_export(
                "nlp_batch",
                DOMAINS["nlp"],
                batch_frame(frame, column),
                model=model_name,
                options={"int8": bool(int8)},
                explain_label=(
                    "Add each text's five strongest words (SHAP as for one text; 1-4 s a text on a CPU)"
                ),
                file_name="scores_export.csv",
            )
    stored_batch = st.session_state.get("nlp_batch")
    if stored_batch and stored_batch[0] == model_name:
        _, source, column, scores = stored_batch
        scores: BatchScores
        scored = scores.scored
        c1, c2, c3, c4 = st.columns(4)
        c1.metric("Texts scored", f"{len(scored):,}")
        c2.metric(f"Share '{scores.score_label}'", f"{(scored['label'] == scores.score_label).mean():.1%}")
        c3.metric("Empty (not scored)", f"{scores.n_empty:,}")
        c4.metric("Texts per second", f"{len(scored) / max(scores.seconds, 1e-9):,.0f}")
        if scores.n_truncated:
            st.info(
                f"{scores.n_truncated:,} texts were longer than the model reads; they were scored on their "
                "beginning (column 'truncated').",
                icon=":material/content_cut:",
            )
        histogram = score_histogram(scored["score"], scores.score_label)
        st.plotly_chart(histogram, key="nlp_hist")
        lowest, highest = scores.extremes(5)
        left, right = st.columns(2)
        left.markdown(f"**Lowest P({html.escape(scores.score_label)})**")
        left.dataframe(lowest, hide_index=True, width="stretch")
        right.markdown(f"**Highest P({html.escape(scores.score_label)})**")
        right.dataframe(highest, hide_index=True, width="stretch")
        st.dataframe(scores.table, hide_index=True, width="stretch", key="nlp_batch_table")

        st.subheader("Words that drive the scores")
        n_scored = len(scored)
        if n_scored > 1:
            sample = st.slider(
                "Texts to explain (a random sample when the batch is larger)",
                min_value=1,
                max_value=min(500, n_scored),
                value=min(30, n_scored),
                key="nlp_drivers_sample",
                help="Each text costs up to 300 model calls (6 per word): on two CPU cores about 0.5 s for a "
                "40-word review and 2 s for one of 70 words or more; seconds on a GPU.",
            )
        else:  # a slider needs two distinct ends; one scored text is simply explained
            sample = 1
            st.caption("One text was scored; its words are explained.")
        if st.button("Find driving words", key="nlp_drivers_go", icon=":material/insights:"):
            with guard("explaining the batch"):
                _, report_drivers = progress_bar("Explaining")
                drivers = service.word_drivers(
                    scored["text"].tolist(), model_name, sample_size=sample, progress=report_drivers
                )
                st.session_state["nlp_drivers"] = (model_name, drivers)
        stored_drivers = st.session_state.get("nlp_drivers")
        drivers_view = None
        if stored_drivers and stored_drivers[0] == model_name:
            drivers: WordDrivers = stored_drivers[1]
            st.caption(
                f"Mean SHAP value per word (log-odds of '{drivers.explained_label}', so that words count "
                "alike in confident and in borderline texts; whole-word SHAP, faster than the word-piece "
                f"explanation of one text) over a random sample of {drivers.sample_size:,} of "
                f"{drivers.batch_size:,} texts; words seen at least {drivers.min_count} times. Explained in "
                f"{drivers.seconds:.0f} s ({drivers.seconds / max(drivers.sample_size, 1):.1f} s per text)."
            )
            if drivers.table.empty:
                st.info("No word appeared often enough in the sample; explain more texts.")
            else:
                drivers_figure = drivers_bar(drivers.table, drivers.explained_label)
                drivers_view = (drivers, drivers_figure)
                st.plotly_chart(drivers_figure, key="nlp_drivers_bar")
                left, right = st.columns(2)
                left.markdown(f"**Push away from '{html.escape(drivers.explained_label)}'**")
                left.dataframe(drivers.top(15, sign=-1), hide_index=True, width="stretch")
                right.markdown(f"**Push towards '{html.escape(drivers.explained_label)}'**")
                right.dataframe(drivers.top(15, sign=1), hide_index=True, width="stretch")
        report_html = batch_report(model_name, source, scores, histogram, drivers_view)
        downloads("nlp_batch", table=scores.table, table_name="scores.csv", report_html=report_html)

# ------------------------------------------------------------------------------------------------
# Train your own
# ------------------------------------------------------------------------------------------------
with tab_train:
    st.markdown(
        "Upload labelled texts (CSV, Excel or Parquet) with a text column and a label column with two or "
        "more classes. 20% of the rows are held out for the test metrics, and 10% of the rest for "
        "validation after each epoch. A TF-IDF + logistic-regression baseline is trained on the same "
        "rows, so you can see what the transformer adds: the model is saved only when its held-out "
        "macro-F1 beats the baseline's and clearly beats chance (always the most common class), or "
        "when you choose to save it anyway. Click Stop to cancel; nothing is saved then."
    )
    train_upload = st.file_uploader(
        "Labelled texts", type=["csv", "tsv", "xlsx", "parquet"], key="nlp_train_upload"
    )
    if train_upload is not None:
        train_frame = None
        with guard("reading the file"):
            train_frame = read_texts_file(train_upload.getvalue(), train_upload.name)
        if train_frame is not None:
            columns = list(train_frame.columns)
            guesses = text_columns(train_frame) or columns
            left, right = st.columns(2)
            text_col = left.selectbox(
                "Text column", columns, index=columns.index(guesses[0]), key="nlp_train_text"
            )
            others = [c for c in columns if c != text_col] or columns
            label_col = right.selectbox("Label column", others, key="nlp_train_label")
            c1, c2, c3 = st.columns(3)
            epochs = c1.number_input("Epochs", 1, 20, 3, key="nlp_train_epochs")
            rate = c2.select_slider(
                "Learning rate", [1e-5, 2e-5, 3e-5, 5e-5, 1e-4], value=5e-5, key="nlp_train_lr"
            )
            new_name = c3.text_input("Save as", value="my-sentiment-model", key="nlp_train_name")
            controls = training_buttons("nlp_train_run", train_key="nlp_train_go", stop_key="nlp_train_stop")
            if controls.start:
                for key in ("nlp_trained", "nlp_train_saved_anyway"):  # a new run has its own outcome
                    st.session_state.pop(key, None)
                with guard("training the model"):
                    if label_col not in train_frame.columns:
                        raise InvalidInputError(f"The file has no column '{label_col}'.")
                    texts = column_texts(train_frame, text_col)
                    _, report_training = progress_bar("Preparing")
                    st.session_state["nlp_trained"] = controls.call(
                        service.train,
                        texts,
                        train_frame[label_col].tolist(),
                        new_name,
                        config=TrainConfig(epochs=int(epochs), learning_rate=float(rate)),
                        data_name=train_upload.name,
                        progress=report_training,
                    )
                if "nlp_trained" in st.session_state:
                    st.rerun()  # so the model list above offers a saved model at once
    trained = st.session_state.get("nlp_trained")
    if trained:
        trained_view(service, trained)
    your_models(service, clear_caches=analyse_text.clear)
