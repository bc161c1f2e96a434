"""Every hostile file through the uploads of the review-sentiment and recommendations pages (AppTest).

One AppTest session per page takes the whole corpus, one file after another, through each uploader
(and the button that uses the upload: Score, Train). After each file the page has no exception, no
traceback, no unexpected-error apology and no unescaped HTML, and shows either a clear message or a
result; after the corpus a good file still gives the real result.
"""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest

from tests.hostile.corpus import HostileFile
from tests.hostile.test_corpus_pages import _accepted, _files

pytestmark = pytest.mark.slow

UNEXPECTED = "Something went wrong"


def _check(at, item) -> None:
    where = f"{item.name} ({item.what})"
    assert not at.exception, f"{where}: exception on the page: {at.exception}"
    for element in [*at.error, *at.warning, *at.info, *at.markdown, *at.caption, *at.success]:
        value = str(element.value)
        assert "Traceback" not in value, where
        assert UNEXPECTED not in value, f"{where}: unexpected error: {value}"
    for element in at.markdown:
        if element.allow_html:
            assert "<script" not in element.value.lower(), f"{where}: unescaped HTML"
            assert "onerror=" not in element.value.lower(), f"{where}: unescaped HTML"


def _has(widgets, key: str) -> bool:
    return any(w.key == key for w in widgets)


def _errors(at) -> list[str]:
    return [e.value for e in at.error]


# ------------------------------------------------------------------------------------------------
# Review sentiment
# ------------------------------------------------------------------------------------------------

GOOD = ["love", "great", "perfect", "gorgeous"]
BAD = ["terrible", "awful", "cheap", "ripped"]
FILL = ["the", "this", "dress", "fabric", "fit", "was", "really", "and", "my"]


def _reviews(n: int, seed: int) -> pd.DataFrame:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        positive = i % 2 == 0
        words = [rng.choice(FILL) for _ in range(rng.randint(4, 8))] + [rng.choice(GOOD if positive else BAD)]
        rng.shuffle(words)
        rows.append({"id": i, "comment": " ".join(words), "label": "pos" if positive else "neg"})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def nlp_store(tmp_path_factory):
    """A model store whose default sentiment model is a tiny BERT trained in seconds on clear-cut
    reviews (the real default takes minutes to build), as in the review-sentiment page tests."""
    import torch

    from lucid.core.store import ModelStore
    from lucid.domains.nlp.finetune import fine_tune
    from lucid.domains.nlp.model import DEFAULT_MODEL, RECIPE_VERSION, TrainConfig, tiny_classifier

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        data = _reviews(240, seed=0)
        clf = tiny_classifier(seed=0, device=torch.device("cpu"))
        y = (data["label"] == "pos").astype(int).to_numpy()
        fine_tune(
            clf, data["comment"].tolist(), y, TrainConfig(epochs=4, learning_rate=5e-3, warmup_fraction=0.0)
        )
    finally:
        torch.set_num_threads(threads)
    store = ModelStore(tmp_path_factory.mktemp("nlp-corpus-models"))
    meta = {
        "labels": clf.labels,
        "recipe_version": RECIPE_VERSION,
        "metrics": {"accuracy": 0.95, "macro_f1": 0.93, "roc_auc": 0.98, "n_test": 100},
        "baseline_metrics": {"accuracy": 0.9, "macro_f1": 0.88, "roc_auc": 0.95, "n_test": 100},
    }
    store.save("nlp", DEFAULT_MODEL, clf.save, meta)
    return store


@pytest.fixture
def nlp_page(app_test, nlp_store, monkeypatch):
    monkeypatch.setenv("LUCID_MODEL_DIR", str(nlp_store.root))
    at = app_test("app_pages/nlp.py", timeout=300)
    assert not at.exception and not at.error
    return at


