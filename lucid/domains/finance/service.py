"""Credit-risk scoring: probability of default, reason codes, exact TreeSHAP, monitoring, training.

The service behind the Credit risk page and ``lucid finance``. It trains
gradient-boosted trees (XGBoost, categorical columns kept as the user's own values) with a
stratified 30% held-out test set and early stopping on a validation split, fits a logistic
baseline on the same split, stores both the model and its held-out scores, and scores new
applicants with a PD, a risk grade, a decision at a threshold and plain-sentence reason codes
built from exact TreeSHAP (XGBoost's own ``pred_contribs``), whose additivity is checked.

Example:
    >>> service = FinanceService()
    >>> bundle = service.load("german_credit")  # built and saved on first use
    >>> result = service.score(bundle, applicants, threshold=0.3)
    >>> result.table[["pd", "grade", "decision", "reason_1"]].head()
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shap
import xgboost as xgb
from safetensors.numpy import load_file, save_file
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from lucid.core.data import read_table
from lucid.core.device import resolve_device, xgboost_device
from lucid.core.errors import InvalidInputError, ModelNotFoundError, TrainingCancelled, TrainingError
from lucid.core.store import ModelStore, data_hash, validate_name
from lucid.domains.finance.model import (
    CATEGORICAL,
    FINANCE_MODELS,
    NUMERIC,
    RECIPE_VERSION,
    CreditModel,
    FeatureSchema,
    GBMRecipe,
    fit_booster,
)
from lucid.domains.finance.stats import (
    category_shares,
    numeric_bins,
    numeric_shares,
    psi_band,
    psi_from_shares,
    risk_metrics,
    threshold_table,
)
from lucid.domains.finance.treeshap import CompiledTreeShap
from lucid.explain.explanation import check_additivity, make_explanation, sigmoid

DOMAIN = "finance"
TEST_SIZE = 0.3
VALID_SIZE = 0.15
SPLIT_SEED = 42
N_REASONS = 4
GLOBAL_SAMPLE = 1000
DEMO_ROWS = 200
REASONS_ALL_UP_TO = 5000
REASON_PREVIEW_ROWS = 2000
MAX_CATEGORIES = 100
#: Below this many rows a PSI verdict carries a small-sample caveat.
PSI_MIN_ROWS = 500
NUMERIC_SHARE = 0.9
#: Upper PD bound of each risk grade (A is the safest).
GRADES: tuple[tuple[str, float], ...] = (
    ("A", 0.025),
    ("B", 0.05),
    ("C", 0.10),
    ("D", 0.20),
    ("E", 0.40),
    ("F", 1.0),
)
POSITIVE_WORDS = ("bad", "default", "defaulted", "yes", "true", "1", "y", "delinquent", "charged off")
HOLDOUT_FILE = "holdout.safetensors"
REFERENCE_FILE = "reference.json"
DEMO_FILE = "demo_rows.csv"
TREESHAP_FILE = "treeshap.safetensors"
#: Up to this many rows XGBoost's ``pred_contribs`` is called directly; above, the compiled tables.
DIRECT_SHAP_ROWS = 256

log = logging.getLogger("lucid.finance")
Progress = Callable[[float, str], None] | None
ShouldStop = Callable[[], bool] | None


# ----------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------


@dataclass
class ValidationReport:
    """What was found when an upload was matched against a model's features."""

    rows: int
    extra_columns: list[str] = field(default_factory=list)
    coerced: dict[str, int] = field(default_factory=dict)
    unknown_categories: dict[str, int] = field(default_factory=dict)
    all_missing: list[str] = field(default_factory=list)
    missing_values: int = 0

    def messages(self) -> list[str]:
        """Plain sentences for the user, one per finding."""
        out = []
        if self.extra_columns:
            out.append(
                f"{len(self.extra_columns)} column(s) the model does not use were ignored: "
                + ", ".join(self.extra_columns[:20])
                + (" ..." if len(self.extra_columns) > 20 else "")
                + "."
            )
        for col, n in self.coerced.items():
            out.append(f"'{col}': {n:,} value(s) could not be read as numbers and were treated as missing.")
        for col, n in self.unknown_categories.items():
            out.append(f"'{col}': {n:,} value(s) were not seen in training and were treated as missing.")
        for col in self.all_missing:
            out.append(f"'{col}' is missing for every applicant; the model falls back to its default path.")
        return out


