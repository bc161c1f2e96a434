"""The review-sentiment page through AppTest: analyse -> batch -> drivers -> train, with hostile inputs."""

from __future__ import annotations

import random
import re

import numpy as np
import pandas as pd
import pytest
import torch

from lucid.domains.nlp.finetune import fine_tune
from lucid.domains.nlp.model import DEFAULT_MODEL, RECIPE_VERSION, TrainConfig, tiny_classifier

GOOD = ["love", "great", "perfect", "gorgeous"]
BAD = ["terrible", "awful", "cheap", "ripped"]
FILL = ["the", "this", "dress", "fabric", "fit", "was", "really", "and", "my"]


def review(positive: bool, rng: random.Random) -> str:
    words = [rng.choice(FILL) for _ in range(rng.randint(4, 8))] + [rng.choice(GOOD if positive else BAD)]
    rng.shuffle(words)
    return " ".join(words)


def reviews(n: int, seed: int) -> pd.DataFrame:
    rng = random.Random(seed)
    labels = [i % 2 == 0 for i in range(n)]
    return pd.DataFrame(
        {
            "id": range(n),
            "comment": [review(y, rng) for y in labels],
            "label": ["pos" if y else "neg" for y in labels],
        }
    )


@pytest.fixture(scope="module")
def tiny_default():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    data = reviews(240, seed=0)
    clf = tiny_classifier(seed=0, device=torch.device("cpu"))
    y = (data["label"] == "pos").astype(int).to_numpy()
    fine_tune(
        clf, data["comment"].tolist(), y, TrainConfig(epochs=4, learning_rate=5e-3, warmup_fraction=0.0)
    )
    torch.set_num_threads(threads)
    return clf


@pytest.fixture
def page(app_test, model_store, tiny_default):
    meta = {
        "labels": tiny_default.labels,
        "recipe_version": RECIPE_VERSION,
        "metrics": {"accuracy": 0.95, "macro_f1": 0.93, "roc_auc": 0.98, "n_test": 100},
        "baseline_metrics": {"accuracy": 0.9, "macro_f1": 0.88, "roc_auc": 0.95, "n_test": 100},
    }
    model_store.save("nlp", DEFAULT_MODEL, tiny_default.save, meta)
    at = app_test("app_pages/nlp.py", timeout=300)
    assert not at.exception
    return at


def _markdown(at) -> str:
    return "\n".join(m.value for m in at.markdown)


