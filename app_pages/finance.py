"""Credit risk: score applicants, explain each score, check the model, monitor drift, train your own."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from lucid.core.store import shared_service
from lucid.domains import DOMAINS
from lucid.domains.finance.bundle import CreditBundle
from lucid.domains.finance.monitoring import PSI_MIN_ROWS
from lucid.domains.finance.reasons import GRADES, N_REASONS, to_probability_units
from lucid.domains.finance.service import FinanceService, ScoreResult
from lucid.domains.finance.stats import calibration_table, ks_curve
from lucid.explain.explanation import mean_abs_importance
from lucid.ui import finance_plots, plots
from lucid.ui.finance_report import scored_downloads
from lucid.ui.finance_session import decided, digest, load_model, read_upload, scored_in_session
from lucid.ui.finance_train import train_tab
from lucid.ui.widgets import batch_export, downloads, guard, model_card, progress_bar

TABLE_PREVIEW = 1000


service = shared_service(FinanceService)  # one per process and model store, for every session

st.title("Credit risk")
st.caption(
    "Probability of default (PD) for loan applicants, with the reasons behind each score (exact TreeSHAP), "
    "the statistics risk teams use, drift monitoring and your own models."
)

top = st.columns([2, 2])
names = service.model_names()
name = top[0].selectbox("Model", names, key="finance_model")
threshold = top[1].slider(
    "Decision threshold: reject when PD is at or above",
    min_value=0.01,
    max_value=0.99,
    value=0.3,
    step=0.01,
    key="finance_threshold",
)

bundle: CreditBundle | None = None
with guard("loading the model"):
    bundle = load_model(service, name)
if bundle is None:
    st.stop()

tab_card, tab_score, tab_explain, tab_whatif, tab_monitor, tab_cost, tab_train = st.tabs(
    ["Model card", "Score", "Explain", "What-if", "Monitor", "Threshold & cost", "Train your own"]
)

# --- Model card ---------------------------------------------------------------------------------
with tab_card:
    model_card(service.card(bundle.name), expanded=True)
    held = service.holdout_metrics(bundle, threshold)
    cols = st.columns(5)
    cols[0].metric("ROC AUC", f"{held['auc']:.3f}")
    cols[1].metric("Gini", f"{held['gini']:.3f}")
    cols[2].metric("KS", f"{held['ks']:.3f}")
    cols[3].metric("Brier score", f"{held['brier']:.4f}")
    cols[4].metric("Baseline AUC (logistic)", f"{bundle.metadata['baseline']['auc']:.3f}")
    left, right = st.columns(2)
    left.plotly_chart(
        finance_plots.ks_plot(ks_curve(bundle.holdout_y, bundle.holdout_pd), title="KS plot (held-out)"),
        key="finance_ks_plot",
    )
    right.plotly_chart(
        finance_plots.calibration_plot(
            calibration_table(bundle.holdout_y, bundle.holdout_pd), title="Calibration (held-out deciles)"
        ),
        key="finance_calibration_plot",
    )
    st.plotly_chart(
        finance_plots.confusion_plot(held, title=f"Confusion matrix at threshold {threshold:.2f} (held-out)"),
        key="finance_confusion_plot",
    )
    st.caption(
        "Risk grades by PD: "
        + ", ".join(f"{g} < {b:.1%}" if b < 1 else f"{g} otherwise" for g, b in GRADES)
        + ". A is the safest."
    )

# --- Score --------------------------------------------------------------------------------------
scored: ScoreResult | None = None
with tab_score:
    source = st.radio(
        "Applicants", ["Demo applicants", "Upload a file"], horizontal=True, key="finance_source"
    )
    applicants: pd.DataFrame | None = None
    source_key = ""
    if source == "Demo applicants":
        applicants = bundle.demo_rows.drop(columns=[bundle.model.target], errors="ignore")
        source_key = "demo"
        st.caption(f"{len(applicants)} held-out applicants the model never trained on.")
    else:
        upload = st.file_uploader(
            "Applicants file (CSV, Excel or Parquet; extra columns are ignored, missing values allowed)",
            type=["csv", "tsv", "txt", "xlsx", "parquet"],
            key="finance_upload",
        )
        st.caption("Required columns: " + ", ".join(bundle.feature_names))
        if upload is not None:
            data = upload.getvalue()
            with guard("reading the file"):
                applicants = read_upload(data, upload.name)
                source_key = digest(data)
    if applicants is not None:
        with guard("scoring the applicants"), st.spinner("Scoring..."):
            scored = scored_in_session(service, bundle, applicants, source_key)
    if scored is not None:
        for message in scored.validation.messages():
            st.warning(message, icon=":material/info:")
        table = decided(scored, threshold)
        cols = st.columns(4)
        cols[0].metric("Applicants", f"{len(table):,}")
        cols[1].metric("Mean PD", f"{scored.pd.mean():.3f}")
        cols[2].metric("Approval rate", f"{(scored.pd < threshold).mean():.1%}")
        cols[3].metric("Rejected", f"{int((scored.pd >= threshold).sum()):,}")
        sort = st.checkbox("Highest PD first", key="finance_sort")
        shown = table.sort_values("pd", ascending=False) if sort else table
        if len(table) > TABLE_PREVIEW:
            st.caption(f"Showing {TABLE_PREVIEW:,} of {len(table):,} rows; the download holds them all.")
        if scored.reasons_rows < len(table):
            st.caption(
                f"Reasons are shown for the first {scored.reasons_rows:,} applicants; any applicant is "
                "explained on demand in the Explain tab, and the full export below adds reasons and SHAP "
                "values for every row."
            )
        st.dataframe(
            shown.head(TABLE_PREVIEW),
            hide_index=True,
            key="finance_table",
            column_config={
                "pd": st.column_config.ProgressColumn("PD", min_value=0.0, max_value=1.0, format="%.3f")
            },
        )
        st.plotly_chart(finance_plots.pd_histogram(scored.pd, threshold), key="finance_pd_hist")
        export = st.session_state.get("finance_export")
        if export is None and len(table) <= 20_000:
            with guard("computing the SHAP export"):
                export = service.export_full(bundle, scored)
                st.session_state["finance_export"] = export
        if export is None:
            if st.button("Compute reasons and SHAP for every applicant", key="finance_export_button"):
                _, report = progress_bar()
                with guard("computing the SHAP export"):
                    export = service.export_full(bundle, scored, progress=report)
                    st.session_state["finance_export"] = export
        download_table = table
        if export is not None:
            download_table = export.assign(decision=table["decision"].to_numpy())
            st.caption(
                "The CSV holds PD, grade, decision, four reasons and one SHAP column (log-odds) per feature."
            )
        global_now = st.session_state.get("finance_global")
        with guard("preparing the downloads"):
            scored_downloads(bundle, scored, threshold, service, download_table, global_now)
        with st.expander("Batch job: score and explain on this server or a cluster", icon=":material/dns:"):
            st.caption(
                "The same job as `lucid finance score --explain`: every applicant, in order, "
                "partition by partition; on a Dask cluster each worker loads the model once."
            )
            batch_export(
                "finance_batch",
                DOMAINS["finance"],
                applicants.reset_index(drop=True),
                model=bundle.name,
                options={"threshold": float(threshold)},
                explain_label="Add four reasons and the SHAP values of every applicant",
                file_name="scored_applicants_export.csv",
            )

# --- Explain ------------------------------------------------------------------------------------
with tab_explain:
    if scored is None:
        st.info("Score applicants first (the demo applicants work).")
    else:
        n = len(scored.frame)
        left, right = st.columns([1, 1])
        row = int(left.number_input("Applicant (row number)", 1, n, 1, key="finance_row")) - 1
        units = right.radio("Units", ["log-odds", "probability"], horizontal=True, key="finance_units")
        with guard("explaining the applicant"):
            one = service.explain(bundle, scored.frame.iloc[[row]])[0]
            st.metric(f"Applicant {row + 1}: PD", f"{scored.pd[row]:.3f}", help="probability of default")
            st.markdown("**Reasons**")
            for sentence in service.reasons(one)[0]:
                st.markdown(f"- {sentence}")
            if units == "probability":
                shown_expl = to_probability_units(one)
                axis = "probability of default (log-odds SHAP rescaled to add up to the PD)"
            else:
                shown_expl = one
                axis = "log-odds of default (exact TreeSHAP)"
            st.plotly_chart(plots.waterfall(shown_expl, units=axis), key="finance_waterfall")
        st.subheader("Across the batch")
        with guard("explaining the batch"):
            global_expl = st.session_state.get("finance_global")
            if global_expl is None:
                global_expl, _ = service.explain_sample(bundle, scored.frame)
                st.session_state["finance_global"] = global_expl
            st.caption(
                f"Exact TreeSHAP on {global_expl.values.shape[0]:,} applicants "
                f"({'all' if global_expl.values.shape[0] == n else 'a random sample'}); additivity checked "
                "(SHAP values + base = model log-odds within 1e-3)."
            )
            g1, g2 = st.columns(2)
            g1.plotly_chart(
                plots.importance_bar(global_expl, title="Global importance"), key="finance_importance"
            )
            g2.plotly_chart(plots.beeswarm(global_expl, title="Beeswarm"), key="finance_beeswarm")
            ranked = list(mean_abs_importance(global_expl).index)
            feature = st.selectbox("Dependence plot for", ranked, key="finance_dep_feature")
            st.plotly_chart(plots.dependence(global_expl, feature), key="finance_dependence")

# --- What-if ------------------------------------------------------------------------------------
with tab_whatif:
    if scored is None:
        st.info("Score applicants first (the demo applicants work).")
    else:
        row = int(st.session_state.get("finance_row", 1)) - 1
        row = min(max(row, 0), len(scored.frame) - 1)
        st.caption(
            f"Applicant {row + 1} (choose another in the Explain tab). Edit any value; missing is allowed."
        )
        original = scored.table.loc[[row], bundle.feature_names].reset_index(drop=True)
        config = {}
        for feat in bundle.model.features:
            if feat.is_categorical:
                original[feat.name] = original[feat.name].astype("object")
                config[feat.name] = st.column_config.SelectboxColumn(feat.name, options=list(feat.categories))
            else:
                original[feat.name] = pd.to_numeric(original[feat.name], errors="coerce").astype("float64")
                config[feat.name] = st.column_config.NumberColumn(feat.name)
        edited = st.data_editor(
            original,
            hide_index=True,
            num_rows="fixed",
            column_config=config,
            key=f"finance_whatif_editor_{row}",
        )
        with guard("re-scoring the edited applicant"):
            new_pd, new_expl = service.what_if(bundle, edited)
            cols = st.columns(3)
            cols[0].metric("PD before", f"{scored.pd[row]:.3f}")
            cols[1].metric(
                "PD after edits",
                f"{new_pd:.3f}",
                delta=f"{new_pd - scored.pd[row]:+.3f}",
                delta_color="inverse",
            )
            cols[2].metric("Decision after edits", "reject" if new_pd >= threshold else "approve")
            changed = [c for c in bundle.feature_names if str(edited.at[0, c]) != str(original.at[0, c])]
            if changed:
                st.caption("Changed: " + ", ".join(changed))
            for sentence in service.reasons(new_expl)[0]:
                st.markdown(f"- {sentence}")
            st.plotly_chart(
                plots.waterfall(new_expl, units="log-odds of default (exact TreeSHAP)"),
                key="finance_whatif_waterfall",
            )

# --- Monitor ------------------------------------------------------------------------------------
with tab_monitor:
    if scored is None:
        st.info("Score applicants first (the demo applicants work).")
    else:
        with guard("measuring stability"):
            psi, verdict = service.stability(bundle, scored)
            if psi["psi"].max() >= 0.25 and len(scored.frame) >= PSI_MIN_ROWS:
                st.error(verdict)
            elif psi["psi"].max() >= 0.1:
                st.warning(verdict)
            else:
                st.success(verdict)
            st.caption(
                "Population stability index (PSI) between the training data and this batch, on the training "
                "deciles (missing values have their own bin). Below 0.1 stable, 0.1-0.25 moderate, "
                "above 0.25 major."
            )
            st.plotly_chart(finance_plots.psi_plot(psi), key="finance_psi_plot")
            st.dataframe(psi, hide_index=True, key="finance_psi_table")
            downloads("finance_psi", table=psi, table_name="stability.csv")

# --- Threshold and cost -------------------------------------------------------------------------
with tab_cost:
    cols = st.columns(3)
    cost_fa = cols[0].number_input("Cost of approving a defaulter", 0.0, 1e9, 5.0, key="finance_cost_fa")
    cost_fr = cols[1].number_input("Cost of rejecting a good applicant", 0.0, 1e9, 1.0, key="finance_cost_fr")
    basis = cols[2].radio(
        "On",
        ["held-out test data (observed outcomes)", "scored batch (outcomes expected from PD)"],
        key="finance_cost_basis",
    )
    with guard("analysing thresholds"):
        use_batch = basis.startswith("scored") and scored is not None
        curve = service.threshold_analysis(
            bundle,
            cost_false_approval=cost_fa,
            cost_false_rejection=cost_fr,
            scored=scored if use_batch else None,
        )
        at = curve.iloc[int(np.abs(curve["threshold"].to_numpy() - threshold).argmin())]
        best = curve.iloc[int(curve["expected_loss_per_applicant"].to_numpy().argmin())]
        m = st.columns(4)
        m[0].metric("Approval rate", f"{at['approval_rate']:.1%}")
        bad_rate = at["bad_rate_approved"]
        m[1].metric("Bad rate among approved", "n/a" if pd.isna(bad_rate) else f"{bad_rate:.2%}")
        m[2].metric("Expected loss per applicant", f"{at['expected_loss_per_applicant']:.3f}")
        m[3].metric("Lowest-loss threshold", f"{best['threshold']:.2f}")
        st.plotly_chart(finance_plots.threshold_plot(curve, threshold), key="finance_threshold_plot")
        downloads("finance_thresholds", table=curve, table_name="thresholds.csv")

# --- Train your own -----------------------------------------------------------------------------
with tab_train:
    train_tab(service)

st.caption(
    f"Each applicant gets up to {N_REASONS} reasons; red pushes the PD up, blue pulls it down. "
    "Values in log-odds add up exactly to the model's output."
)