@dataclass
class CreditBundle:
    """A loaded model with everything the page and CLI need about it."""

    name: str
    model: CreditModel
    metadata: dict[str, Any]
    holdout_y: np.ndarray
    holdout_pd: np.ndarray
    reference: dict[str, Any]
    demo_rows: pd.DataFrame
    is_default: bool = False
    explainer: CompiledTreeShap | None = None

    @property
    def feature_names(self) -> list[str]:
        return self.model.feature_names


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


@dataclass
class TrainedCredit:
    """A freshly trained model with its held-out evaluation, before it is saved."""

    model: CreditModel
    metrics: dict[str, float]
    baseline: dict[str, float]
    holdout_y: np.ndarray
    holdout_pd: np.ndarray
    reference: dict[str, Any]
    demo_rows: pd.DataFrame
    facts: dict[str, Any]
    explainer: CompiledTreeShap | None = None


# ----------------------------------------------------------------------------------------------
# Target and feature preparation
# ----------------------------------------------------------------------------------------------


def _label_text(value: object) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def prepare_target(series: pd.Series, positive_label: str | None = None) -> tuple[np.ndarray, str, str]:
    """Turn a binary target column into 0/1 with 1 = default.

    Args:
        series: the target column (rows with a missing target must be dropped before).
        positive_label: which value means default; guessed when ``None`` (1, "bad", "default",
            "yes", ... else the rarer value).

    Returns:
        The 0/1 array, the positive label and the negative label (as text).

    Raises:
        InvalidInputError: the column has one value only, or more than two values.
    """
    labels = series.map(_label_text)
    values = sorted(labels.unique().tolist())
    name = series.name
    if len(values) < 2:
        raise InvalidInputError(
            f"The target '{name}' has only one value ({values[0] if values else 'none'}); "
            "training needs both defaults and non-defaults."
        )
    if len(values) > 2:
        shown = ", ".join(values[:6]) + (" ..." if len(values) > 6 else "")
        raise InvalidInputError(
            f"The target '{name}' has {len(values)} different values ({shown}); it must be binary "
            "(default / no default)."
        )
    if positive_label is not None:
        positive = _label_text(positive_label)
        if positive not in values:
            raise InvalidInputError(
                f"'{positive_label}' is not a value of '{name}'; its values are {', '.join(values)}."
            )
    else:
        lowered = {v.lower(): v for v in values}
        hit = next((lowered[w] for w in POSITIVE_WORDS if w in lowered), None)
        counts = labels.value_counts()
        positive = hit if hit is not None else str(counts.idxmin())
    negative = next(v for v in values if v != positive)
    return (labels == positive).to_numpy(dtype=np.int64), positive, negative


def _check_unique_columns(df: pd.DataFrame) -> None:
    names = [str(c).strip() for c in df.columns]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InvalidInputError(f"Column names appear more than once: {', '.join(dup)}. Rename them.")


def _as_numeric(col: pd.Series) -> tuple[pd.Series, int]:
    """The column as floats and how many present values could not be read as numbers."""
    if pd.api.types.is_bool_dtype(col):
        return col.astype("float64"), 0
    if pd.api.types.is_numeric_dtype(col):
        return col.astype("float64"), 0
    text = col.astype("string").str.strip().str.replace(",", "", regex=False)
    present = col.notna() & (text != "")
    numbers = pd.to_numeric(text.where(present), errors="coerce").astype("float64")
    return numbers, int((present & numbers.isna()).sum())


