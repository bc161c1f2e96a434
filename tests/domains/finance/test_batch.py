"""Finance batch scoring + explanations on a local 2-process Dask cluster equals the single-process run."""

import json

import numpy as np
import pandas as pd
import pytest

from lucid.cli import main


def _applicants(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    income = rng.lognormal(8, 0.5, n)
    debt = rng.uniform(0, 1.5, n)
    region = rng.choice(["north", "south", "east"], n)
    logit = -2 + 1.8 * debt - 0.0002 * income + (region == "south") * 0.8
    default = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame(
        {"income": income.round(0), "debt_ratio": debt.round(3), "region": region, "default": default}
    )


@pytest.mark.slow
def test_dask_score_explain_equals_local_row_for_row(model_store, tmp_path, capsys):
    train_file, apply_file = tmp_path / "train.csv", tmp_path / "apply.csv"
    _applicants(600, 0).to_csv(train_file, index=False)
    _applicants(250, 1).drop(columns="default").to_csv(apply_file, index=False)
    # Linear risk: the logistic baseline is as good as the trees, and equality is what is tested here.
    argv = ["finance", "train", str(train_file), "--target", "default", "--name", "dist", "--save-anyway"]
    assert main(argv) == 0
    capsys.readouterr()
    outs = {}
    for engine in ("local", "dask"):
        out = tmp_path / f"{engine}.csv"
        argv = [
            "finance",
            "score",
            str(apply_file),
            "--model",
            "dist",
            "--out",
            str(out),
            "--explain",
            "--engine",
            engine,
            "--workers",
            "2",
            "--partition-rows",
            "60",
        ]
        assert main(argv) == 0
        summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert summary["engine"] == engine and summary["partitions"] == 5 and summary["rows"] == 250
        outs[engine] = pd.read_csv(out)
    local, dask = outs["local"], outs["dask"]
    assert "shap_debt_ratio" in local.columns and "reason_1" in local.columns
    pd.testing.assert_frame_equal(local, dask)
    # Partitioning does not change the answer: the same rows scored in one piece agree too.
    whole = tmp_path / "whole.csv"
    assert (
        main(
            [
                "finance",
                "score",
                str(apply_file),
                "--model",
                "dist",
                "--out",
                str(whole),
                "--explain",
                "--partition-rows",
                "100000",
            ]
        )
        == 0
    )
    pd.testing.assert_frame_equal(pd.read_csv(whole), local)