def test_analyse_batch_and_train(page, model_store):
    at = page
    assert at.title[0].value == "Review sentiment"
    assert any(e.label == "Model card" for e in at.expander)
    assert "Apache-2.0" in _markdown(at)

    # Analyse one text, with an XSS attempt that must stay text.
    at.text_area(key="nlp_text").input("<script>alert('x')</script> I love this gorgeous dress")
    at.button(key="nlp_analyse").click()
    at.run()
    assert not at.exception and not at.error
    assert at.metric[0].label == "Prediction" and at.metric[0].value == "positive"
    highlight = next(m.value for m in at.markdown if "lucid-text" in m.value)
    assert "<script" not in highlight and "&lt;" in highlight and "gorgeous" in highlight

    assert "share of the probability of **positive**" in _markdown(at)
    pieces = next(e for e in at.expander if e.label.startswith("Word pieces"))
    assert "gorgeous" in pieces.dataframe[0].value["piece"].tolist()

    # Explain the other class on request, in log-odds.
    at.selectbox(key="nlp_target").set_value("negative")
    at.radio(key="nlp_units").set_value("log-odds")
    at.button(key="nlp_analyse").click()
    at.run()
    assert "share of the log-odds of **negative**" in _markdown(at)

    # Batch: a CSV with an empty row; pick the text column, score, then find the driving words.
    batch = reviews(40, seed=7)
    batch.loc[3, "comment"] = ""
    at.file_uploader(key="nlp_batch_upload").set_value(
        ("batch.csv", batch.to_csv(index=False).encode(), "text/csv")
    )
    at.run()
    assert at.selectbox(key="nlp_batch_column").value == "comment"
    at.button(key="nlp_batch_score").click()
    at.run()
    assert not at.exception and not at.error
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Texts scored"] == "39" and metrics["Empty (not scored)"] == "1"
    table = next(d.value for d in at.dataframe if "status" in d.value.columns)
    scored = table[table["status"] == "scored"]
    truth = batch.loc[scored["row"], "label"].map({"pos": "positive", "neg": "negative"}).to_numpy()
    assert (scored["label"].to_numpy() == truth).mean() >= 0.9
    at.slider(key="nlp_drivers_sample").set_value(12)
    at.button(key="nlp_drivers_go").click()
    at.run()
    assert not at.exception and not at.error
    captions = "\n".join(c.value for c in at.caption)
    assert "over a random sample of 12 of 39 texts" in captions
    assert re.search(r"Explained in \d+ s \(\d+\.\d s per text\)", captions)

    # Train your own on a tiny file (the real encoder, one epoch).
    train = reviews(24, seed=3)
    at.file_uploader(key="nlp_train_upload").set_value(
        ("labels.csv", train.to_csv(index=False).encode(), "text/csv")
    )
    at.run()
    at.selectbox(key="nlp_train_text").set_value("comment")
    at.run()
    at.selectbox(key="nlp_train_label").set_value("label")
    at.number_input(key="nlp_train_epochs").set_value(1)
    at.text_input(key="nlp_train_name").input("tiny-user-model")
    at.button(key="nlp_train_go").click()
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    # One epoch on 19 texts teaches the encoder little (macro-F1 0.2 on the 4 held-out texts, against
    # 0.5 for the TF-IDF baseline and 0.333 for chance): the model waits for an explicit choice.
    verdict = next(w.value for w in at.warning if "Saving it needs an explicit choice" in w.value)
    assert "macro-F1" in verdict and "on 4 held-out items" in verdict
    assert any("Only 4 held-out items" in c.value for c in at.caption)
    assert any("Not saved: 'tiny-user-model'" in i.value for i in at.info)
    assert not model_store.exists("nlp", "tiny-user-model")
    assert "tiny-user-model" not in at.selectbox(key="nlp_model").options
    at.button(key="nlp_train_save_anyway").click()
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("Saved as 'tiny-user-model'" in s.value for s in at.success)
    assert model_store.exists("nlp", "tiny-user-model")
    meta = model_store.load("nlp", "tiny-user-model").metadata
    assert meta["labels"] == ["neg", "pos"] and meta["n_test"] == 4
    gate = meta["quality_gate"]
    assert gate["passed"] is False and gate["n_test"] == 4 and gate["metric"] == "macro-F1"
    assert "tiny-user-model" in at.selectbox(key="nlp_model").options  # no reload needed

    # Your models: pick the new model, then rename it and delete it.
    at.selectbox(key="nlp_model").set_value("tiny-user-model")
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    listed = next(d.value for d in at.dataframe if "Held-out result" in d.value.columns)
    assert listed["Name"].tolist() == ["tiny-user-model"]
    assert listed["Held-out result"][0].startswith("macro-F1 ")
    at.selectbox(key="nlp_models_manage_model").set_value("tiny-user-model")
    at.text_input(key="nlp_models_manage_new_name").input("kept-model")
    at.run()  # Rename is enabled once a new name is typed
    at.button(key="nlp_models_manage_rename").click()
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert model_store.exists("nlp", "kept-model") and not model_store.exists("nlp", "tiny-user-model")
    options = at.selectbox(key="nlp_model").options
    assert "kept-model" in options and "tiny-user-model" not in options
    assert at.selectbox(key="nlp_model").value == DEFAULT_MODEL  # the renamed selection is not kept
    assert not any("Saved as" in s.value for s in at.success)  # the training result named the old name
    at.selectbox(key="nlp_models_manage_model").set_value("kept-model")
    at.button(key="nlp_models_manage_delete").click()
    at.run()
    at.button(key="nlp_models_manage_delete_yes").click()
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert not model_store.exists("nlp", "kept-model")
    assert at.selectbox(key="nlp_model").options == [DEFAULT_MODEL]
    assert any("No saved models yet" in c.value for c in at.caption)


def test_bad_inputs_get_clear_messages(page):
    at = page
    at.text_area(key="nlp_text").input("   ")
    at.button(key="nlp_analyse").click()
    at.run()
    assert not at.exception
    assert "The text is empty" in at.error[0].value

    at.file_uploader(key="nlp_batch_upload").set_value(("bin.txt", b"\x00\x01\x02\x00binary", "text/plain"))
    at.run()
    assert not at.exception
    assert any("binary" in e.value for e in at.error)

    one_class = pd.DataFrame({"text": [f"nice dress {i}" for i in range(12)], "label": ["pos"] * 12})
    at.file_uploader(key="nlp_train_upload").set_value(
        ("one.csv", one_class.to_csv(index=False).encode(), "text/csv")
    )
    at.run()
    at.selectbox(key="nlp_train_label").set_value("label")
    at.button(key="nlp_train_go").click()
    at.run()
    assert not at.exception
    assert any("only one class" in e.value for e in at.error)

    many = pd.DataFrame({"text": [f"text {i}" for i in range(400)], "label": [f"c{i}" for i in range(400)]})
    at.file_uploader(key="nlp_train_upload").set_value(
        ("many.csv", many.to_csv(index=False).encode(), "text/csv")
    )
    at.run()
    at.selectbox(key="nlp_train_label").set_value("label")
    at.button(key="nlp_train_go").click()
    at.run()
    assert any("400 distinct values" in e.value for e in at.error)
    assert np.all([not x for x in [at.exception]])
