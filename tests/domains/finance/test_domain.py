"""The credit-risk commands of the CLI: train, score (with explanations) and evaluate."""

import json

import pandas as pd
import pytest

from .tables import synthetic


def test_cli_train_score_evaluate(model_store, tmp_path, german_store, capsys):
    from lucid.cli import main

    data = synthetic(400)
    train_file = tmp_path / "train.csv"
    data.to_csv(train_file, index=False)
    assert main(["finance", "train", str(train_file), "--target", "default", "--name", "cli-model"]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["model"] == "cli-model" and 0.5 < metrics["auc"] <= 1.0
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
