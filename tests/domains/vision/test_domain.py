"""The vision domain's commands through the CLI: score a folder, train then evaluate."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lucid.cli import build_parser, request_from
from lucid.core.errors import InvalidInputError
from lucid.domains import DOMAINS
from lucid.domains.base import Request
from lucid.domains.vision.data import sample_images


def _encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def _request(command: str, **values) -> Request:
    """The request the CLI makes of ``lucid vision COMMAND ...`` (its own parser, its own options)."""
    argv = [command, values.pop("data")]
    for key, value in values.items():
        flag = "--" + key.replace("_", "-")
        argv += [flag] if value is True else [flag, str(value)]
    return request_from(build_parser(DOMAINS["vision"]).parse_args(argv))


def cli_run(request: Request) -> dict:
    return DOMAINS["vision"].run(request)


@pytest.mark.slow
def test_cli_score_folder_and_unknown_model(tmp_path, model_store, capsys):
    from lucid.cli import main

    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    for name, img in sample_images(["chelsea", "coffee"]).items():
        img.save(folder / "sub" / f"{name}.jpg")
    (folder / "notes.txt").write_text("=cmd|' /C calc'!A0")
    out = tmp_path / "scores.csv"
    assert main(["vision", "score", str(folder), "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["scored"] == 2 and summary["skipped"] == 1
    table = pd.read_csv(out, encoding="utf-8-sig")
    assert dict(zip(table["image"], table["top1"], strict=True))["sub/coffee.jpg"] == "espresso"
    assert main(["vision", "score", str(folder), "--out", str(out), "--model", "nope"]) == 1
    assert "efficientnet_lite0" in capsys.readouterr().err


def _colour_zip(path, n: int = 12) -> None:
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as zf:
        for label, channel in (("red", 0), ("blue", 2)):
            for i in range(n):
                arr = rng.integers(0, 60, (40, 40, 3)).astype(np.uint8)
                arr[..., channel] += 180
                zf.writestr(f"{label}/{i}.png", _encode(Image.fromarray(arr), "PNG"))


@pytest.mark.slow
def test_cli_train_then_evaluate(tmp_path, model_store):
    archive = tmp_path / "colours.zip"
    _colour_zip(archive)
    metrics = cli_run(_request("train", data=str(archive), name="colours", epochs=3, image_size=64))
    json.dumps(metrics)  # printable as the CLI's last line
    assert metrics["class_names"] == ["blue", "red"]
    assert metrics["accuracy"] >= metrics["majority_baseline_accuracy"]
    assert metrics["saved"] and metrics["beats_baseline"] and metrics["quality_gate"]["passed"]
    assert metrics["quality_gate"]["baseline"] == pytest.approx(metrics["majority_baseline_accuracy"])
    assert model_store.exists("vision", "colours")
    evaluated = cli_run(_request("evaluate", data=str(archive), model="colours"))
    assert evaluated["accuracy"] > 0.9 and evaluated["n"] == 24
    with pytest.raises(InvalidInputError, match="built-in"):
        cli_run(_request("train", data=str(archive), name="efficientnet_lite0", epochs=1))


def _last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.slow  # two fine-tuning runs through the CLI
def test_cli_train_keeps_a_model_that_fails_the_gate_only_with_save_anyway(tmp_path, model_store, capsys):
    from lucid.cli import main

    folder = tmp_path / "same"
    same = Image.fromarray(np.random.default_rng(1).integers(0, 255, (40, 40, 3)).astype(np.uint8))
    for label, n in (("a", 10), ("b", 7)):  # one picture for both classes: no model beats answering 'a'
        (folder / label).mkdir(parents=True)
        for i in range(n):
            same.save(folder / label / f"{i}.png")
    argv = ["vision", "train", str(folder), "--name", "same", "--epochs", "1", "--image-size", "64"]
    service = DOMAINS["vision"].service()
    assert main([*argv, "--no-augment"]) == 0
    summary = _last_json(capsys)
    assert summary["saved"] is False and summary["beats_baseline"] is False
    gate = summary["quality_gate"]
    assert gate["passed"] is False and gate["model"] == gate["baseline"] and gate["chance"] == 0.5
    assert summary["verdict"].startswith("Not better than its baseline")
    assert "same" not in service.model_names() and not model_store.exists("vision", "same")

    assert main([*argv, "--no-augment", "--save-anyway"]) == 0
    summary = _last_json(capsys)
    assert summary["saved"] is True and summary["quality_gate"]["passed"] is False
    assert "same" in service.model_names()
    assert model_store.load("vision", "same").metadata["quality_gate"] == summary["quality_gate"]

    assert main(["vision", "models", "--rename", "same", "kept"]) == 0
    listed = _last_json(capsys)
    assert listed["renamed"] == {"from": "same", "to": "kept"}
    assert [m["Name"] for m in listed["saved"]] == ["kept"]
    assert model_store.exists("vision", "kept") and not model_store.exists("vision", "same")
    assert main(["vision", "models", "--delete", "kept"]) == 0
    assert _last_json(capsys)["saved"] == [] and service.model_names() == ["efficientnet_lite0"]
    assert main(["vision", "models", "--delete", "efficientnet_lite0"]) == 1
    assert "built-in" in capsys.readouterr().err
