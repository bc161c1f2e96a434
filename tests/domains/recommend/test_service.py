import json

import numpy as np
import pandas as pd
import pytest

from lucid.cli import main as cli_main
from lucid.core.errors import InvalidInputError, ModelNotFoundError, TrainingCancelled
from lucid.core.store import ModelStore
from lucid.domains.base import ModelCard
from lucid.domains.recommend.data import attach_item_table, prepare_interactions, temporal_split
from lucid.domains.recommend.model import DEFAULT_MODEL, BPRConfig
from lucid.domains.recommend.service import RecommendService
from lucid.domains.recommend.training import TrainConfig, train_recommender
from lucid.explain.explanation import additivity_error

TINY = TrainConfig(
    bpr=BPRConfig(dim=8, epochs=60, batch_size=256, lr=0.05), n_candidates=20, ranker_rounds=30
)


def synthetic_log(n_users: int = 60, n_items: int = 40, per_user: int = 14, seed: int = 0) -> pd.DataFrame:
    """Two taste groups: users of group A mostly pick items 0-19 (Action), group B items 20-39 (Drama)."""
    rng = np.random.default_rng(seed)
    half = n_items // 2
    weights = 1.0 / np.arange(1, half + 1)
    weights /= weights.sum()
    rows = []
    for u in range(n_users):
        own = 0 if u % 2 == 0 else half
        picks = set()
        while len(picks) < per_user:
            if rng.random() < 0.85:
                picks.add(own + int(rng.choice(half, p=weights)))
            else:
                picks.add((half - own) + int(rng.integers(half)))
        for k, item in enumerate(rng.permutation(sorted(picks))):
            liked = (item >= half) == (own == half)
            rows.append(
                {
                    "user": f"u{u}",
                    "item": f"i{item}",
                    "rating": int(rng.integers(4, 6) if liked else rng.integers(1, 4)),
                    "time": 1_700_000_000 + 86400 * k + 3600 * u,
                }
            )
    return pd.DataFrame(rows)


def item_table(n_items: int = 40) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item": [f"i{k}" for k in range(n_items)],
            "name": [f"Item {k}" for k in range(n_items)],
            "genre": ["Action" if k < n_items // 2 else "Drama" for k in range(n_items)],
        }
    )


def tiny_data():
    data = prepare_interactions(
        synthetic_log(),
        user_col="user",
        item_col="item",
        rating_col="rating",
        timestamp_col="time",
        rating_scale=(1, 5),
    )
    return attach_item_table(data, item_table(), id_col="item", title_col="name", category_cols=["genre"])


@pytest.fixture(scope="module")
def tiny_model():
    return train_recommender(tiny_data(), config=TINY)


def test_recommendations_never_repeat_known_items(tiny_model):
    top = tiny_model.recommend_all(5, reasons=False)
    known = set(zip(tiny_model.data.interactions.user, tiny_model.data.interactions.item, strict=True))
    assert len(top) == 60 * 5
    assert not {(u, i) for u, i in zip(top.user, top.item, strict=True)} & known
    assert top.groupby("user")["item"].nunique().eq(5).all()


def test_recommendations_follow_the_users_taste(tiny_model):
    top = tiny_model.recommend_all(5, reasons=False)
    group_a = top["user"].str[1:].astype(int) % 2 == 0
    item_is_a = top["item"].str[1:].astype(int) < 20
    assert (group_a == item_is_a).mean() > 0.65  # 0.5 if taste were ignored


def test_reasons_agree_in_sign_with_shap_and_add_up(tiny_model):
    recs = tiny_model.recommend("u3", n=8)
    assert list(recs.table["rank"]) == list(range(1, 9))
    assert recs.table["score"].is_monotonic_decreasing
    names = list(tiny_model.feature_names)
    for j, quoted in enumerate(recs.reason_features):
        for feature in quoted:
            assert recs.explanation.values[j, names.index(feature)] > 0
    margins = np.log(recs.table["score"] / (1 - recs.table["score"]))
    assert additivity_error(recs.explanation, margins.to_numpy()) < 1e-3
    assert recs.table["reason"].str.len().gt(10).all()


def test_similarity_reason_quotes_a_liked_item(tiny_model):
    recs = tiny_model.recommend("u0", n=10)
    history = tiny_model.history("u0")
    liked_titles = set(history.loc[history["rating"] >= tiny_model.data.like_threshold, "title"])
    quoted = [
        r
        for r, f in zip(recs.table["reason"], recs.reason_features, strict=True)
        if "similarity_to_liked" in f
    ]
    assert quoted
    for reason in quoted:
        phrase = next(p for p in reason.split("; ") if "ecause you rated" in p)
        assert any(
            phrase.endswith(f"{t} {r:g}/5") for t, r in zip(history.title, history.rating, strict=True)
        )
        assert any(t in phrase for t in liked_titles)


