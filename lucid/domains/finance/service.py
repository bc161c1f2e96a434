"""Credit-risk scoring: probability of default, reason codes, exact TreeSHAP, monitoring, training.

The service behind the Credit risk page and ``lucid finance``. It trains gradient-boosted trees
(XGBoost, categorical columns kept as the user's own values) with a stratified 30% held-out test set
and early stopping on a validation split (:mod:`~lucid.domains.finance.training`), fits a logistic
baseline on the same split, saves a user's model only when its held-out AUC beats that baseline and
chance (:mod:`~lucid.domains.finance.gate`) or on the user's explicit choice, stores the model with
its held-out scores, and scores new applicants with a PD, a risk grade, a decision at a threshold
and plain-sentence reason codes built from exact TreeSHAP (XGBoost's own ``pred_contribs``), whose
additivity is checked.

Example:
    >>> service = FinanceService()
    >>> bundle = service.load("german_credit")  # built and saved on first use
    >>> result = service.score(bundle, applicants, threshold=0.3)
    >>> result.table[["pd", "grade", "decision", "reason_1"]].head()
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import shap

from lucid.core.data import read_table
from lucid.core.device import resolve_device, xgboost_device
from lucid.core.errors import InvalidInputError
from lucid.core.progress import Progress, ShouldStop, check_stop, scaled
from lucid.core.progress import report as notify
from lucid.core.store import ModelStore, validate_name
from lucid.domains.base import ModelCard, ModelService
from lucid.domains.finance.bundle import CreditBundle, read_bundle, save_bundle
from lucid.domains.finance.cards import credit_card
from lucid.domains.finance.data import ValidationReport, label_text, validate_applicants
from lucid.domains.finance.gate import CreditTraining, gate_of
from lucid.domains.finance.model import FINANCE_MODELS, RECIPE_VERSION, GBMRecipe
from lucid.domains.finance.monitoring import psi_table, psi_verdict
from lucid.domains.finance.reasons import N_REASONS, reason_columns, reason_sentences, risk_grade
from lucid.domains.finance.stats import risk_metrics, threshold_table
from lucid.domains.finance.training import TrainedCredit, train_credit_model
from lucid.explain.explanation import check_additivity, make_explanation, sigmoid

GLOBAL_SAMPLE = 1000
REASONS_ALL_UP_TO = 5000
REASON_PREVIEW_ROWS = 2000
#: Up to this many rows XGBoost's ``pred_contribs`` is called directly; above, the compiled tables.
DIRECT_SHAP_ROWS = 256


@dataclass
class ScoreResult:
    """Scores of a batch: the table users see and the typed inputs for explanations."""

    table: pd.DataFrame
    frame: pd.DataFrame
    pd: np.ndarray
    margin: np.ndarray
    validation: ValidationReport
    reasons_rows: int
    threshold: float


class FinanceService(ModelService[CreditBundle]):
    """Load, score, explain, monitor and train credit-risk models.

    The constructor is cheap; models are loaded (and the defaults built on first use) by
    :meth:`load` (see :class:`~lucid.domains.base.ModelService`). One instance may be shared by many
    page sessions: the XGBoost calls on shared models run under a lock of their own, so looking up a
    loaded model never waits for another session's scoring; building or reading a model runs outside
    it (one at a time per name), so a default being built for one session never stops the others.

    Example:
        >>> service = FinanceService()
        >>> bundle = service.load("give_me_some_credit", progress=print)
        >>> scored = service.score(bundle, table, threshold=0.2)
        >>> expl = service.explain(bundle, scored.frame.iloc[:1])
    """

    domain = "finance"
    registry = FINANCE_MODELS
    recipe_version = RECIPE_VERSION

    def __init__(self, store: ModelStore | None = None, device: str | None = None) -> None:
        super().__init__(store)
        self._device = device
        self._predict_lock = threading.RLock()

    # -- models ------------------------------------------------------------------------------

    @property
    def device(self) -> str:
        if self._device is None:
            self._device = xgboost_device(resolve_device())
        return self._device

    def card(self, name: str) -> ModelCard:
        """The model card of ``name`` (held-out metrics, data, licence), from its stored metadata."""
        return credit_card(name, self.stored(name).metadata)

    def _build_default(self, name: str, *, progress: Progress, should_stop: ShouldStop) -> None:
        """Train a registered default model on its packaged data and save it under its name."""
        spec = self.registry.get(name)
        notify(progress, 0.0, f"reading {spec.title}")
        table = spec.build()
        trained = train_credit_model(
            table,
            spec.extra["target"],
            positive_label=spec.extra["positive_label"],
            device=self.device,
            progress=progress,
            should_stop=should_stop,
        )
        meta = {
            "title": spec.title,
            "source": spec.source,
            "licence": spec.licence,
            "training_data": spec.data,
            "description": spec.description,
        }
        self._save(name, trained, meta)

    def _read(self, name: str, *, progress: Progress = None) -> CreditBundle:
        stored = self.store.load(self.domain, name)
        return read_bundle(stored, device=self.device, is_default=self.is_default(name), progress=progress)

    def _save(self, name: str, trained: TrainedCredit, meta: dict[str, Any]) -> CreditBundle:
        bundle = save_bundle(self.store, name, trained, meta, is_default=self.is_default(name))
        self.remember(bundle.name, bundle)
        return bundle

    def train(
        self,
        df: pd.DataFrame,
        target: str,
        name: str,
        *,
        features: Sequence[str] | None = None,
        positive_label: str | None = None,
        recipe: GBMRecipe | None = None,
        progress: Progress = None,
        should_stop: ShouldStop = None,
        save_anyway: bool = False,
    ) -> CreditTraining:
        """Train on a user's labelled table, measure it against the logistic baseline on the held-out
        30% (:func:`~lucid.domains.finance.gate.credit_quality_gate`) and save it under ``name`` when
        it passes, or with ``save_anyway``; otherwise it comes back unsaved for :meth:`save_trained`.

        Raises:
            InvalidInputError: invalid name, a name taken by a default model, or bad data.
            TrainingCancelled: ``should_stop`` returned true (nothing is saved).
        """
        name = self._new_name(name)
        trained = train_credit_model(
            df,
            target,
            features=features,
            positive_label=positive_label,
            recipe=recipe,
            device=self.device,
            progress=scaled(progress, 0.0, 0.95),
            should_stop=should_stop,
        )
        check_stop(should_stop)
        notify(progress, 0.96, "comparing with the baseline on the held-out rows")
        gate = gate_of(trained)
        result = CreditTraining(name, trained, gate)
        if gate.passed or save_anyway:
            result = self.save_trained(result)
        notify(progress, 1.0, f"{'saved' if result.saved else 'not saved'}: {gate.metric} {gate.model:.3f}")
        return result

    def save_trained(self, result: CreditTraining) -> CreditTraining:
        """Save a trained model (one that did not pass the gate: on the user's explicit choice)."""
        if result.bundle is not None:
            return result
        name = self._new_name(result.name)
        bundle = self._save(name, result.trained, result.metadata(name))
        return dataclasses.replace(result, name=name, bundle=bundle)

    def _new_name(self, name: str) -> str:
        name = validate_name(name)
        if self.is_default(name):
            raise InvalidInputError(f"'{name}' is the name of a built-in model; choose another name.")
        return name

    # -- scoring ---------------------------------------------------------------------------

    def read_applicants(
        self, data: bytes, filename: str | None = None, *, max_rows: int | None = None
    ) -> pd.DataFrame:
        """Parse an uploaded applicants file (CSV with any delimiter/encoding, Excel, Parquet)."""
        return read_table(data, filename, max_rows=max_rows)

    def margins(self, bundle: CreditBundle, frame: pd.DataFrame) -> np.ndarray:
        with self._predict_lock:
            return bundle.model.margin(frame)

    def score(
        self,
        bundle: CreditBundle,
        df: pd.DataFrame,
        *,
        threshold: float = 0.5,
        reasons_rows: int | None = None,
    ) -> ScoreResult:
        """PD, grade, decision and reason codes for each applicant.

        Reasons need exact SHAP per row; for large batches they are computed for the first
        ``reasons_rows`` rows (default: all rows up to 5,000, else the first 2,000) and the full
        export (:meth:`export_full`) gives them for every row.
        """
        if not 0.0 < threshold < 1.0:
            raise InvalidInputError("The threshold must be between 0 and 1.")
        frame, report = validate_applicants(df, bundle.model)
        margin = self.margins(bundle, frame)
        pd_values = sigmoid(margin)
        table = pd.DataFrame(
            {
                "pd": pd_values,
                "grade": risk_grade(pd_values),
                "decision": np.where(pd_values >= threshold, "reject", "approve"),
            },
            index=frame.index,
        )
        if reasons_rows is None:
            reasons_rows = len(frame) if len(frame) <= REASONS_ALL_UP_TO else REASON_PREVIEW_ROWS
        reasons_rows = min(reasons_rows, len(frame))
        reason_cols = [[""] * len(frame) for _ in range(N_REASONS)]
        if reasons_rows:
            expl = self.explain(bundle, frame.iloc[:reasons_rows], outputs=margin[:reasons_rows])
            for k, column in enumerate(reason_columns(expl.values, expl.data, bundle.feature_names)):
                reason_cols[k][:reasons_rows] = column
        for k in range(N_REASONS):
            table[f"reason_{k + 1}"] = reason_cols[k]
        original = df.rename(columns=lambda c: str(c).strip())
        table = pd.concat(
            [table, original.loc[:, [c for c in original.columns if c in bundle.feature_names]]], axis=1
        )
        return ScoreResult(
            table.reset_index(drop=True),
            frame.reset_index(drop=True),
            pd_values,
            margin,
            report,
            reasons_rows,
            threshold,
        )

    def evaluate(
        self, bundle: CreditBundle, df: pd.DataFrame, target: str | None = None, *, threshold: float = 0.5
    ) -> dict[str, float]:
        """The risk metrics of a model on a labelled table (target column as in training)."""
        target = target or bundle.model.target
        if target not in df.columns:
            raise InvalidInputError(f"The target column '{target}' is not in the file.")
        labelled = df[df[target].notna()]
        labels = labelled[target].map(label_text)
        known = {bundle.model.positive_label, bundle.model.negative_label}
        unknown = sorted(set(labels) - known)
        if unknown:
            raise InvalidInputError(
                f"The target '{target}' has values the model does not know: {', '.join(unknown[:6])}; "
                f"expected {bundle.model.positive_label} (default) and {bundle.model.negative_label}."
            )
        y = (labels == bundle.model.positive_label).to_numpy(dtype=np.int64)
        frame, _ = validate_applicants(labelled, bundle.model)
        return risk_metrics(y, sigmoid(self.margins(bundle, frame)), threshold)

    # -- explanations ------------------------------------------------------------------------

    def explain(
        self, bundle: CreditBundle, frame: pd.DataFrame, *, outputs: np.ndarray | None = None
    ) -> shap.Explanation:
        """Exact TreeSHAP (log-odds of default) for the rows of a typed frame, additivity checked."""
        if len(frame) == 0:
            raise InvalidInputError("There are no applicants to explain.")
        with self._predict_lock:
            if bundle.explainer is not None and len(frame) > DIRECT_SHAP_ROWS:
                values, base = bundle.explainer.shap_values(frame)
            else:
                values, base = bundle.model.contributions(frame)
            if outputs is None:
                outputs = bundle.model.margin(frame)
        expl = make_explanation(
            values,
            base,
            frame.to_numpy(dtype=object),
            feature_names=bundle.feature_names,
            output_names="log-odds of default",
        )
        # float32 storage: allow a little more than the float64 TreeSHAP error.
        check_additivity(expl, outputs, atol=1e-3)
        return expl

    def explain_sample(
        self, bundle: CreditBundle, frame: pd.DataFrame, n: int = GLOBAL_SAMPLE, seed: int = 0
    ) -> tuple[shap.Explanation, np.ndarray]:
        """Exact SHAP for a random sample of at most ``n`` rows, for the global views."""
        idx = np.arange(len(frame))
        if len(frame) > n:
            idx = np.sort(np.random.default_rng(seed).choice(idx, size=n, replace=False))
        return self.explain(bundle, frame.iloc[idx]), idx

    def reasons(self, explanation: shap.Explanation, k: int = N_REASONS) -> list[list[str]]:
        """Reason sentences for every row of an explanation."""
        values = np.asarray(explanation.values)
        data = explanation.data
        names = explanation.feature_names
        if values.ndim == 1:
            return [reason_sentences(values, data, names, k)]
        return [reason_sentences(values[i], data[i], names, k) for i in range(values.shape[0])]

    def what_if(self, bundle: CreditBundle, row: pd.DataFrame) -> tuple[float, shap.Explanation]:
        """PD and explanation of one edited applicant (a one-row table with the model's columns)."""
        if len(row) != 1:
            raise InvalidInputError("What-if works on exactly one applicant.")
        frame, _ = validate_applicants(row, bundle.model)
        expl = self.explain(bundle, frame)
        return float(sigmoid(expl.base_values[0] + expl.values[0].sum())), expl[0]

    def export_full(
        self,
        bundle: CreditBundle,
        scored: ScoreResult,
        *,
        chunk: int = 5000,
        progress: Progress = None,
        should_stop: ShouldStop = None,
    ) -> pd.DataFrame:
        """Every row with PD, grade, decision, all four reasons and one SHAP column per feature."""
        n = len(scored.frame)
        shap_values = np.zeros((n, len(bundle.feature_names)), dtype=np.float32)
        table = scored.table.copy()
        reasons: list[list[str]] = [[] for _ in range(N_REASONS)]
        for start in range(0, n, chunk):
            check_stop(should_stop, "The export was stopped; nothing was written.")
            stop = min(start + chunk, n)
            expl = self.explain(bundle, scored.frame.iloc[start:stop], outputs=scored.margin[start:stop])
            shap_values[start:stop] = expl.values
            for k, column in enumerate(reason_columns(expl.values, expl.data, bundle.feature_names)):
                reasons[k].extend(column)
            notify(progress, stop / n, f"{stop:,} of {n:,} applicants explained")
        for k, column in enumerate(reasons):
            if column:
                table[f"reason_{k + 1}"] = column
        shap_frame = pd.DataFrame(shap_values, columns=[f"shap_{c}" for c in bundle.feature_names])
        return pd.concat([table, shap_frame], axis=1)

    # -- monitoring and decisions ----------------------------------------------------------

    def stability(self, bundle: CreditBundle, scored: ScoreResult) -> tuple[pd.DataFrame, str]:
        """PSI per feature and for the score between the training data and a scored batch."""
        table = psi_table(bundle.reference, scored.frame, scored.pd)
        return table, psi_verdict(table, len(scored.frame))

    def threshold_analysis(
        self,
        bundle: CreditBundle,
        *,
        cost_false_approval: float,
        cost_false_rejection: float,
        scored: ScoreResult | None = None,
    ) -> pd.DataFrame:
        """Approval rate, bad rate among approved and expected loss against the threshold.

        On the model's held-out labelled rows, or on a scored batch (outcomes expected from PD).
        """
        if scored is None:
            return threshold_table(
                bundle.holdout_pd,
                bundle.holdout_y,
                cost_false_approval=cost_false_approval,
                cost_false_rejection=cost_false_rejection,
            )
        return threshold_table(
            scored.pd,
            None,
            cost_false_approval=cost_false_approval,
            cost_false_rejection=cost_false_rejection,
        )

    def holdout_metrics(self, bundle: CreditBundle, threshold: float) -> dict[str, float]:
        """The held-out metrics at a chosen threshold (confusion matrix moves with it)."""
        return risk_metrics(bundle.holdout_y, bundle.holdout_pd, threshold)