def infer_features(
    df: pd.DataFrame, target: str, features: Sequence[str] | None = None
) -> list[FeatureSchema]:
    """Decide, per chosen column, whether it is numeric or categorical, and list the categories.

    A column is numeric when at least 90% of its present values read as numbers (the rest are
    counted and treated as missing); otherwise it is categorical.

    Raises:
        InvalidInputError: a chosen column does not exist, is the target, is entirely missing, or
            has so many distinct text values that it looks like an identifier.
    """
    _check_unique_columns(df)
    chosen = [c for c in df.columns if c != target] if not features else list(features)
    if not chosen:
        raise InvalidInputError("Choose at least one feature column.")
    unknown = [c for c in chosen if c not in df.columns]
    if unknown:
        raise InvalidInputError(f"These feature columns are not in the file: {', '.join(map(str, unknown))}.")
    if target in chosen:
        raise InvalidInputError(f"The target '{target}' cannot also be a feature.")
    empty = [c for c in chosen if df[c].isna().all()]
    if empty:
        raise InvalidInputError(
            f"These columns are missing for every row and cannot be learned from: {', '.join(empty)}. "
            "Leave them out."
        )
    schema = []
    too_many = []
    for name in chosen:
        col = df[name]
        numbers, bad = _as_numeric(col)
        present = int(col.notna().sum())
        if present and (present - bad) / present >= NUMERIC_SHARE:
            schema.append(FeatureSchema(str(name), NUMERIC))
            continue
        cats = col.dropna().astype(str).str.strip()
        counts = cats.value_counts()
        if len(counts) > MAX_CATEGORIES:
            too_many.append(f"{name} ({len(counts):,} values)")
            continue
        schema.append(FeatureSchema(str(name), CATEGORICAL, tuple(sorted(counts.index.tolist()))))
    if too_many:
        raise InvalidInputError(
            "These text columns have too many distinct values to be categories (they look like "
            f"identifiers or free text): {', '.join(too_many)}. Leave them out."
        )
    return schema


def validate_applicants(df: pd.DataFrame, model: CreditModel) -> tuple[pd.DataFrame, ValidationReport]:
    """Match an upload to the model's features and coerce it.

    Missing required columns are refused (named in the message); extra columns are listed and
    ignored; values that cannot be read as numbers, and categories never seen in training, are
    counted per column and treated as missing (which the trees handle).

    Returns:
        The model's typed input frame and the report.
    """
    _check_unique_columns(df)
    df = df.rename(columns=lambda c: str(c).strip())
    missing = [f for f in model.feature_names if f not in df.columns]
    if missing:
        raise InvalidInputError(
            f"The file lacks {len(missing)} column(s) the model needs: {', '.join(missing)}. "
            f"Required columns: {', '.join(model.feature_names)}."
        )
    report = ValidationReport(rows=len(df))
    report.extra_columns = [str(c) for c in df.columns if c not in model.feature_names and c != model.target]
    cleaned = {}
    for feat in model.features:
        col = df[feat.name]
        if feat.is_categorical:
            text = col.astype("string").str.strip()
            text = text.where(text != "")
            unseen = int((text.notna() & ~text.isin(list(feat.categories))).sum())
            if unseen:
                report.unknown_categories[feat.name] = unseen
            cleaned[feat.name] = text
        else:
            numbers, bad = _as_numeric(col)
            if bad:
                report.coerced[feat.name] = bad
            cleaned[feat.name] = numbers
    frame = model.frame(pd.DataFrame(cleaned, index=df.index))
    report.all_missing = [c for c in frame.columns if frame[c].isna().all()]
    report.missing_values = int(frame.isna().sum().sum())
    return frame, report


# ----------------------------------------------------------------------------------------------
# Grades, reasons and units
# ----------------------------------------------------------------------------------------------


