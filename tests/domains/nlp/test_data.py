"""The review-sentiment data: the packaged reviews, stratified splits, uploaded texts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lucid.core.errors import InvalidInputError
from lucid.domains.nlp.data import (
    column_texts,
    demo_reviews,
    load_reviews,
    read_texts_file,
    require_text,
    stratified_sample,
    stratified_split,
)


def test_reviews_are_labelled_by_rating():
    df = load_reviews()
    assert len(df) > 19_000
    assert set(df["label"]) == {"negative", "positive"}
    assert (df.loc[df["label"] == "positive", "rating"] >= 4).all()
    assert (df.loc[df["label"] == "negative", "rating"] <= 2).all()
    assert not (df["rating"] == 3).any()
    assert df["text"].str.strip().str.len().gt(0).all()


def test_stratified_split_keeps_class_shares_and_is_disjoint():
    labels = np.array(["a"] * 900 + ["b"] * 100)
    train, test = stratified_split(labels, 0.2, seed=1)
    assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == 1000
    assert (labels[test] == "b").sum() == 20 and (labels[train] == "b").sum() == 80
    again, _ = stratified_split(labels, 0.2, seed=1)
    np.testing.assert_array_equal(train, again)
    sample = stratified_sample(labels, 100, seed=0)
    assert len(sample) == 100 and (labels[sample] == "b").sum() == 10


def test_demo_reviews_are_held_out_test_reviews():
    df = load_reviews()
    train_idx, test_idx = stratified_split(df["label"].to_numpy(), 0.2, 42)
    demo = demo_reviews(50)
    assert len(demo) == 50 and list(demo.columns) == ["text", "label", "rating"]
    assert set(demo["text"]) <= set(df.loc[test_idx, "text"])
    assert not set(demo["text"]) & set(df.loc[train_idx, "text"]) - set(df.loc[test_idx, "text"])
    assert set(demo["label"]) == {"negative", "positive"}


def test_uploads_txt_non_utf8_missing_column():
    frame = read_texts_file("Great dress\n\n  Awful zip \nCafé crème\n".encode("cp1252"), "reviews.txt")
    assert frame["text"].tolist() == ["Great dress", "Awful zip", "Café crème"]
    utf16 = read_texts_file("text,label\nschön,1\n".encode("utf-16"), "x.csv")
    assert utf16["text"].tolist() == ["schön"]
    with pytest.raises(InvalidInputError, match="binary"):
        read_texts_file(b"\x00\x01\x02binary\x00", "x.txt")
    with pytest.raises(InvalidInputError, match="no column 'review'.*text, label"):
        column_texts(pd.DataFrame({"text": ["a"], "label": [1]}), "review")


def test_require_text_strips():
    assert require_text("  hi \n") == "hi"
