"""Every hostile file through each domain's CLI that accepts its kind: a result or one clear error line.

The command must never crash with a traceback (exit code 0 with an output, or 1 with ``error: ...``).
"""

import os

import numpy as np
import pandas as pd
import pytest

from lucid.cli import main
from tests.hostile.corpus import by_kind

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile-models")
    old = os.environ.get("LUCID_MODEL_DIR")
    os.environ["LUCID_MODEL_DIR"] = str(root)
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"amount": rng.normal(size=300), "label": rng.integers(0, 2, 300)})
    train.to_csv(root / "train.csv", index=False)
    # Random labels: no better than chance, saved anyway so that the hostile files reach its scoring.
    argv = ["finance", "train", str(root / "train.csv"), "--target", "label", "--name", "hostile"]
    assert main([*argv, "--save-anyway"]) == 0
    yield root
    if old is None:
        os.environ.pop("LUCID_MODEL_DIR", None)
    else:
        os.environ["LUCID_MODEL_DIR"] = old


COMMANDS = {
    "finance": (("table",), lambda f, out: ["finance", "score", f, "--model", "hostile", "--out", out]),
    "nlp": (
        ("text", "table"),
        lambda f, out: ["nlp", "train", f, "--target", "label", "--name", "h", "--epochs", "1"],
    ),
    "vision": (("image", "archive"), lambda f, out: ["vision", "score", f, "--out", out]),
    "medical": (("dicom", "nifti", "image"), lambda f, out: ["medical", "score", f, "--out", out]),
    "recommend": (
        ("table",),
        lambda f, out: ["recommend", "train", f, "--user-col", "text", "--item-col", "label", "--name", "h"],
    ),
}

CASES = [
    (domain, item)
    for domain, (kinds, _) in COMMANDS.items()
    for item in {f.name: f for kind in kinds for f in by_kind(kind)}.values()
]


@pytest.mark.parametrize("domain, item", CASES, ids=[f"{d}-{f.name}" for d, f in CASES])
def test_cli_answers_hostile_file_cleanly(domain, item, store, tmp_path, capsys):
    path = tmp_path / item.name
    path.write_bytes(item.data)
    out = tmp_path / "out.csv"
    code = main(COMMANDS[domain][1](str(path), str(out)))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "Traceback" not in captured.out
    assert code in (0, 1), f"exit {code}: {captured.err[-500:]}"
    if code == 1:
        error_lines = [line for line in captured.err.splitlines() if line.startswith("error: ")]
        assert error_lines and len(error_lines[-1]) > 15
    elif COMMANDS[domain][1]("x", "y")[1] == "score":
        assert out.is_file() and out.stat().st_size > 0
