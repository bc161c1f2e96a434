"""The quality gate of the train-your-own flow: a recommender that does not beat popularity on the
same held-out users is not saved unless the user asks for it (service, CLI), and saved models can be
renamed and deleted from the command line."""

import json

import numpy as np
import pandas as pd
import pytest

from lucid.cli import main as cli_main
from lucid.core.errors import InvalidInputError
from lucid.domains.recommend.data import prepare_interactions
from lucid.domains.recommend.model import DEFAULT_MODEL
from lucid.domains.recommend.service import RecommendService
from tests.domains.recommend.test_service import TINY, synthetic_log, tiny_data


def shuffled_log() -> pd.DataFrame:
    """The two-taste log with its items shuffled across users: popularity is kept, taste is gone."""
    log = synthetic_log()
    log["item"] = np.random.default_rng(1).permutation(log["item"].to_numpy())
    return log.drop_duplicates(["user", "item"]).reset_index(drop=True)


def shuffled_data():
    return prepare_interactions(
        shuffled_log(),
        user_col="user",
        item_col="item",
        rating_col="rating",
        timestamp_col="time",
        rating_scale=(1, 5),
    )


def test_a_good_model_is_saved_with_its_gate(model_store):
    service = RecommendService(model_store)
    trained = service.train(tiny_data(), "good", config=TINY)
    gate = trained.gate
    assert trained.saved and gate.passed and gate.n_test == 60
    # Measured: NDCG@10 0.516 against 0.339 for popularity; the paired difference is clearly positive.
    assert gate.model > 1.3 * gate.baseline and gate.diff_low > 0
    assert gate.model == pytest.approx(trained.model.metrics["full model"]["ndcg@10"])
    assert gate.baseline == pytest.approx(trained.model.metrics["popularity"]["ndcg@10"])
    stored = model_store.load("recommend", "good").metadata["quality_gate"]
    assert stored == gate.as_dict() and stored["metric"] == "NDCG@10" and stored["chance"] == 0.0
    row = service.saved_models_table().set_index("Name").loc["good"]
    assert row["Held-out result"].startswith("NDCG@10 0.5") and row["Data"].startswith("60 users, 40 items")


def test_a_model_below_popularity_is_not_saved_and_says_why(model_store):
    service = RecommendService(model_store)
    trained = service.train(shuffled_data(), "shuffled", config=TINY)
    gate = trained.gate
    # Measured: NDCG@10 0.156 against 0.224 for popularity on the same 60 held-out users.
    assert not trained.saved and not gate.passed and not gate.beats_baseline
    assert gate.model < gate.baseline and gate.beats_chance
    assert gate.verdict().startswith("Not better than its baseline")
    assert "most popular items" in gate.verdict()
    assert not model_store.exists("recommend", "shuffled")
    assert "shuffled" not in service.model_names()
    saved = service.save_trained(trained)  # the user's explicit choice, later
    assert saved.saved and "shuffled" in service.model_names()
    meta = model_store.load("recommend", "shuffled").metadata
    assert meta["quality_gate"]["passed"] is False and meta["quality_gate"]["beats_baseline"] is False
    reloaded = RecommendService(model_store).load("shuffled")
    assert (
        reloaded.recommend("u3", n=5).table["item"].tolist()
        == trained.model.recommend("u3", n=5).table["item"].tolist()
    )


def test_save_anyway_saves_a_model_that_fails(model_store):
    service = RecommendService(model_store)
    trained = service.train(shuffled_data(), "kept", config=TINY, save_anyway=True)
    assert trained.saved and not trained.gate.passed
    assert model_store.load("recommend", "kept").metadata["quality_gate"]["passed"] is False
    with pytest.raises(InvalidInputError, match="built-in"):
        service.save_trained(type(trained)(DEFAULT_MODEL, trained.model, trained.gate, saved=False))


def _train_args(log_path, name, *extra):
    return [
        "recommend",
        "train",
        str(log_path),
        "--name",
        name,
        "--rating-col",
        "rating",
        "--time-col",
        "time",
        *extra,
    ]


def test_cli_train_gate_and_save_anyway(model_store, tmp_path, capsys):
    log = tmp_path / "shuffled.csv"
    shuffled_log().to_csv(log, index=False)
    assert cli_main(_train_args(log, "cli-bad")) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["saved"] is False and out["beats_baseline"] is False
    gate = out["quality_gate"]
    assert gate["metric"] == "NDCG@10" and gate["passed"] is False and gate["n_test"] == 60
    assert gate["model"] < gate["baseline"] and out["full model/ndcg@10"] == pytest.approx(
        gate["model"], abs=1e-4
    )
    service = RecommendService(model_store)
    assert "cli-bad" not in service.model_names()
    assert cli_main(_train_args(log, "cli-bad", "--save-anyway")) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["saved"] is True and out["quality_gate"]["passed"] is False
    assert "cli-bad" in RecommendService(model_store).model_names()


def test_cli_models_rename_and_delete(model_store, tmp_path, capsys):
    RecommendService(model_store).train(tiny_data(), "shop-a", config=TINY)
    assert cli_main(["recommend", "models", "--rename", "shop-a", "shop-b"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["renamed"] == {"from": "shop-a", "to": "shop-b"}
    assert [m["Name"] for m in out["saved"]] == ["shop-b"]
    assert out["saved"][0]["Held-out result"].startswith("NDCG@10")
    assert not model_store.exists("recommend", "shop-a") and model_store.exists("recommend", "shop-b")
    assert cli_main(["recommend", "models", "--delete", "shop-b"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["deleted"] == "shop-b" and out["saved"] == []
    assert not model_store.exists("recommend", "shop-b")
    assert cli_main(["recommend", "models", "--delete", DEFAULT_MODEL]) == 1
    assert "built-in" in capsys.readouterr().err
