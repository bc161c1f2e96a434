"""The Credit risk page's downloads: the HTML review report of a scored batch and the CSV, made at
once for small batches and on click for large ones."""

from __future__ import annotations

import pandas as pd
import shap
import streamlit as st

from lucid.core.data import to_safe_csv
from lucid.domains.finance.bundle import CreditBundle
from lucid.domains.finance.service import FinanceService, ScoreResult
from lucid.domains.finance.stats import calibration_table, ks_curve
from lucid.ui import finance_plots, plots
from lucid.ui.finance_session import decided
from lucid.ui.report import Report
from lucid.ui.widgets import downloads

DEFERRED_DOWNLOAD_ROWS = 5000


def report_html(
    bundle: CreditBundle,
    scored: ScoreResult,
    threshold: float,
    service: FinanceService,
    global_expl: shap.Explanation | None,
) -> str:
    """A self-contained HTML review: held-out quality, the scored batch, its drivers and its stability."""
    meta = bundle.metadata
    report = Report("Credit risk review", subtitle=f"Model: {meta.get('title', bundle.name)}")
    m = service.holdout_metrics(bundle, threshold)
    report.add(
        "Model quality on held-out data",
        text=[
            f"ROC AUC {m['auc']:.3f}, Gini {m['gini']:.3f}, KS {m['ks']:.3f}, Brier {m['brier']:.4f} on "
            f"{m['rows']:,} held-out applicants; logistic baseline AUC {meta['baseline']['auc']:.3f}.",
            f"Data: {meta.get('training_data', '')}. Source: {meta.get('source', '')}. "
            f"Licence: {meta.get('licence', '')}.",
        ],
        figure=[
            finance_plots.ks_plot(ks_curve(bundle.holdout_y, bundle.holdout_pd), title="KS"),
            finance_plots.calibration_plot(
                calibration_table(bundle.holdout_y, bundle.holdout_pd), title="Calibration"
            ),
        ],
    )
    table = decided(scored, threshold)
    approved = float((scored.pd < threshold).mean())
    report.add(
        "Scored applicants",
        text=f"{len(table):,} applicants, mean PD {scored.pd.mean():.3f}, approval rate {approved:.1%} at "
        f"threshold {threshold:.2f}. First 50 rows below; reasons are SHAP attributions in log-odds.",
        figure=finance_plots.pd_histogram(scored.pd, threshold),
        table=table.head(50),
    )
    if global_expl is not None:
        report.add(
            "What drives the scores", figure=[plots.importance_bar(global_expl), plots.beeswarm(global_expl)]
        )
    psi, verdict = service.stability(bundle, scored)
    report.add("Stability against the training data", text=verdict, table=psi)
    return report.to_html()


def scored_downloads(
    bundle: CreditBundle,
    scored: ScoreResult,
    threshold: float,
    service: FinanceService,
    table: pd.DataFrame,
    global_expl: shap.Explanation | None,
) -> None:
    """The CSV of ``table`` and the HTML report of the batch."""
    if len(table) <= DEFERRED_DOWNLOAD_ROWS:
        downloads(
            "finance_scored",
            table=table,
            table_name="scored_applicants.csv",
            report_html=report_html(bundle, scored, threshold, service, global_expl),
            report_name="credit_risk_report.html",
        )
        return
    # Large batches: the files are made when a button is clicked, not on every rerun.
    cols = st.columns(2)
    cols[0].download_button(
        "Download CSV",
        data=lambda: to_safe_csv(table),
        file_name="scored_applicants.csv",
        mime="text/csv",
        key="finance_scored_csv",
        icon=":material/download:",
    )
    cols[1].download_button(
        "Download HTML report",
        data=lambda: report_html(bundle, scored, threshold, service, global_expl).encode("utf-8"),
        file_name="credit_risk_report.html",
        mime="text/html",
        key="finance_scored_report",
        icon=":material/description:",
    )
