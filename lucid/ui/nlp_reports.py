"""The HTML reports of the review-sentiment page: one analysed text, a scored batch, a trained model.

Built from the results and the figures the page already shows, so a report holds what the user saw.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from lucid.domains.nlp.results import BatchScores, TextAnalysis, WordDrivers
from lucid.ui.report import Report


def one_text_report(model: str, result: TextAnalysis, highlight: str, figure: go.Figure) -> str:
    """The report of one analysed text: its prediction and the words that drove it."""
    scale = "probability" if result.units == "probability" else "log-odds"
    report = Report("Review sentiment: one text", subtitle=f"Model: {model}")
    report.add(
        "Prediction",
        text=[
            f"Predicted class: {result.label}.",
            "Probabilities: " + ", ".join(f"{k} {v:.1%}" for k, v in result.probabilities.items()) + ".",
            result.truncation_notice(),
        ],
    )
    report.add(
        f"Words that drove the {scale} of '{result.explained_label}'",
        html_fragment=highlight,
        figure=figure,
        table=result.word_table(),
    )
    return report.to_html()


def batch_report(
    model: str,
    source: str,
    scores: BatchScores,
    histogram: go.Figure,
    drivers: tuple[WordDrivers, go.Figure] | None = None,
) -> str:
    """The report of a scored batch: the summary, the extremes and (when found) the driving words."""
    scored = scores.scored
    lowest, highest = scores.extremes(5)
    report = Report("Review sentiment: batch", subtitle=f"Model: {model}; data: {source}")
    report.add(
        "Summary",
        text=(
            f"{len(scored):,} texts scored, {scores.n_empty:,} empty rows not scored; "
            f"{(scored['label'] == scores.score_label).mean():.1%} labelled '{scores.score_label}'."
        ),
        figure=histogram,
    )
    report.add(f"Lowest P({scores.score_label})", table=lowest)
    report.add(f"Highest P({scores.score_label})", table=highest)
    if drivers is not None:
        found, figure = drivers
        report.add(
            "Words that drive the scores",
            text=f"Mean SHAP per word over {found.sample_size} sampled texts.",
            figure=figure,
            table=found.table,
        )
    return report.to_html()


def training_report(
    model: str, metrics: pd.DataFrame, per_class: pd.DataFrame, confusion: go.Figure, curve: go.Figure
) -> str:
    """The report of a trained model: its held-out metrics, per class, and the training loss."""
    report = Report("Review sentiment: trained model", subtitle=f"Model: {model}")
    report.add("Held-out test metrics", table=metrics)
    report.add("Per class", table=per_class, figure=confusion)
    report.add("Training loss", figure=curve)
    return report.to_html()