def test_unknown_user_and_cold_start(tiny_model):
    with pytest.raises(InvalidInputError, match="Unknown user id 'nobody'"):
        tiny_model.recommend("nobody")
    recs = tiny_model.recommend_new_user(["i0", "i1", "i2"], n=6)
    assert not set(recs.table["item"]) & {"i0", "i1", "i2"}
    assert (recs.table["item"].str[1:].astype(int) < 20).mean() >= 0.5
    with pytest.raises(InvalidInputError):
        tiny_model.recommend_new_user([], n=3)


def test_similar_items_share_the_group(tiny_model):
    similar = tiny_model.similar_items("i0", n=5)
    assert "i0" not in set(similar["item"])
    assert similar["similarity"].is_monotonic_decreasing
    assert (similar["item"].str[1:].astype(int) < 20).mean() >= 0.8


def test_metrics_for_all_three_systems(tiny_model):
    table = tiny_model.metrics_table()
    assert list(table.columns) == ["metric", "popularity", "candidate generator", "full model"]
    metrics = tiny_model.metrics
    for system in metrics.values():
        assert 0 <= system["ndcg@10"] <= 1 and 0 <= system["coverage@10"] <= 1
    assert metrics["full model"]["ndcg@10"] > 1.2 * metrics["popularity"]["ndcg@10"]
    assert metrics["full model"]["coverage@10"] > metrics["popularity"]["coverage@10"]
    assert metrics["full model"]["users"] == 60


def test_split_used_for_metrics_is_the_temporal_one():
    data = tiny_data()
    train, test = temporal_split(data.interactions)
    last_train = train.groupby("user")["timestamp"].max()
    first_test = test.groupby("user")["timestamp"].min()
    assert (last_train.reindex(first_test.index) <= first_test).all()


def test_train_save_reload_and_names(model_store):
    service = RecommendService(model_store)
    trained = service.train(tiny_data(), "my shop", config=TINY)
    assert trained.saved and trained.gate.passed
    model = trained.model
    assert "my shop" in service.model_names()
    stored = model_store.load("recommend", "my shop")
    assert stored.metadata["metrics"]["full model"]["users"] == 60
    reloaded = RecommendService(model_store).load("my shop")
    a, b = model.recommend("u5").table, reloaded.recommend("u5").table
    assert a["item"].tolist() == b["item"].tolist()
    assert np.allclose(a["score"], b["score"], atol=1e-5)
    with pytest.raises(InvalidInputError, match="built-in"):
        service.train(tiny_data(), DEFAULT_MODEL, config=TINY)
    with pytest.raises(ModelNotFoundError, match="Valid names:.*movielens-100k"):
        service.load("no-such-model")


def test_card_of_a_saved_model_and_of_a_default_not_built_yet(model_store):
    service = RecommendService(model_store)
    service.train(tiny_data(), "carded", config=TINY)
    card = service.card("carded")
    assert isinstance(card, ModelCard) and "uploaded" in card.model
    sections = card.sections()
    metrics = sections["Held-out test metrics"]
    assert list(metrics.columns) == ["metric", "popularity", "candidate generator", "full model"]
    assert metrics.set_index("metric").loc["users", "full model"] == 60
    assert sections["Size"].startswith("60 users, 40 items")
    assert "per-user latest 20% by time" in sections["Training and test data"]
    assert "not a causal account" in sections["Limits"]
    default = service.card(DEFAULT_MODEL)  # not built in this store: the registry's facts, no metrics
    assert "commercial use is forbidden" in default.licence and "943 users" in default.data
    assert isinstance(default.metrics, str) and "Size" not in default.details
    with pytest.raises(ModelNotFoundError):
        service.card("no-such-model")


def test_cancelled_training_saves_nothing(model_store):
    service = RecommendService(model_store)
    with pytest.raises(TrainingCancelled):
        service.train(tiny_data(), "stopped", config=TINY, should_stop=lambda: True)
    assert not model_store.exists("recommend", "stopped")