def test_nlp_batch_upload_survives_the_corpus(nlp_page):
    at = nlp_page
    for item in _accepted(at, "nlp_batch_upload", _files("table", "text")):
        at.file_uploader(key="nlp_batch_upload").set_value((item.name, item.data, "text/csv")).run()
        _check(at, item)
        if _has(at.button, "nlp_batch_score"):
            at.button(key="nlp_batch_score").click().run()
            _check(at, item)
            labels = {m.label for m in at.metric}
            assert at.error or "Texts scored" in labels, f"{item.name}: neither a message nor a result"
            if not at.error:  # the scored texts go on to the word drivers (a batch of one included)
                if _has(at.slider, "nlp_drivers_sample"):
                    at.slider(key="nlp_drivers_sample").set_value(2)
                at.button(key="nlp_drivers_go").click().run()
                _check(at, item)
                captions = " ".join(c.value for c in at.caption)
                assert at.error or "over a random sample of" in captions, item.name
        else:
            assert at.error, f"{item.name}: neither a message nor a result"

    good = _reviews(30, seed=7)
    at.file_uploader(key="nlp_batch_upload").set_value(
        ("good.csv", good.to_csv(index=False).encode(), "text/csv")
    ).run()
    assert not at.exception and not at.error, _errors(at)
    at.selectbox(key="nlp_batch_column").set_value("comment").run()
    at.button(key="nlp_batch_score").click().run()
    assert not at.exception and not at.error, _errors(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Texts scored"] == "30" and metrics["Empty (not scored)"] == "0"
    table = next(d.value for d in at.dataframe if "status" in d.value.columns)
    scored = table[table["status"] == "scored"]
    truth = good.loc[scored["row"], "label"].map({"pos": "positive", "neg": "negative"}).to_numpy()
    assert (scored["label"].to_numpy() == truth).mean() >= 0.9


def test_nlp_train_upload_survives_the_corpus(nlp_page, nlp_store):
    at = nlp_page
    for k, item in enumerate(_accepted(at, "nlp_train_upload", _files("table", "text"))):
        at.file_uploader(key="nlp_train_upload").set_value((item.name, item.data, "text/csv")).run()
        _check(at, item)
        if _has(at.button, "nlp_train_go"):
            at.text_input(key="nlp_train_name").input(f"corpus-{k}")
            at.button(key="nlp_train_go").click().run()
            _check(at, item)
            assert at.error or at.success, f"{item.name}: neither a message nor a result"
        else:
            assert at.error, f"{item.name}: neither a message nor a result"
    assert not [m for m in nlp_store.list("nlp") if m.name.startswith("corpus-")]

    train = _reviews(24, seed=3)
    at.file_uploader(key="nlp_train_upload").set_value(
        ("labels.csv", train.to_csv(index=False).encode(), "text/csv")
    ).run()
    assert not at.exception and not at.error, _errors(at)
    at.selectbox(key="nlp_train_text").set_value("comment").run()
    at.selectbox(key="nlp_train_label").set_value("label")
    at.number_input(key="nlp_train_epochs").set_value(1)
    at.text_input(key="nlp_train_name").input("after-the-corpus")
    at.button(key="nlp_train_go").click().run()
    assert not at.exception and not at.error, _errors(at)
    if not any(
        "Saved as 'after-the-corpus'" in s.value for s in at.success
    ):  # 24 texts, 1 epoch: may fail the gate
        at.button(key="nlp_train_save_anyway").click().run()
    assert any("Saved as 'after-the-corpus'" in s.value for s in at.success)
    meta = nlp_store.load("nlp", "after-the-corpus").metadata
    assert meta["labels"] == ["neg", "pos"] and meta["n_test"] == 4
    assert "after-the-corpus" in at.selectbox(key="nlp_model").options


# ------------------------------------------------------------------------------------------------
# Recommendations
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def recommend_page(app_test, recommend_store, monkeypatch):
    """The recommendations page on the MovieLens default of ``recommend_store`` (tests/conftest.py)."""
    monkeypatch.setenv("LUCID_MODEL_DIR", str(recommend_store.root))
    at = app_test("app_pages/recommend.py", timeout=300)
    assert not at.exception and not at.error
    return at


def _log() -> pd.DataFrame:
    """Two groups of users with their own tastes (even users the first 13 products, odd users the
    rest), so that a trained recommender beats recommending what is popular and is saved."""
    rng = np.random.default_rng(0)
    rows = []
    for u in range(30):
        liked = np.arange(13) if u % 2 == 0 else np.arange(12, 25)
        for k, item in enumerate(rng.choice(liked, size=8, replace=False)):
            rows.append(
                {"user": f"u{u}", "item": f"p{item}", "rating": int(rng.integers(1, 6)), "time": 1000 * k + u}
            )
    return pd.DataFrame(rows)


def _items() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item": [f"p{i}" for i in range(25)],
            "title": [f"Product {i}" for i in range(25)],
            "category": ["shoes" if i % 2 else "bags" for i in range(25)],
        }
    )


