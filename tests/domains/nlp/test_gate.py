"""Train your own behind the quality gate: the service, the CLI's train and models commands.

A tiny BERT stands in for the MiniLM encoder so that training takes seconds. Two data sets:

- ``emoticon_reviews``: the sentiment is only in ":)" or ":(", which the TF-IDF baseline's word
  tokens drop (they keep words of two or more letters), while the transformer's tokenizer keeps them:
  a model that beats its baseline;
- ``worded_reviews``: the sentiment is in words the baseline sees, so it is perfect on the held-out
  texts and no model can beat it.
"""

from __future__ import annotations

import json
import random

import pandas as pd
import pytest
import torch

from lucid.core.errors import TrainingCancelled
from lucid.domains.nlp import training
from lucid.domains.nlp.model import TrainConfig, tiny_classifier
from lucid.domains.nlp.service import NLPService

FILLER = ["the", "this", "dress", "fabric", "fit", "was", "really", "and", "my", "size", "top", "color"]
RECIPE = TrainConfig(epochs=8, learning_rate=5e-3, batch_size=16, warmup_fraction=0.0, max_length=32)
#: Enough for the worded reviews: no model can beat a perfect baseline there, however long it trains.
QUICK = TrainConfig(epochs=1, learning_rate=5e-3, batch_size=16, warmup_fraction=0.0, max_length=32)


def emoticon_reviews(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        positive = i % 2 == 0
        words = [rng.choice(FILLER) for _ in range(rng.randint(4, 8))]
        words.insert(rng.randint(0, len(words)), ":)" if positive else ":(")
        texts.append(" ".join(words))
        labels.append("positive" if positive else "negative")
    return texts, labels


def worded_reviews(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        positive = i % 2 == 0
        words = [rng.choice(FILLER) for _ in range(rng.randint(4, 8))] + ["great" if positive else "awful"]
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append("positive" if positive else "negative")
    return texts, labels


@pytest.fixture(autouse=True)
def tiny_encoder(monkeypatch):
    """Every training run of these tests starts from a tiny randomly initialised BERT, on one thread."""

    def from_encoder(folder, labels, *, max_length=128, seed=0):
        return tiny_classifier(labels, seed=seed, device=torch.device("cpu"))

    monkeypatch.setattr(training.TextClassifier, "from_encoder", staticmethod(from_encoder))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def service(model_store):
    return NLPService(model_store, device="cpu")


def test_a_model_that_beats_its_baseline_is_saved_with_its_gate(service, model_store):
    texts, labels = emoticon_reviews(160)
    trained = service.train(texts, labels, "emoticons", config=RECIPE)
    gate = trained.gate
    assert gate.passed and trained.saved, gate.verdict()
    assert gate.metric == "macro-F1" and gate.n_test == 32
    assert gate.model >= 0.9 and gate.baseline <= 0.75 and gate.chance == pytest.approx(1 / 3)
    assert gate.model_low > gate.chance and gate.diff_low > 0
    stored = model_store.load("nlp", "emoticons").metadata["quality_gate"]
    assert stored == gate.as_dict() and stored["passed"] is True
    assert service.model_names()[-1] == "emoticons"
    assert service.load("emoticons").predict_proba(["the dress :)"]).argmax() == 1
    row = service.saved_models_table().iloc[0]
    assert row["Name"] == "emoticons" and row["Held-out result"].startswith(f"macro-F1 {gate.model:.3f}")


def test_a_model_no_better_than_its_baseline_is_not_saved_unless_asked(service, model_store):
    texts, labels = worded_reviews(60)
    trained = service.train(texts, labels, "worded", config=QUICK)
    gate = trained.gate
    assert gate.baseline == 1.0  # the words give the baseline every held-out text
    assert not gate.beats_baseline and not gate.passed and not trained.saved
    assert gate.verdict().startswith("Not better than its baseline: macro-F1")
    assert "Only 12 held-out items" in " ".join(gate.caveats())
    assert not model_store.exists("nlp", "worded") and "worded" not in service.model_names()
    assert trained.metadata["quality_gate"] == gate.as_dict()

    stored = service.save_trained(trained)  # the user's explicit choice
    assert trained.saved and stored.name == "worded" and "worded" in service.model_names()
    assert model_store.load("nlp", "worded").metadata["quality_gate"]["passed"] is False

    again = service.train(texts, labels, "worded again", config=QUICK, save_anyway=True)
    assert again.saved and not again.gate.passed
    assert model_store.load("nlp", "worded again").metadata["quality_gate"]["beats_baseline"] is False


def test_stopping_saves_nothing(service, model_store):
    texts, labels = emoticon_reviews(40)
    with pytest.raises(TrainingCancelled):
        service.train(texts, labels, "stopped", config=QUICK, should_stop=lambda: True)
    assert not model_store.exists("nlp", "stopped") and service.saved_names() == []


def _cli_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_cli_train_honours_the_gate_and_models_renames_and_deletes(model_store, tmp_path, capsys):
    from lucid.cli import main
    from lucid.domains import DOMAINS

    texts, labels = worded_reviews(60)
    data = tmp_path / "reviews.csv"
    pd.DataFrame({"review": texts, "sentiment": labels}).to_csv(data, index=False)
    train = ["nlp", "train", str(data), "--target", "sentiment", "--text-col", "review", "--epochs", "1"]
    service = DOMAINS["nlp"].service()

    assert main([*train, "--name", "cli-bad"]) == 0
    out = _cli_json(capsys)
    assert out["saved"] is False and out["beats_baseline"] is False and out["path"] is None
    assert out["quality_gate"]["baseline"] == 1.0 and out["quality_gate"]["passed"] is False
    assert out["verdict"].startswith("Not better than its baseline")
    assert "cli-bad" not in service.model_names()

    assert main([*train, "--name", "cli-bad", "--save-anyway"]) == 0
    out = _cli_json(capsys)
    assert out["saved"] is True and out["quality_gate"]["passed"] is False
    assert "cli-bad" in service.model_names()
    assert model_store.load("nlp", "cli-bad").metadata["quality_gate"] == out["quality_gate"]

    assert main(["nlp", "models", "--rename", "cli-bad", "cli-kept"]) == 0
    out = _cli_json(capsys)
    assert out["renamed"] == {"from": "cli-bad", "to": "cli-kept"}
    assert [row["Name"] for row in out["saved"]] == ["cli-kept"]
    assert service.saved_names() == ["cli-kept"] and not model_store.exists("nlp", "cli-bad")

    assert main(["nlp", "models", "--delete", "cli-kept"]) == 0
    assert _cli_json(capsys)["saved"] == [] and service.saved_names() == []
    assert main(["nlp", "models", "--delete", "review_sentiment"]) == 1
    assert "built-in" in capsys.readouterr().err