def test_cli_train_score_evaluate(model_store, tmp_path, capsys):
    log = tmp_path / "log.csv"
    synthetic_log().to_csv(log, index=False)
    args = [
        "recommend",
        "train",
        str(log),
        "--name",
        "cli-model",
        "--rating-col",
        "rating",
        "--time-col",
        "time",
    ]
    assert cli_main(args) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["full model/ndcg@10"] > out["popularity/ndcg@10"]
    assert out["saved"] is True and out["beats_baseline"] is True and out["quality_gate"]["passed"] is True
    users = tmp_path / "users.csv"
    pd.DataFrame({"user": ["u1", "u2"]}).to_csv(users, index=False)
    dest = tmp_path / "top.csv"
    assert (
        cli_main(["recommend", "score", str(users), "--model", "cli-model", "--out", str(dest), "--top", "3"])
        == 0
    )
    top = pd.read_csv(dest, encoding="utf-8-sig")
    assert len(top) == 6 and set(top["user"]) == {"u1", "u2"} and top["reason"].notna().all()
    pd.DataFrame({"user": ["ghost"]}).to_csv(users, index=False)
    assert cli_main(["recommend", "score", str(users), "--model", "cli-model", "--out", str(dest)]) == 1
    assert "unknown" in capsys.readouterr().err
    assert cli_main(["recommend", "score", str(users), "--model", "nope", "--out", str(dest)]) == 1
    assert "Valid names" in capsys.readouterr().err
    assert cli_main(["recommend", "evaluate", str(log), "--time-col", "time", "--item-col", "sku"]) == 1
    assert "item column 'sku' is not in the table" in capsys.readouterr().err
    assert cli_main(["recommend", "evaluate", str(log), "--time-col", "time"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["full model/users"] == 60
    assert set(metrics) >= {f"{s}/ndcg@10" for s in ("popularity", "candidate generator", "full model")}


@pytest.fixture(scope="session")
def default_store(tmp_path_factory):
    """The real MovieLens default, built once per test session (shared with the page tests)."""
    store = ModelStore(tmp_path_factory.getbasetemp() / "recommend-default-models")
    RecommendService(store).ensure_defaults()
    return store


@pytest.mark.slow
def test_default_model_beats_popularity(default_store):
    model = RecommendService(default_store).load(DEFAULT_MODEL)
    metrics = model.metrics
    assert metrics["full model"]["users"] == 943
    assert metrics["full model"]["ndcg@10"] >= 1.5 * metrics["popularity"]["ndcg@10"]
    assert metrics["full model"]["ndcg@10"] > metrics["candidate generator"]["ndcg@10"]
    recs = model.recommend("196")
    assert not set(recs.table["item"]) & set(model.history("196")["item"])
    assert RecommendService(default_store).ensure_defaults() == []


def test_cold_start_reasons_quote_chosen_items_without_ratings(tiny_model):
    recs = tiny_model.recommend_new_user(["i0", "i1"], n=5)
    for reason, quoted in zip(recs.table["reason"], recs.reason_features, strict=True):
        assert "you rated" not in reason
        if "similarity_to_liked" in quoted:
            assert "ecause you chose Item 0" in reason or "ecause you chose Item 1" in reason
    with pytest.raises(InvalidInputError, match="Unknown item id 'nope'"):
        tiny_model.recommend_new_user(["nope"])


def test_popularity_bias_counts_and_figures(tiny_model):
    from lucid.ui.recommend_plots import metrics_comparison, popularity_bias

    bias = tiny_model.popularity_bias(n=5)
    assert bias["full model"].sum() == 60 * 5 and bias["popularity"].sum() == 60 * 5
    assert bias["users"].is_monotonic_decreasing
    # The baseline only ever recommends from the head of the popularity ranking.
    assert bias.loc[bias["popularity"] > 0, "popularity rank"].max() <= 5 + 14
    fig = popularity_bias(bias)
    assert [t.name.split(" ")[0] for t in fig.data] == ["popularity", "full"]
    bars = metrics_comparison(tiny_model.metrics_table())
    assert [t.name for t in bars.data] == ["popularity", "candidate generator", "full model"]
    assert list(bars.data[2].y) == pytest.approx(
        [tiny_model.metrics["full model"][m] for m in bars.data[2].x]
    )


def test_implicit_events_without_time_or_item_table():
    log = synthetic_log()[["user", "item"]]
    data = prepare_interactions(log, user_col="user", item_col="item")
    assert not data.has_ratings and not data.has_time
    model = train_recommender(data, config=TINY)
    assert model.info["split"] == "per-user random 20%"
    assert model.feature_names == [
        "cf_rank",
        "similarity_to_liked",
        "similarity_to_recent",
        "popularity",
        "user_activity",
    ]
    recs = model.recommend("u2", n=5)
    assert "rating" not in model.history("u2").columns
    assert not recs.table["reason"].str.contains("rated").any()
    assert model.metrics["full model"]["users"] == 60
