"""The medical commands of the CLI: score a zip of scans (bad files reported), evaluate a labelled zip."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydicom.data import get_testdata_file

from tests.fixtures.medical.builders import make_dicom, make_zip

ROOT = Path(__file__).resolve().parents[3]


def test_cli_scores_a_zip_of_scans_and_reports_bad_files(model_store, tmp_path, capsys):
    from lucid.cli import main

    ct = Path(get_testdata_file("CT_small.dcm", download=False)).read_bytes()
    data = make_zip({"a/CT_small.dcm": ct, "a/broken.dcm": b"not dicom" * 30})
    (tmp_path / "in.zip").write_bytes(data)
    argv = ["medical", "score", str(tmp_path / "in.zip"), "--out", str(tmp_path / "out.csv"), "--explain"]
    assert main([*argv, "--model", "phydcm_ct"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["scored"] == 1 and summary["failed"] == 1
    frame = pd.read_csv(tmp_path / "out.csv")
    ok = frame[frame["file"] == "a/CT_small.dcm"].iloc[0]
    assert ok["p_notumor"] + ok["p_tumor"] == pytest.approx(1.0, abs=1e-4)
    assert 0 <= ok["gradcam_peak_row"] < 224
    assert "not a DICOM file" in frame[frame["file"] == "a/broken.dcm"].iloc[0]["error"]
    assert main([*argv, "--model", "no_such_model"]) == 1
    assert "phydcm_brain_mri" in capsys.readouterr().err


def test_cli_evaluate_on_labelled_zip_via_subprocess(model_store, tmp_path):
    pixels = np.random.default_rng(1).integers(0, 3000, (4, 24, 24)).astype(np.uint16)
    files = {f"{label}/{i}.dcm": make_dicom(pixels[i]) for label in ("notumor", "tumor") for i in range(4)}
    (tmp_path / "labelled.zip").write_bytes(make_zip(files))
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "lucid",
            "medical",
            "evaluate",
            str(tmp_path / "labelled.zip"),
            "--model",
            "phydcm_ct",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    metrics = json.loads(out.stdout.strip().splitlines()[-1])
    assert metrics["n_test"] == 8 and 0 <= metrics["accuracy"] <= 1
    assert sum(map(sum, metrics["confusion_matrix"])) == 8
    # Same images under both labels: the model cannot tell them apart, so AUC is exactly 0.5.
    assert metrics["per_class"]["tumor"]["auc"] == pytest.approx(0.5)
