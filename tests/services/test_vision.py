"""The vision service: uploads (good and bad), the real ImageNet model, explanations, CLI."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lucid.cli import build_parser, request_from
from lucid.core.errors import InvalidInputError, ModelNotFoundError
from lucid.domains import DOMAINS
from lucid.domains.base import Request
from lucid.domains.vision.service import (
    DEFAULT_MODEL,
    VisionService,
    ensure_default_models,
    read_uploaded_images,
    sample_images,
)
from lucid.explain.explanation import additivity_error, make_explanation

CATS = {"tiger cat", "Egyptian cat", "tabby, tabby cat"}


def _encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def test_uploads_in_every_mode_are_converted_to_rgb():
    red = (200, 30, 40)
    rgb = Image.new("RGB", (40, 30), red)
    sixteen = Image.fromarray(np.tile(np.arange(40, dtype=np.uint16) * 1000, (30, 1)))
    alpha = Image.new("RGBA", (40, 30), (0, 0, 255, 0))  # fully transparent blue -> white
    palette = rgb.convert("P", palette=Image.ADAPTIVE)
    cmyk = rgb.convert("CMYK")
    gif = [Image.new("P", (40, 30), 1), Image.new("P", (40, 30), 2)]
    gif_bytes = io.BytesIO()
    gif[0].save(gif_bytes, format="GIF", save_all=True, append_images=gif[1:])
    files = [
        ("a.png", _encode(rgb, "PNG")),
        ("b.tiff", _encode(sixteen, "TIFF")),
        ("c.png", _encode(alpha, "PNG")),
        ("d.bmp", _encode(palette, "BMP")),
        ("e.jpg", _encode(cmyk, "JPEG", quality=95)),
        ("f.webp", _encode(rgb, "WEBP", lossless=True)),
        ("g.gif", gif_bytes.getvalue()),
    ]
    out = read_uploaded_images(files)
    assert out.names == [n for n, _ in files] and out.problems == []
    arrays = {n: np.asarray(im) for n, im in zip(out.names, out.images, strict=True)}
    assert all(a.dtype == np.uint8 and a.shape == (30, 40, 3) for a in arrays.values())
    assert tuple(arrays["a.png"][0, 0]) == red and tuple(arrays["f.webp"][0, 0]) == red
    assert arrays["b.tiff"][0, 0, 0] == 0 and arrays["b.tiff"][0, -1, 0] == 255  # 16-bit scaled to 8
    assert tuple(arrays["c.png"][0, 0]) == (255, 255, 255)
    assert np.abs(arrays["e.jpg"][0, 0].astype(int) - red).max() < 12
    assert np.abs(arrays["d.bmp"][0, 0].astype(int) - red).max() < 12


def test_bad_uploads_are_listed_not_fatal():
    good = _encode(Image.new("RGB", (64, 64), (10, 200, 10)), "JPEG")
    bomb = io.BytesIO()
    Image.new("1", (12000, 12000)).save(bomb, format="PNG")  # 144 MP declared, tiny file
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("deep/er/folder/ok.jpg", good)
        zf.writestr(".hidden/secret.jpg", good)
        zf.writestr("deep/readme.txt", b"hello")
    out = read_uploaded_images(
        [
            ("ok.jpg", good),
            ("text.jpg", b"definitely not an image" * 5),
            ("cut.jpg", good[: len(good) // 2]),
            ("bomb.png", bomb.getvalue()),
            ("dot.png", _encode(Image.new("RGB", (1, 1)), "PNG")),
            ("set.zip", zipped.getvalue()),
        ]
    )
    assert out.names == ["ok.jpg", "set.zip/deep/er/folder/ok.jpg"]
    problems = " | ".join(out.problems)
    assert "'text.jpg' is not an image" in problems
    assert "'cut.jpg' is truncated or corrupt" in problems
    assert "bomb.png" in problems and "megapixels" in problems
    assert "'dot.png' is only 1x1 pixels" in problems
    assert "readme.txt: not an image file" in problems and "secret.jpg (hidden)" in problems
    with pytest.raises(InvalidInputError, match="No usable image"):
        read_uploaded_images([("x.png", b"\x89PNG\r\n\x1a\n broken")])
    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../../etc/a.jpg", good)
    with pytest.raises(InvalidInputError, match="unsafe path"):
        read_uploaded_images([("evil.zip", evil.getvalue())])


def test_unknown_model_lists_valid_names(model_store):
    service = VisionService(model_store)
    with pytest.raises(ModelNotFoundError, match="efficientnet_lite0"):
        service.load("resnet9000")
    with pytest.raises(ModelNotFoundError, match="Valid names"):
        service.model_card("../../etc")
    with pytest.raises(ModelNotFoundError, match="chelsea"):
        sample_images(["moon"])


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    from lucid.core.store import ModelStore

    return VisionService(ModelStore(tmp_path_factory.mktemp("store")))


@pytest.mark.slow
def test_real_model_recognises_the_sample_photos(service):
    table = service.classify(sample_images(["chelsea", "coffee"]), DEFAULT_MODEL)
    assert table.loc[0, "top1"] in CATS
    assert set(table.loc[0, [f"class_{i}" for i in (1, 2, 3)]]) == CATS  # all three top classes are cats
    assert table.loc[1, "top1"] == "espresso" and table.loc[1, "probability"] > 0.9
    card = service.model_card(DEFAULT_MODEL)
    assert card["Licence"] == "Apache-2.0" and "75.1" in card["Published ImageNet top-1"]


@pytest.fixture(scope="module")
def sample_explanations(service):
    """SHAP + Grad-CAM for the top class of two sample photos, at the page's default SHAP budget."""
    photos = sample_images(["chelsea", "coffee"])
    return {name: service.explain(img, DEFAULT_MODEL) for name, img in photos.items()}


