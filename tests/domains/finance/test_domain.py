"""The credit-risk commands of the CLI: train, score (with explanations) and evaluate."""

import json

import pandas as pd
import pytest

from .tables import shuffled, synthetic


def test_cli_train_score_evaluate(model_store, tmp_path, german_store, capsys):
    from lucid.cli import main

    data = synthetic(400)
    train_file = tmp_path / "train.csv"
    data.to_csv(train_file, index=False)
    assert main(["finance", "train", str(train_file), "--target", "default", "--name", "cli-model"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["model"] == "cli-model" and 0.5 < metrics["auc"] <= 1.0
    assert metrics["saved"] is True and metrics["beats_baseline"] is True
    gate = metrics["quality_gate"]
    assert gate["passed"] and gate["metric"] == "ROC AUC" and gate["n_test"] == 120
    assert gate["model"] == pytest.approx(metrics["auc"], abs=1e-6)
    assert gate["baseline"] == pytest.approx(metrics["baseline_auc"], abs=1e-6)
    assert gate["baseline"] < gate["model"]
    apply = data.drop(columns="default").head(30).assign(note="=HYPERLINK(1)")
    apply_file, out = tmp_path / "apply.csv", tmp_path / "scored.csv"
    apply.to_csv(apply_file, index=False)
    assert (
        main(["finance", "score", str(apply_file), "--model", "cli-model", "--out", str(out), "--explain"])
        == 0
    )
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    scored = pd.read_csv(out)
    assert summary["rows"] == 30 and "shap_income" in scored.columns and "reason_4" in scored.columns
    assert "note" not in scored.columns  # ignored extra column never comes back
    assert summary["model"] == "cli-model" and summary["mean_pd"] == pytest.approx(scored["pd"].mean())
    assert summary["rejected"] == int((scored["pd"] >= 0.5).sum())
    assert any("note" in w for w in summary["warnings"])  # the extra column is reported, not silently dropped
    assert main(["finance", "evaluate", str(train_file), "--model", "cli-model", "--target", "default"]) == 0
    evaluated = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert evaluated["rows"] == 400 and evaluated["auc"] > 0.6
    assert main(["finance", "score", str(apply_file), "--model", "nope", "--out", str(out)]) == 1
    assert "Valid names" in capsys.readouterr().err


def test_cli_saves_a_model_that_fails_the_gate_only_with_save_anyway(model_store, tmp_path, capsys):
    from lucid.cli import main
    from lucid.domains import DOMAINS

    noise = tmp_path / "noise.csv"
    shuffled(300).to_csv(noise, index=False)
    service = DOMAINS["finance"].service()
    assert main(["finance", "train", str(noise), "--target", "default", "--name", "noise"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["saved"] is False and out["quality_gate"]["passed"] is False
    assert out["beats_baseline"] is out["quality_gate"]["beats_baseline"]
    assert out["quality_gate"]["model_ci"][0] < 0.5 and out["quality_gate"]["n_test"] == 90
    assert "noise" not in service.model_names()

    argv = ["finance", "train", str(noise), "--target", "default", "--name", "noise", "--save-anyway"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["saved"] is True and out["quality_gate"]["passed"] is False
    assert "noise" in service.model_names()
    assert service.stored("noise").metadata["quality_gate"] == out["quality_gate"]

    assert main(["finance", "models", "--rename", "noise", "kept noise"]) == 0
    listed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert listed["renamed"] == {"from": "noise", "to": "kept noise"}
    assert [m["Name"] for m in listed["saved"]] == ["kept noise"]
    assert service.saved_names() == ["kept noise"] and model_store.exists("finance", "kept noise")
    assert not model_store.exists("finance", "noise")
    assert main(["finance", "models", "--rename", "kept noise", "german_credit"]) == 1
    assert "built-in" in capsys.readouterr().err
    assert main(["finance", "models", "--delete", "kept noise"]) == 0
    listed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert listed["deleted"] == "kept noise" and listed["saved"] == []
    assert service.saved_names() == [] and model_store.list("finance") == []
