"""Text-classifier building blocks: demo data, splits, batching, and the real default recipe (slow)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lucid.core.errors import ModelNotFoundError
from lucid.domains.nlp.model import (
    DEFAULT_MODEL,
    RECIPE_VERSION,
    TextClassifier,
    length_bucketed_batches,
    load_reviews,
    nlp_registry,
    pad_batch,
    stratified_sample,
    stratified_split,
    token_budget_batches,
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


def test_token_budget_batches_cover_every_row_within_budget():
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 128, size=500)
    batches = token_budget_batches(lengths, max_tokens=2048, max_batch=64)
    seen = np.sort(np.concatenate(batches))
    np.testing.assert_array_equal(seen, np.arange(500))
    for batch in batches:
        assert len(batch) <= 64
        assert len(batch) == 1 or len(batch) * lengths[batch].max() <= 2048
    # sorted by length: padding is small
    padded = sum(len(b) * lengths[b].max() for b in batches)
    assert padded < 1.1 * lengths.sum()


def test_length_buckets_shuffle_batches_but_group_lengths():
    lengths = np.arange(320)
    batches = length_bucketed_batches(lengths, 16, np.random.default_rng(0))
    assert sorted(np.concatenate(batches).tolist()) == list(range(320))
    spans = [lengths[b].max() - lengths[b].min() for b in batches]
    assert max(spans) < 40  # similar lengths together
    firsts = [int(b.min()) for b in batches]
    assert firsts != sorted(firsts)  # batch order is shuffled


def test_pad_batch():
    ids, mask = pad_batch([[1, 2, 3], [4]], pad_id=0)
    assert ids.tolist() == [[1, 2, 3], [4, 0, 0]] and mask.tolist() == [[1, 1, 1], [1, 0, 0]]


def test_word_tree_is_a_full_binary_hierarchy():
    from lucid.domains.nlp.explain import adjacent_word_tree

    for n in (2, 3, 7, 16):
        tree = adjacent_word_tree(n)
        assert tree.shape == (n - 1, 4)
        assert tree[-1, 3] == n
        leaves = {int(v) for v in tree[:, :2].ravel() if v < n}
        assert leaves == set(range(n))


def test_registry_lists_the_default_and_refuses_unknown_names():
    assert nlp_registry.names() == [DEFAULT_MODEL]
    spec = nlp_registry.get(DEFAULT_MODEL)
    assert "Apache-2.0" in spec.licence and spec.labels == ("negative", "positive")
    assert spec.extra["recipe_version"] == RECIPE_VERSION
    with pytest.raises(ModelNotFoundError, match="review_sentiment"):
        nlp_registry.get("sentiment_xl")


@pytest.mark.slow
def test_default_recipe_on_a_few_hundred_reviews(model_store):
    """The real recipe (MiniLM encoder, packaged reviews, one epoch) on 300 training and 200 test texts.

    So few texts give a weak model (about 0.7 ROC AUC measured here; the full recipe uses 10,000): the
    test checks the whole build end to end, that it beats chance, and what it stores.
    """
    from lucid.domains.nlp.service import NLPService, build_default_model

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        saved = build_default_model(model_store, train_size=300, test_size=200)
    finally:
        torch.set_num_threads(threads)
    meta = saved.metadata
    assert meta["recipe_version"] == RECIPE_VERSION and meta["n_test"] == 200
    assert meta["n_train"] == 285 and meta["n_validation"] == 15
    assert meta["metrics"]["roc_auc"] > 0.6
    assert meta["baseline_metrics"]["roc_auc"] > 0.6
    assert meta["int8_metrics"]["agreement_with_served"] > 0.9
    assert meta["precision"] in ("bfloat16", "float16", "float32")
    if meta["precision"] != "float32":  # the card shows the same model in float32 beside it
        assert meta["float32_metrics"]["agreement_with_served"] > 0.95
    service = NLPService(model_store, device="cpu")
    assert service.default_ready()
    clf = service.load(DEFAULT_MODEL)
    assert isinstance(clf, TextClassifier)
    proba = clf.predict_proba(["Absolutely love it, perfect fit.", "Terrible quality, returned it."])
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-5)
    card = service.model_card(DEFAULT_MODEL)
    assert card["Held-out test metrics"]["this model"].notna().all()

    # The page's explanation gives shap.Explainer(pipeline)'s values, in the served precision.
    import shap
    from transformers import pipeline

    from lucid.domains.nlp.explain import explain_pieces, split_words

    pipe = pipeline("text-classification", model=clf.model, tokenizer=clf.tokenizer, device=-1, top_k=None)
    reference = shap.Explainer(pipe)
    for text in [
        "Absolutely love this dress, the fabric is soft and the fit is perfect for me.",
        "The zipper broke after one wear and the colour faded, so I returned it.",
    ]:
        target = int(clf.predict_logits([text]).argmax(1)[0])
        ours = explain_pieces(clf, split_words(clf, text), target)
        expected = reference([text])[0].values[:, target]
        assert np.corrcoef(ours.pieces.values, expected)[0, 1] > 0.98
        assert int(np.argmax(ours.pieces.values)) == int(np.argmax(expected))