@pytest.mark.slow
@pytest.mark.parametrize("photo", ["chelsea", "coffee"])
def test_real_explanations_add_up_and_are_faithful(sample_explanations, photo):
    result = sample_explanations[photo]
    assert (result.class_name in CATS) if photo == "chelsea" else (result.class_name == "espresso")
    values = np.asarray(result.shap.values)
    flat = make_explanation(values.reshape(1, -1), [float(result.shap.base_values)])
    assert additivity_error(flat, [result.probability]) < 1e-3
    # Blurring the top-SHAP 10% / 20% lowers the class probability more than random regions of that size.
    assert [s.fraction for s in result.shap_faithfulness] == [0.1, 0.2]
    for score in result.shap_faithfulness:
        assert score.top_drop > score.random_drop
    assert np.asarray(result.gradcam.values).shape == values.shape == (224, 224)
    regions = result.region_table()
    assert regions["SHAP value"].sum() == pytest.approx(values.sum(), rel=1e-4, abs=1e-5)


@pytest.mark.slow
def test_explain_any_class_and_bad_class(service):
    photo = sample_images(["coffee"])["coffee"]
    cup = service.class_names(DEFAULT_MODEL).index("cup")
    result = service.explain(photo, DEFAULT_MODEL, class_index=cup, max_evals=50)
    assert result.class_name == "cup" and result.probability < 0.1
    with pytest.raises(InvalidInputError, match="out of range"):
        service.explain(photo, DEFAULT_MODEL, class_index=1000, max_evals=50)


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
    assert model_store.exists("vision", "colours")
    evaluated = cli_run(_request("evaluate", data=str(archive), model="colours"))
    assert evaluated["accuracy"] > 0.9 and evaluated["n"] == 24
    with pytest.raises(InvalidInputError, match="built-in"):
        cli_run(_request("train", data=str(archive), name="efficientnet_lite0", epochs=1))


@pytest.mark.slow
def test_ensure_default_models_checks_the_weights(model_store):
    messages: list[str] = []
    assert ensure_default_models(progress=lambda _f, m: messages.append(m), store=model_store) == [
        DEFAULT_MODEL
    ]
    assert "chelsea -> tiger cat" in messages[-1] and "coffee -> espresso" in messages[-1]
