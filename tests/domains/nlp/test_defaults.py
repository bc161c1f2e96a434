"""The default sentiment model's real recipe, end to end on a few hundred reviews (slow)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lucid.domains.nlp.defaults import build_default_model
from lucid.domains.nlp.explain import explain_pieces, split_words
from lucid.domains.nlp.model import DEFAULT_MODEL, RECIPE_VERSION, TextClassifier
from lucid.domains.nlp.service import NLPService


@pytest.mark.slow
def test_default_recipe_on_a_few_hundred_reviews(model_store):
    """The real recipe (MiniLM encoder, packaged reviews, one epoch) on 300 training and 200 test texts.

    So few texts give a weak model (about 0.7 ROC AUC measured here; the full recipe uses 10,000): the
    test checks the whole build end to end, that it beats chance, and what it stores.
    """
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
    assert service.is_built(DEFAULT_MODEL) and service.ensure_defaults() == []
    clf = service.load(DEFAULT_MODEL)
    assert isinstance(clf, TextClassifier)
    proba = clf.predict_proba(["Absolutely love it, perfect fit.", "Terrible quality, returned it."])
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-5)
    card = service.card(DEFAULT_MODEL)
    assert card.metrics["this model"].notna().all()

    # The page's explanation gives shap.Explainer(pipeline)'s values, in the served precision.
    import shap
    from transformers import pipeline

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
