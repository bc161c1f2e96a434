"""Credit-risk inputs: the target column as 0/1, the feature schema of a labelled table, and an
upload matched against a model's features (:func:`validate_applicants`, with a report of what was
coerced or ignored).

Example:
    >>> y, positive, negative = prepare_target(table["creditability"])
    >>> schema = infer_features(table, "creditability")
    >>> frame, report = validate_applicants(applicants, model)
    >>> report.messages()
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from lucid.core.errors import InvalidInputError
from lucid.domains.finance.model import CATEGORICAL, NUMERIC, CreditModel, FeatureSchema

MAX_CATEGORIES = 100
NUMERIC_SHARE = 0.9
POSITIVE_WORDS = ("bad", "default", "defaulted", "yes", "true", "1", "y", "delinquent", "charged off")


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


def label_text(value: object) -> str:
    """A label as text: whole floats without their ``.0`` (a 0/1 column read as floats), stripped."""
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
    labels = series.map(label_text)
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
        positive = label_text(positive_label)
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


def check_unique_columns(df: pd.DataFrame) -> None:
    """Refuse a table whose column names repeat (after stripping), naming them."""
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
    check_unique_columns(df)
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
    check_unique_columns(df)
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
