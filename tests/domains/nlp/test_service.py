"""Review-sentiment service: training, scoring, word-level SHAP, batch drivers, bad inputs, CLI."""

from __future__ import annotations

import io
import json
import random

import numpy as np
import pandas as pd
import pytest
import torch

from lucid.core.errors import InvalidInputError, ModelNotFoundError
from lucid.domains.nlp.explain import explain_pieces, explain_words, masked_word_log_odds, split_words
from lucid.domains.nlp.finetune import fine_tune
from lucid.domains.nlp.model import (
    DEFAULT_MODEL,
    RECIPE_VERSION,
    TextClassifier,
    TrainConfig,
    tiny_classifier,
)
from lucid.domains.nlp.service import NLPService
from lucid.explain.explanation import additivity_error
from lucid.ui.plots import text_highlight_html

POSITIVE = ["love", "great", "perfect", "beautiful", "comfortable", "gorgeous"]
NEGATIVE = ["terrible", "awful", "cheap", "ripped", "returned", "disappointed"]
ITEMS = ["dress", "top", "skirt", "jacket", "sweater"]
FILLER = ["the", "this", "fabric", "color", "fit", "really", "was", "it", "and", "my", "size"]


def clear_review(positive: bool, rng: random.Random) -> str:
    words = [rng.choice(FILLER) for _ in range(rng.randint(4, 9))]
    words += [rng.choice(POSITIVE if positive else NEGATIVE), rng.choice(ITEMS)]
    rng.shuffle(words)
    return " ".join(words)