def risk_grade(pd_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Risk grade A (safest) to F per PD, by the fixed bands in :data:`GRADES`."""
    edges = np.array([b for _, b in GRADES[:-1]])
    letters = np.array([g for g, _ in GRADES])
    return letters[np.searchsorted(edges, np.asarray(pd_values, dtype=np.float64), side="right")]


def _value_text(value: object) -> str:
    if value is None or value is pd.NA:
        return "missing"
    if isinstance(value, (float, np.floating)):
        number = float(value)
        if np.isnan(number):
            return "missing"
        # Whole numbers and large amounts in full (no exponent), small ones to 4 significant digits.
        return f"{number:,.0f}" if number.is_integer() or abs(number) >= 1000 else f"{number:.4g}"
    return f"'{value}'"


def _size_word(value: float) -> str:
    size = abs(value)
    if size >= 0.5:
        return "strongly"
    if size >= 0.15:
        return "moderately"
    return "slightly"


def _reason_text(name: str, value: object, contribution: float) -> str:
    verb = "raises" if contribution > 0 else "lowers"
    return (
        f"{name} is {_value_text(value)}, which {verb} the risk of default "
        f"{_size_word(contribution)} ({contribution:+.2f} log-odds)."
    )


def reason_sentences(
    values: np.ndarray, data: Sequence[object], names: Sequence[str], k: int = N_REASONS
) -> list[str]:
    """The ``k`` strongest SHAP contributions of one applicant as plain sentences, strongest first.

    Each names the feature, the applicant's value, the direction and the size in log-odds.
    """
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    order = np.argsort(-np.abs(values), kind="stable")[:k]
    return [_reason_text(names[j], data[j], float(values[j])) for j in order]


def reason_columns(
    values: np.ndarray, data: np.ndarray, names: Sequence[str], k: int = N_REASONS
) -> list[list[str]]:
    """Reason sentences for many rows at once: ``k`` lists (reason 1, reason 2, ...) of one text per row."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(-np.abs(values), axis=1, kind="stable")[:, :k]
    rows = np.arange(len(values))
    columns = []
    for rank in range(min(k, values.shape[1])):
        j = order[:, rank]
        picked, contrib = data[rows, j], values[rows, j]
        columns.append([_reason_text(names[f], v, c) for f, v, c in zip(j, picked, contrib, strict=True)])
    return columns


def to_probability_units(explanation: shap.Explanation) -> shap.Explanation:
    """One applicant's log-odds SHAP values rescaled to probability points.

    The contributions keep their log-odds proportions and are scaled so that they add up to
    PD - base PD exactly (the logistic link is not additive, so this is a presentation, labelled
    as such on the page).
    """
    values = np.asarray(explanation.values, dtype=np.float64).reshape(-1)
    base = float(np.asarray(explanation.base_values, dtype=np.float64).reshape(-1)[0])
    total = values.sum()
    p_base, p_out = float(sigmoid(base)), float(sigmoid(base + total))
    factor = (p_out - p_base) / total if abs(total) > 1e-12 else p_base * (1 - p_base)
    return make_explanation(
        values * factor,
        p_base,
        np.asarray(explanation.data, dtype=object) if explanation.data is not None else None,
        feature_names=explanation.feature_names,
    )


# ----------------------------------------------------------------------------------------------
# Reference distributions (for PSI) and files
# ----------------------------------------------------------------------------------------------


def build_reference(model: CreditModel, frame: pd.DataFrame, pd_values: np.ndarray) -> dict[str, Any]:
    """Bins and shares of every feature and of the score on the training data."""
    features = {}
    for feat in model.features:
        col = frame[feat.name]
        if feat.is_categorical:
            values = col.astype(object).where(col.notna(), None).tolist()
            features[feat.name] = {
                "kind": CATEGORICAL,
                "categories": list(feat.categories),
                "shares": category_shares(values, feat.categories),
            }
        else:
            edges = numeric_bins(col.to_numpy(dtype=np.float64, na_value=np.nan))
            features[feat.name] = {
                "kind": NUMERIC,
                "edges": edges,
                "shares": numeric_shares(col.to_numpy(dtype=np.float64, na_value=np.nan), edges),
            }
    score_edges = numeric_bins(pd_values)
    return {
        "features": features,
        "score": {"edges": score_edges, "shares": numeric_shares(pd_values, score_edges)},
        "rows": int(len(frame)),
    }


def psi_table(reference: dict[str, Any], frame: pd.DataFrame, pd_values: np.ndarray) -> pd.DataFrame:
    """PSI of the score and of every feature between the training data and ``frame``, worst first."""
    rows = []
    score = reference["score"]
    value = psi_from_shares(score["shares"], numeric_shares(pd_values, score["edges"]))
    rows.append({"variable": "score (PD)", "psi": value, "band": psi_band(value)})
    for name, ref in reference["features"].items():
        col = frame[name]
        if ref["kind"] == CATEGORICAL:
            values = col.astype(object).where(col.notna(), None).tolist()
            shares = category_shares(values, ref["categories"])
        else:
            shares = numeric_shares(col.to_numpy(dtype=np.float64, na_value=np.nan), ref["edges"])
        value = psi_from_shares(ref["shares"], shares)
        rows.append({"variable": name, "psi": value, "band": psi_band(value)})
    table = pd.DataFrame(rows)
    head, rest = table.iloc[:1], table.iloc[1:].sort_values("psi", ascending=False)
    return pd.concat([head, rest], ignore_index=True)


def psi_verdict(table: pd.DataFrame, rows: int | None = None) -> str:
    """One plain sentence about the batch's stability."""
    score = table.iloc[0]
    shifted = table.iloc[1:][table.iloc[1:]["psi"] >= 0.25]["variable"].tolist()
    moderate = table.iloc[1:][(table.iloc[1:]["psi"] >= 0.1) & (table.iloc[1:]["psi"] < 0.25)][
        "variable"
    ].tolist()
    if score["psi"] >= 0.25 or shifted:
        lead = "Major shift: this batch does not look like the training data"
    elif score["psi"] >= 0.1 or moderate:
        lead = "Moderate shift: watch this batch"
    else:
        lead = "Stable: this batch looks like the training data"
    detail = f" (score PSI {score['psi']:.3f}"
    if shifted:
        detail += f"; major shift in {', '.join(shifted[:5])}"
    if moderate:
        detail += f"; moderate shift in {', '.join(moderate[:5])}"
    verdict = lead + detail + ")."
    if rows is not None and rows < PSI_MIN_ROWS:
        verdict += (
            f" With only {rows:,} applicants the PSI is noisy (small samples look shifted); "
            f"judge drift on {PSI_MIN_ROWS:,} or more."
        )
    return verdict


def _write_bundle_files(folder: Path, trained: TrainedCredit) -> None:
    trained.model.save(folder)
    save_file(
        {"y": trained.holdout_y.astype(np.int8), "pd": trained.holdout_pd.astype(np.float32)},
        str(folder / HOLDOUT_FILE),
    )
    (folder / REFERENCE_FILE).write_text(json.dumps(trained.reference))
    trained.demo_rows.to_csv(folder / DEMO_FILE, index=False)
    if trained.explainer is not None:
        save_file(trained.explainer.to_tensors(), str(folder / TREESHAP_FILE))


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------


def _baseline(
    train: pd.DataFrame, y_train: np.ndarray, test: pd.DataFrame, y_test: np.ndarray, model: CreditModel
) -> dict[str, float]:
    """Logistic regression (imputed, scaled, one-hot) fitted on the same training rows."""
    numeric = [f.name for f in model.features if not f.is_categorical]
    categorical = [f.name for f in model.features if f.is_categorical]
    parts = []
    if numeric:
        parts.append(("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric))
    if categorical:
        parts.append(
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="missing"),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                categorical,
            )
        )

    def as_input(frame: pd.DataFrame) -> pd.DataFrame:
        out = frame.copy()
        for c in categorical:
            out[c] = out[c].astype(object).where(out[c].notna(), np.nan)
        for c in numeric:
            out[c] = out[c].astype("float64").clip(-1e12, 1e12)
        return out

    pipe = make_pipeline(ColumnTransformer(parts), LogisticRegression(max_iter=2000))
    pipe.fit(as_input(train), y_train)
    p = pipe.predict_proba(as_input(test))[:, 1]
    auc = float(roc_auc_score(y_test, p))
    return {"auc": auc, "gini": 2 * auc - 1, "model": "logistic regression (median-imputed, scaled, one-hot)"}


def train_credit_model(
    df: pd.DataFrame,
    target: str,
    *,
    features: Sequence[str] | None = None,
    positive_label: str | None = None,
    recipe: GBMRecipe | None = None,
    threshold: float = 0.5,
    device: str | None = None,
    progress: Progress = None,
    should_stop: ShouldStop = None,
) -> TrainedCredit:
    """Train gradient-boosted trees and a logistic baseline, and evaluate both on held-out rows.

    The split is 70/30, stratified, fixed seed; early stopping uses 15% of the training part.
    The same function builds the default models and the models users train on their own data.

    Raises:
        InvalidInputError: bad target or feature columns (see :func:`prepare_target`).
        TrainingError: too few rows of either class to split.
        TrainingCancelled: ``should_stop`` returned true.
    """
    started = time.perf_counter()
    report = progress or (lambda _f, _m: None)
    recipe = recipe or GBMRecipe()
    _check_unique_columns(df)
    if target not in df.columns:
        raise InvalidInputError(
            f"The target column '{target}' is not in the file. Columns: {', '.join(map(str, df.columns))}."
        )
    labelled = df[df[target].notna() & (df[target].astype("string").str.strip() != "")]
    dropped = len(df) - len(labelled)
    if len(labelled) == 0:
        raise InvalidInputError(f"The target '{target}' is missing in every row.")
    y, positive, negative = prepare_target(labelled[target], positive_label)
    minority = int(min(y.sum(), len(y) - y.sum()))
    if minority < 10:
        raise TrainingError(
            f"Only {minority} row(s) have the rarer outcome; "
            "at least 10 of each are needed to train and test."
        )
    schema = infer_features(labelled, target, features)
    report(0.02, f"{len(labelled):,} labelled rows, {len(schema)} features")
    skeleton = CreditModel(xgb.Booster(), schema, str(target), positive, negative, 0, {})
    frame, _ = validate_applicants(labelled, skeleton)
    frame = frame.reset_index(drop=True)
    idx = np.arange(len(frame))
    train_idx, test_idx = train_test_split(idx, test_size=TEST_SIZE, stratify=y, random_state=SPLIT_SEED)
    fit_idx, valid_idx = train_test_split(
        train_idx, test_size=VALID_SIZE, stratify=y[train_idx], random_state=SPLIT_SEED
    )
    dev = device or xgboost_device(resolve_device())

    def tree_progress(fraction: float, message: str) -> None:
        report(0.05 + 0.7 * fraction, message)

    booster, best = fit_booster(
        frame.iloc[fit_idx],
        y[fit_idx],
        frame.iloc[valid_idx],
        y[valid_idx],
        recipe,
        device=dev,
        seed=SPLIT_SEED,
        progress=tree_progress,
        should_stop=should_stop,
    )
    model = CreditModel(booster, schema, str(target), positive, negative, best, recipe.__dict__.copy())
    if should_stop is not None and should_stop():
        raise TrainingCancelled("Training was stopped before it finished; nothing was saved.")
    report(0.76, "fitting the logistic-regression baseline")
    baseline = _baseline(frame.iloc[train_idx], y[train_idx], frame.iloc[test_idx], y[test_idx], model)
    explainer = CompiledTreeShap.compile(model, progress=lambda f, m: report(0.8 + 0.15 * f, m))
    report(0.96, "measuring on the held-out 30%")
    test_pd = model.predict_pd(frame.iloc[test_idx])
    metrics = risk_metrics(y[test_idx], test_pd, threshold)
    train_pd = model.predict_pd(frame.iloc[train_idx])
    reference = build_reference(model, frame.iloc[train_idx], train_pd)
    rng = np.random.default_rng(SPLIT_SEED)
    demo_idx = np.sort(rng.choice(test_idx, size=min(DEMO_ROWS, len(test_idx)), replace=False))
    demo = (
        labelled.reset_index(drop=True).iloc[demo_idx][[*model.feature_names, target]].reset_index(drop=True)
    )
    facts = {
        "rows_labelled": int(len(labelled)),
        "rows_dropped_missing_target": int(dropped),
        "rows_train": int(len(fit_idx)),
        "rows_validation": int(len(valid_idx)),
        "rows_test": int(len(test_idx)),
        "bad_rate": float(y.mean()),
        "best_iteration": int(best),
        "device": dev,
        "training_seconds": round(time.perf_counter() - started, 2),
        "data_hash": data_hash(pd.util.hash_pandas_object(labelled, index=False).to_numpy().tobytes()),
        "split": "70% train / 30% held-out test, stratified, seed 42; "
        "early stopping on 15% of the train part",
    }
    report(1.0, f"done: held-out AUC {metrics['auc']:.3f} (baseline {baseline['auc']:.3f})")
    return TrainedCredit(model, metrics, baseline, y[test_idx], test_pd, reference, demo, facts, explainer)


def _load_explainer(
    model: CreditModel, path: Path, demo: pd.DataFrame, progress: Progress
) -> CompiledTreeShap:
    """The stored TreeSHAP tables, checked against ``pred_contribs`` on the demo rows; rebuilt if off."""
    if path.is_file():
        try:
            explainer = CompiledTreeShap.from_tensors(model, load_file(str(path)))
            frame, _ = validate_applicants(demo, model)
            if np.max(np.abs(explainer.shap_values(frame)[0] - model.contributions(frame)[0])) < 1e-4:
                return explainer
        except (KeyError, ValueError, OSError) as exc:
            log.warning("stored TreeSHAP tables unreadable (%s); rebuilding", type(exc).__name__)
        log.warning("stored TreeSHAP tables disagree with the model; rebuilding them")
    explainer = CompiledTreeShap.compile(model, progress=progress)
    tmp = path.with_name(f".{path.name}.tmp")
    try:  # keep the rebuilt tables for the next start; written aside and renamed in one step
        save_file(explainer.to_tensors(), str(tmp))
        tmp.replace(path)
    except OSError:
        log.warning("could not store rebuilt TreeSHAP tables (read-only model store?)")
    return explainer


# ----------------------------------------------------------------------------------------------
# The service
# ----------------------------------------------------------------------------------------------


class FinanceService:
    """Load, score, explain, monitor and train credit-risk models.

    The constructor is cheap; models are loaded (and the defaults built on first use) by
    :meth:`load`. One instance may be shared by many page sessions: the XGBoost calls on shared
    models run under a lock; building or reading a model runs outside it (one at a time per name),
    so a default being built for one session never stops the others scoring.

    Example:
        >>> service = FinanceService()
        >>> bundle = service.load("give_me_some_credit", progress=print)
        >>> scored = service.score(bundle, table, threshold=0.2)
        >>> expl = service.explain(bundle, scored.frame.iloc[:1])
    """

    def __init__(self, store: ModelStore | None = None, device: str | None = None) -> None:
        self.store = store or ModelStore()
        self._device = device
        self._lock = threading.RLock()
        self._cache: dict[str, CreditBundle] = {}
        self._loading: dict[str, threading.Lock] = {}

    # -- models ------------------------------------------------------------------------------

    @property
    def device(self) -> str:
        if self._device is None:
            self._device = xgboost_device(resolve_device())
        return self._device

    def model_names(self) -> list[str]:
        """Default model names first, then the user's saved models."""
        saved = [m.name for m in self.store.list(DOMAIN) if m.name not in FINANCE_MODELS]
        return FINANCE_MODELS.names() + sorted(saved)

    def is_built(self, name: str) -> bool:
        """True when ``name`` can be loaded without training first."""
        if name in self._cache:
            return True
        if name in FINANCE_MODELS:
            if not self.store.exists(DOMAIN, name):
                return False
            return self.store.load(DOMAIN, name).metadata.get("recipe_version") == RECIPE_VERSION
        return self.store.exists(DOMAIN, name)

    def build_default(
        self, name: str, *, progress: Progress = None, should_stop: ShouldStop = None
    ) -> CreditBundle:
        """Train a registered default model on its packaged data and save it under its name."""
        spec = FINANCE_MODELS.get(name)
        report = progress or (lambda _f, _m: None)
        report(0.0, f"reading {spec.title}")
        table = spec.build()
        trained = train_credit_model(
            table,
            spec.extra["target"],
            positive_label=spec.extra["positive_label"],
            device=self.device,
            progress=report,
            should_stop=should_stop,
        )
        meta = {
            "title": spec.title,
            "source": spec.source,
            "licence": spec.licence,
            "training_data": spec.data,
            "description": spec.description,
        }
        return self._save(name, trained, meta)

    def _save(self, name: str, trained: TrainedCredit, meta: dict[str, Any]) -> CreditBundle:
        metadata = {
            **meta,
            "base_model": f"XGBoost {xgb.__version__} gradient-boosted trees (hist, native categoricals)",
            "recipe_version": RECIPE_VERSION,
            "recipe": trained.model.recipe,
            "target": trained.model.target,
            "positive_label": trained.model.positive_label,
            "negative_label": trained.model.negative_label,
            "features": trained.model.feature_names,
            "metrics": trained.metrics,
            "baseline": trained.baseline,
            **trained.facts,
        }
        stored = self.store.save(DOMAIN, name, lambda folder: _write_bundle_files(folder, trained), metadata)
        bundle = CreditBundle(
            stored.name,
            trained.model,
            stored.metadata,
            trained.holdout_y,
            trained.holdout_pd,
            trained.reference,
            trained.demo_rows,
            is_default=name in FINANCE_MODELS,
            explainer=trained.explainer,
        )
        with self._lock:
            self._cache[stored.name] = bundle
        return bundle

    def load(self, name: str, *, progress: Progress = None, should_stop: ShouldStop = None) -> CreditBundle:
        """A loaded model; a default that is missing (or built by an older recipe) is built first.

        Raises:
            ModelNotFoundError: neither a default nor a saved model; the message lists the names.
        """
        with self._lock:
            if name in self._cache:
                return self._cache[name]
            loading = self._loading.setdefault(name, threading.Lock())
        # Building (up to a minute for a default) or reading the model holds only this name's lock:
        # other sessions keep scoring with the models already loaded meanwhile.
        with loading:
            with self._lock:
                if name in self._cache:  # built or read by another session while this one waited
                    return self._cache[name]
            if name in FINANCE_MODELS and not self.is_built(name):
                return self.build_default(name, progress=progress, should_stop=should_stop)
            if not self.store.exists(DOMAIN, name):
                raise ModelNotFoundError(name, self.model_names(), kind="finance model")
            stored = self.store.load(DOMAIN, name)
            model = CreditModel.load(stored.path, device=self.device)
            holdout = load_file(str(stored.path / HOLDOUT_FILE))
            reference = json.loads((stored.path / REFERENCE_FILE).read_text())
            demo = pd.read_csv(stored.path / DEMO_FILE)
            tables = stored.path / TREESHAP_FILE
            explainer = _load_explainer(model, tables, demo, progress)
            bundle = CreditBundle(
                stored.name,
                model,
                stored.metadata,
                holdout["y"].astype(np.int64),
                holdout["pd"].astype(np.float64),
                reference,
                demo,
                is_default=name in FINANCE_MODELS,
                explainer=explainer,
            )
            with self._lock:
                self._cache[name] = bundle
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
    ) -> CreditBundle:
        """Train on a user's labelled table and save the model under ``name``.

        Raises:
            InvalidInputError: invalid name, a name taken by a default model, or bad data.
        """
        name = validate_name(name)
        if name in FINANCE_MODELS:
            raise InvalidInputError(f"'{name}' is the name of a built-in model; choose another name.")
        trained = train_credit_model(
            df,
            target,
            features=features,
            positive_label=positive_label,
            recipe=recipe,
            device=self.device,
            progress=progress,
            should_stop=should_stop,
        )
        meta = {
            "title": name,
            "source": "trained in Lucid on your uploaded data",
            "licence": "yours (the data's own terms apply)",
            "training_data": f"your upload: {trained.facts['rows_labelled']:,} labelled rows",
            "description": "Gradient-boosted trees (XGBoost) trained by Lucid's credit-risk recipe.",
        }
        return self._save(name, trained, meta)

    # -- scoring ---------------------------------------------------------------------------

    def read_applicants(
        self, data: bytes, filename: str | None = None, *, max_rows: int | None = None
    ) -> pd.DataFrame:
        """Parse an uploaded applicants file (CSV with any delimiter/encoding, Excel, Parquet)."""
        return read_table(data, filename, max_rows=max_rows)

    def margins(self, bundle: CreditBundle, frame: pd.DataFrame) -> np.ndarray:
        with self._lock:
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
        labels = labelled[target].map(_label_text)
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
        with self._lock:
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
            if should_stop is not None and should_stop():
                raise TrainingCancelled("The export was stopped; nothing was written.")
            stop = min(start + chunk, n)
            expl = self.explain(bundle, scored.frame.iloc[start:stop], outputs=scored.margin[start:stop])
            shap_values[start:stop] = expl.values
            for k, column in enumerate(reason_columns(expl.values, expl.data, bundle.feature_names)):
                reasons[k].extend(column)
            if progress is not None:
                progress(stop / n, f"{stop:,} of {n:,} applicants explained")
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


def ensure_default_models(progress: Progress = None, store: ModelStore | None = None) -> list[str]:
    """Build every default model that is missing or out of date; returns the names built."""
    service = FinanceService(store)
    built = []
    for name in FINANCE_MODELS.names():
        if not service.is_built(name):
            prefix = f"{name}: "
            service.build_default(
                name, progress=(lambda f, m, p=prefix: progress(f, p + m)) if progress else None
            )
            built.append(name)
    return built