def _train(at, item, name: str) -> None:
    """Click Train: a message and no result, or the result for this very model (never a stale one)."""
    at.text_input(key="recommend_new_name").set_value(name)
    at.button(key="recommend_train").click().run()
    _check(at, item)
    saved = [s.value for s in at.success if "Saved as" in s.value]
    held = [i.value for i in at.info if i.value.startswith(f"Not saved: '{name}'")]  # failed the gate
    if at.error:
        assert not saved and not held, f"{item.name}: a stale result beside the message: {saved or held}"
    else:
        assert (saved and f"'{name}'" in saved[0]) or held, f"{item.name}: neither a message nor a result"


def _choose_columns(at) -> None:
    """When the log's columns are not recognised, use the first ones, so that the values themselves
    reach the checks rather than stopping at 'Choose the user column'."""
    options = at.selectbox(key="recommend_user_col").options
    roles = ["recommend_user_col", "recommend_item_col", "recommend_rating_col"]
    for key, column in zip(roles, options[1:], strict=False):
        at.selectbox(key=key).set_value(column)
    at.run()


def test_recommend_uploads_survive_the_corpus(recommend_page, recommend_store):
    at = recommend_page
    corpus = _files("table", "text")
    # The interaction log.
    for k, item in enumerate(_accepted(at, "recommend_upload", corpus)):
        at.file_uploader(key="recommend_upload").set_value((item.name, item.data, "text/csv")).run()
        _check(at, item)
        if _has(at.button, "recommend_train"):
            _train(at, item, f"corpus-log-{k}")
            _choose_columns(at)
            _check(at, item)
            _train(at, item, f"corpus-log-{k}")
        else:
            assert at.error, f"{item.name}: neither a message nor a result"

    # A good log with each hostile file as the item table, then as the user table.
    log = _log()
    at.file_uploader(key="recommend_upload").set_value(
        ("log.csv", log.to_csv(index=False).encode(), "text/csv")
    ).run()
    assert not at.exception and not at.error, _errors(at)
    for key in ("recommend_items_upload", "recommend_users_upload"):
        for k, item in enumerate(_accepted(at, key, corpus)):
            at.file_uploader(key=key).set_value((item.name, item.data, "text/csv")).run()
            _check(at, item)
            _train(at, item, f"corpus-{key.split('_')[1]}-{k}")
            # No hostile table matches the log's ids: a broken or unmatched table is never ignored.
            assert at.error, f"{item.name} as {key}: trained as if the table were not there"
        at.file_uploader(key=key).set_value(None).run()
    assert not [m for m in recommend_store.list("recommend") if m.name.startswith("corpus-")]

    # The good log and item table still train a model with real metrics.
    at.file_uploader(key="recommend_items_upload").set_value(
        ("items.csv", _items().to_csv(index=False).encode(), "text/csv")
    ).run()
    assert not at.exception and not at.error, _errors(at)
    at.selectbox(key="recommend_items_id").set_value("item")
    at.selectbox(key="recommend_items_title").set_value("title")
    at.multiselect(key="recommend_items_cats").set_value(["category"])
    _train(at, HostileFile("items.csv", b"", (), "a good item table"), "after-the-corpus")
    assert not at.exception and not at.error, _errors(at)
    assert any("Saved as 'after-the-corpus'" in s.value for s in at.success)
    assert recommend_store.exists("recommend", "after-the-corpus")
    metrics = [d.value for d in at.dataframe if "full model" in d.value.columns][-1].set_index("metric")
    assert set(metrics.index) >= {"precision@10", "recall@10", "ndcg@10", "map@10", "hit_rate@10"}
    assert 0.0 < metrics.loc["hit_rate@10", "full model"] <= 1.0