def synthetic_reviews(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    labels = [rng.random() < 0.5 for _ in range(n)]
    return [clear_review(y, rng) for y in labels], ["positive" if y else "negative" for y in labels]


TINY_RECIPE = TrainConfig(epochs=4, learning_rate=5e-3, batch_size=16, warmup_fraction=0.0)


@pytest.fixture(scope="module")
def tiny_trained():
    """A tiny BERT trained on clear synthetic reviews (a few seconds on one core)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    texts, labels = synthetic_reviews(240)
    clf = tiny_classifier(seed=0, device=torch.device("cpu"))
    y = np.array([clf.labels.index(v) for v in labels])
    history = fine_tune(clf, texts, y, TINY_RECIPE)
    torch.set_num_threads(threads)
    return clf, history


@pytest.fixture
def service(model_store, tiny_trained):
    """A service whose store holds the tiny model as the built default and as a user model."""
    clf, _ = tiny_trained
    meta = {
        "labels": clf.labels,
        "recipe_version": RECIPE_VERSION,
        "metrics": {"accuracy": 1.0, "macro_f1": 1.0, "roc_auc": 1.0, "n_test": 1},
        "baseline_metrics": {"accuracy": 0.9, "macro_f1": 0.9, "roc_auc": 0.9, "n_test": 1},
    }
    model_store.save("nlp", DEFAULT_MODEL, clf.save, meta)
    model_store.save("nlp", "tiny", clf.save, meta)
    return NLPService(model_store, device="cpu")


def test_fine_tuning_lowers_the_loss_and_learns(tiny_trained):
    clf, history = tiny_trained
    losses = np.asarray(history.losses)
    assert losses[-5:].mean() < losses[:5].mean() - 0.2
    texts, labels = synthetic_reviews(60, seed=99)  # unseen texts
    pred = clf.predict_proba(texts).argmax(axis=1)
    assert (np.array(clf.labels)[pred] == np.array(labels)).mean() >= 0.9


def test_saved_model_reloads_to_identical_outputs(tiny_trained, tmp_path):
    clf, _ = tiny_trained
    clf.save(tmp_path)
    again = TextClassifier.load(tmp_path, device=torch.device("cpu"))
    texts = ["love this dress", "awful cheap fabric, returned it", "ok"]
    assert again.labels == clf.labels
    np.testing.assert_allclose(again.predict_logits(texts), clf.predict_logits(texts), atol=1e-6)
    assert not list(tmp_path.glob("*.bin")) and list(tmp_path.glob("*.safetensors"))


def test_batched_scores_match_one_at_a_time(tiny_trained):
    clf, _ = tiny_trained
    texts, _ = synthetic_reviews(30, seed=5)
    texts[3] = texts[3] * 20  # a long one among short ones
    batched = clf.predict_logits(texts, max_tokens=256)
    single = np.concatenate([clf.predict_logits([t]) for t in texts])
    np.testing.assert_allclose(batched, single, atol=1e-4)


def test_word_shap_adds_up_and_covers_every_word(tiny_trained):
    clf, _ = tiny_trained
    for text in ["I love this gorgeous dress, unbelievably comfortable!", "terrible fabric", "great"]:
        tokens = split_words(clf, text)
        assert "".join(tokens.words) == text
        for target in (0, 1):
            expl, output = explain_words(clf, tokens, target)
            assert len(expl.values) == len(tokens.words)
            assert additivity_error(expl, output) < 1e-3


def test_piece_shap_equals_shap_pipeline_defaults_and_sums_into_words(tiny_trained, monkeypatch):
    """Same features, masking and hierarchy as shap.Explainer(pipeline): the same values (float32 here)."""
    import shap
    from transformers import pipeline

    monkeypatch.setenv("LUCID_PRECISION", "fp32")
    clf, _ = tiny_trained
    pipe = pipeline("text-classification", model=clf.model, tokenizer=clf.tokenizer, device=-1, top_k=None)
    reference = shap.Explainer(pipe)
    for text in ["I love this gorgeous dress, unbelievably comfortable!", "terrible cheap fabric, returned"]:
        tokens = split_words(clf, text)
        expected = reference([text])[0]
        for target in (0, 1):
            ours = explain_pieces(clf, tokens, target)
            np.testing.assert_allclose(ours.pieces.values, expected.values[:, target], atol=2e-5)
            assert float(ours.pieces.base_values) == pytest.approx(expected.base_values[target], abs=2e-5)
            assert additivity_error(ours.pieces, ours.output) < 1e-3
            assert additivity_error(ours.words, ours.output) < 1e-3
            assert "".join(ours.words.data) == text
            assert "".join(ours.pieces.data) == text
            # each word carries the sum of the pieces inside its characters
            piece_ends = np.cumsum([len(p) for p in ours.pieces.data])
            piece_starts = piece_ends - [len(p) for p in ours.pieces.data]
            start = 0
            for word, value in zip(ours.words.data, ours.words.values, strict=True):
                inside = (piece_starts >= start) & (piece_ends <= start + len(word))
                inside &= piece_ends > piece_starts
                assert value == pytest.approx(ours.pieces.values[inside].sum(), abs=1e-6)
                start += len(word)
            if "unbelievably" in text:  # a word of several pieces
                assert len(ours.pieces.values) > len(ours.words.values) + 2
        log_odds = explain_pieces(clf, tokens, 1, units="log-odds")
        p = ours.output
        assert log_odds.output == pytest.approx(np.log(p / (1 - p)), abs=1e-4)


def test_word_pieces_are_grouped_into_words(tiny_trained):
    clf, _ = tiny_trained
    tokens = split_words(clf, "Unbelievably comfortable")
    assert [w.strip() for w in tokens.words] == ["Unbelievably", "comfortable"]
    assert len(tokens.piece_positions[0]) > 1  # several word pieces, one feature


def test_removing_top_words_hurts_more_than_random_words(tiny_trained):
    clf, _ = tiny_trained
    rng = np.random.default_rng(0)
    gaps = []
    reviews = [clear_review(True, random.Random(100 + i)) for i in range(6)]
    for text in reviews:
        tokens = split_words(clf, text)
        expl, full = explain_words(clf, tokens, 1)
        top3 = np.argsort(-np.asarray(expl.values))[:3]
        drop_top = full - masked_word_log_odds(clf, tokens, top3, 1)
        drops = [
            full - masked_word_log_odds(clf, tokens, rng.choice(len(tokens.words), 3, replace=False), 1)
            for _ in range(5)
        ]
        gaps.append(drop_top - float(np.mean(drops)))
    assert all(g > 0 for g in gaps), gaps


def test_analyse_predicts_explains_and_escapes(service):
    result = service.analyse("<script>alert('x')</script> I love this gorgeous dress")
    assert result.label == "positive" and result.probabilities["positive"] > 0.5
    assert abs(sum(result.probabilities.values()) - 1) < 1e-5
    assert result.additivity_error < 1e-3
    html = text_highlight_html(result.explanation)
    assert "<script" not in html and "</script" not in html
    assert html.count("&lt;") == 2 and html.count("&gt;") == 2
    assert result.units == "probability" and result.output == pytest.approx(result.probabilities["positive"])
    assert not result.piece_table()["piece"].str.contains("<script").any()  # pieces are cut, never run
    negative = service.analyse("I love this gorgeous dress", target="negative")
    positive = service.analyse("I love this gorgeous dress")
    assert negative.explained_label == "negative"
    assert negative.output == pytest.approx(1 - positive.output, abs=1e-4)
    negative_lo = service.analyse("I love this gorgeous dress", target="negative", units="log-odds")
    positive_lo = service.analyse("I love this gorgeous dress", units="log-odds")
    assert negative_lo.output == pytest.approx(-positive_lo.output, abs=1e-4)
    assert negative_lo.additivity_error < 1e-3
    with pytest.raises(InvalidInputError, match="Unknown units"):
        service.analyse("I love it", units="percent")


@pytest.mark.parametrize("text", ["", "   \n\t ", None])
def test_empty_text_is_refused_clearly(service, text):
    with pytest.raises(InvalidInputError, match="empty"):
        service.analyse(text)


def test_very_long_text_is_truncated_with_a_notice(service):
    text = ("love this dress " * 6_250)[:-1] + "!"  # 100,000 characters
    assert len(text) == 100_000
    result = service.analyse(text)
    assert result.truncated and 0 < result.used_chars < 1_000
    assert "100,000 characters" in result.truncation_notice()
    assert "".join(result.explanation.data) == text[: result.used_chars]


def test_long_text_explanation_adds_up_when_the_budget_ends_early(service):
    text = " ".join(f"the dress {w} and" for w in ["fits", "love", "awful", "great"] * 12)  # > 128 pieces
    result = service.analyse(text, max_evals=120)  # far too few to split 128 pieces to the end
    assert result.truncated and result.additivity_error < 1e-3
    pieces = np.asarray(result.pieces.values)
    assert abs(pieces[0]) > 0  # the budget's rest was spread over [CLS] too, as shap does


def test_emoji_and_non_latin_scripts(service):
    result = service.analyse("Отличное платье 很好看 😍 love it")
    assert len(result.explanation.values) >= 5
    assert result.additivity_error < 1e-3
    assert "😍" in "".join(result.explanation.data)


def test_score_keeps_order_and_marks_empty_rows(service):
    texts = ["love this perfect dress", "", "terrible cheap fabric returned", None, "gorgeous top"]
    scores = service.score(texts)
    table = scores.table
    assert table["row"].tolist() == [0, 1, 2, 3, 4]
    assert table["status"].tolist() == ["scored", "empty", "scored", "empty", "scored"]
    assert table.loc[[0, 2, 4], "label"].tolist() == ["positive", "negative", "positive"]
    probs = table.loc[[0, 2, 4], ["p_negative", "p_positive"]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-5)
    low, high = scores.extremes(1)
    assert low["row"].tolist() == [2] and scores.n_empty == 2


def test_word_drivers_find_the_sentiment_words(service):
    texts, _ = synthetic_reviews(80, seed=3)
    drivers = service.word_drivers(texts, sample_size=25, min_count=2)
    assert drivers.sample_size == 25 and drivers.batch_size == 80
    top_neg = set(drivers.top(6, sign=-1)["word"])
    top_pos = set(drivers.top(6, sign=1)["word"])
    assert len(top_neg & set(NEGATIVE)) >= 3, top_neg
    assert len(top_pos & set(POSITIVE)) >= 3, top_pos
    assert (drivers.table["count"] >= 2).all()


def test_unknown_and_reserved_model_names(service):
    with pytest.raises(ModelNotFoundError, match="Valid names: .*review_sentiment.*tiny"):
        service.load("nope")
    with pytest.raises(InvalidInputError, match="built-in model"):
        service.train(["a b"] * 10, ["x", "y"] * 5, DEFAULT_MODEL)
    with pytest.raises(InvalidInputError, match="model name"):
        service.train(["a b"] * 10, ["x", "y"] * 5, "../evil")


def test_int8_copy_agrees_with_the_float_model(service):
    texts, _ = synthetic_reviews(40, seed=11)
    full = service.score(texts).table["label"]
    quant = service.score(texts, int8=True).table["label"]
    assert (full == quant).mean() >= 0.9
    assert service.load(DEFAULT_MODEL, int8=True).quantized


def test_model_card_shows_metrics_beside_baseline(service):
    card = service.card(DEFAULT_MODEL)
    assert "Apache-2.0" in card.licence and "clothing" in card.sections()["Limits"]
    table = card.metrics
    assert card.sections()["Held-out test metrics"] is table
    assert table.loc[table["metric"] == "macro-F1", "this model"].item() == 1.0
    assert table.loc[table["metric"] == "macro-F1", "TF-IDF baseline (same training texts)"].item() == 0.9


@pytest.mark.parametrize("served", ["fp32", "bf16"])
def test_model_card_says_when_this_server_computes_in_another_precision(service, monkeypatch, served):
    monkeypatch.setenv("LUCID_PRECISION", served)
    text = service.card(DEFAULT_MODEL).details["Precision"]  # measured in float32 (no "precision" recorded)
    if served == "fp32":
        assert text.startswith("Computes in float32 here") and "LUCID_PRECISION" not in text
    else:
        assert text.startswith("Computes in bfloat16 on this server")
        assert "measured in float32" in text and "LUCID_PRECISION=fp32" in text


def test_cli_score_and_evaluate(service, tmp_path, capsys):
    from lucid.cli import main

    texts, labels = synthetic_reviews(30, seed=21)
    texts[0] = "=HYPERLINK('http://x') love it"
    data = tmp_path / "reviews.csv"
    pd.DataFrame({"id": range(30), "review": texts, "sentiment": labels}).to_csv(data, index=False)
    out = tmp_path / "scored.csv"
    code = main(["nlp", "score", str(data), "--out", str(out), "--text-col", "review", "--explain"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["scored"] == 30
    scored = pd.read_csv(io.BytesIO(out.read_bytes()), encoding="utf-8-sig")
    assert scored["review"][0].startswith("'=HYPERLINK")
    assert (scored["label"] == pd.Series(labels)).mean() >= 0.9
    assert scored["top_words"].str.len().gt(0).all()
    code = main(
        ["nlp", "evaluate", str(data), "--target", "sentiment", "--text-col", "review", "--model", "tiny"]
    )
    assert code == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["accuracy"] >= 0.9 and metrics["roc_auc"] >= 0.9
    assert main(["nlp", "score", str(data), "--out", str(out), "--model", "missing"]) == 1
    assert "Valid names" in capsys.readouterr().err


def test_defaults_are_built_when_missing_or_stale_and_kept_when_current(
    model_store, tiny_trained, monkeypatch
):
    """The service's one version check: a default stored by another recipe version is rebuilt."""
    from lucid.domains import DOMAINS
    from lucid.domains.nlp import service as service_module

    clf, _ = tiny_trained
    built = []

    def fake_build(store, *, progress=None, should_stop=None, name=DEFAULT_MODEL):
        built.append(name)
        if progress:
            progress(1.0, "built")
        return store.save("nlp", name, clf.save, {"labels": clf.labels, "recipe_version": RECIPE_VERSION})

    monkeypatch.setattr(service_module, "build_default_model", fake_build)
    service = NLPService(model_store, device="cpu")
    assert not service.is_built(DEFAULT_MODEL)
    messages = []
    assert service.ensure_defaults(lambda _f, m: messages.append(m)) == [DEFAULT_MODEL]
    assert messages == [f"{DEFAULT_MODEL}: built"] and service.is_built(DEFAULT_MODEL)
    assert service.ensure_defaults() == [] and built == [DEFAULT_MODEL]
    assert DOMAINS["nlp"].ensure_defaults(store=model_store) == []

    model_store.save(
        "nlp", DEFAULT_MODEL, clf.save, {"labels": clf.labels, "recipe_version": RECIPE_VERSION - 1}
    )
    assert not service.is_built(DEFAULT_MODEL)
    assert service.load(DEFAULT_MODEL).labels == clf.labels  # built on first use
    assert built == [DEFAULT_MODEL, DEFAULT_MODEL]
    assert model_store.load("nlp", DEFAULT_MODEL).metadata["recipe_version"] == RECIPE_VERSION


def test_models_load_once_and_retraining_drops_the_old_copies(service, tiny_trained):
    before = service.load("tiny")
    assert service.load("tiny") is before
    quantized = service.load("tiny", int8=True)
    assert quantized.quantized and service.load("tiny", int8=True) is quantized
    assert service.saved_names() == ["tiny"] and service.model_names() == [DEFAULT_MODEL, "tiny"]
    texts, labels = synthetic_reviews(24, seed=4)
    # saved whatever its quality gate says: this is about the copies of the model it replaces
    service.train(texts, labels, "tiny", config=TrainConfig(epochs=1, max_length=32), save_anyway=True)
    again = service.load("tiny", int8=True)
    assert again is not quantized and service.load("tiny") is not before
    service.delete("tiny")
    with pytest.raises(ModelNotFoundError):
        service.load("tiny")
    with pytest.raises(InvalidInputError, match="built-in"):
        service.delete(DEFAULT_MODEL)
