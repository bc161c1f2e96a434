"""The shared image tools on tiny models and synthetic images (seconds, no real weights)."""

from __future__ import annotations

import io
import warnings
import zipfile

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from lucid.core.errors import InvalidInputError, TrainingCancelled, TrainingError
from lucid.explain.explanation import additivity_error, make_explanation
from lucid.imaging.classifier import (
    FineTuneConfig,
    ImageClassifier,
    ImagePreprocessing,
    LabelledImages,
    blur_image,
    check_trainable,
    classification_metrics,
    faithfulness,
    fine_tune,
    gradcam,
    labelled_images_from_zip,
    load_classifier,
    save_classifier,
    shap_heatmap,
    stratified_split,
)

SIZE = 32


def _png(arr: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(arr).save(buffer, format="PNG")
    return buffer.getvalue()


def _left_bright_predict(views: np.ndarray) -> np.ndarray:
    """Two-class 'model': class 1's probability rises with the brightness of the image's left half."""
    views = np.asarray(views, dtype=np.float64)
    half = views.shape[2] // 2
    score = (views[:, :, :half, :].mean(axis=(1, 2, 3)) - 128.0) / 20.0
    p1 = 1.0 / (1.0 + np.exp(-score))
    return np.stack([1 - p1, p1], axis=1).astype(np.float32)


def _left_bright_view() -> np.ndarray:
    rng = np.random.default_rng(0)
    view = rng.integers(0, 40, (SIZE, SIZE, 3)).astype(np.uint8)
    view[4:28, 2:14] = 255  # a bright object on the left, with texture so blurring changes it
    view[8:24:2, 4:12] = 0
    return view


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return timm.create_model("test_efficientnet", pretrained=False, num_classes=3).eval()


def test_preprocessing_matches_timm_transform(tiny_model):
    prep = ImagePreprocessing.from_model(tiny_model, input_size=(3, 48, 48))
    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 255, (70, 90, 3)).astype(np.uint8))
    view = prep.view(image)
    assert view.shape == (48, 48, 3) and view.dtype == np.uint8
    expected = prep.eval_transform()(image)
    # A read-only view (as numpy gives for a PIL image) converts without torch's warning about
    # non-writable arrays (torch warns once per process, so this comes first), and stays unchanged.
    frozen = view[None].copy()
    frozen.flags.writeable = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = prep.to_tensor(frozen)[0]
    assert [str(w.message) for w in caught] == []
    np.testing.assert_array_equal(frozen[0], view)
    # The split transform (view -> tensor) reproduces timm's own transform up to uint8 rounding.
    assert got.shape == expected.shape
    assert float((got - expected).abs().max()) < 0.02
    # Float views give the same tensor and are not written to either.
    floats = view[None].astype(np.float32)
    torch.testing.assert_close(prep.to_tensor(floats)[0], got)
    np.testing.assert_array_equal(floats[0], view)


def test_classifier_batches_equal_single_images(tiny_model):
    prep = ImagePreprocessing.from_model(tiny_model, input_size=(3, 40, 40))
    clf = ImageClassifier(tiny_model, prep, ["a", "b", "c"], device="cpu", batch_size=3)
    rng = np.random.default_rng(2)
    images = [Image.fromarray(rng.integers(0, 255, (50, 60, 3)).astype(np.uint8)) for _ in range(5)]
    batched = clf.predict_images(images)
    single = np.concatenate([clf.predict_images([im]) for im in images])
    assert batched.shape == (5, 3)
    np.testing.assert_allclose(batched.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(batched, single, atol=1e-5)
    top = clf.top_k(images[:1], k=2)[0]
    assert [t[0] for t in top] == list(np.argsort(-batched[0])[:2])


def test_shap_heatmap_adds_up_and_points_at_the_evidence():
    view = _left_bright_view()
    expl = shap_heatmap(_left_bright_predict, view, 1, max_evals=80, batch_size=40, class_name="bright left")
    values = np.asarray(expl.values)
    assert values.shape == (SIZE, SIZE)
    flat = make_explanation(values.reshape(1, -1), [float(expl.base_values)])
    assert additivity_error(flat, _left_bright_predict(view[None])[:, 1]) < 1e-4
    # The right half does not enter the model: its attribution is (almost) nil.
    assert np.abs(values[:, SIZE // 2 :]).sum() < 0.05 * np.abs(values[:, : SIZE // 2]).sum()
    assert expl.output_names == "bright left"


def test_faithfulness_prefers_the_right_map():
    view = _left_bright_view()
    good = np.zeros((SIZE, SIZE))
    good[4:28, 2:14] = 1.0
    bad = np.zeros((SIZE, SIZE))
    bad[:, SIZE // 2 :] = 1.0  # all attribution on the half the model ignores
    good_scores = faithfulness(_left_bright_predict, view, good, 1, fractions=(0.1, 0.2), cells=8)
    bad_scores = faithfulness(_left_bright_predict, view, bad, 1, fractions=(0.1, 0.2), cells=8)
    for g, b in zip(good_scores, bad_scores, strict=True):
        assert g.top_drop > 0.02 and g.top_drop > g.random_drop + 0.02
        assert g.score > 0
        assert b.top_drop == pytest.approx(0.0, abs=1e-6) and b.score < g.score - 0.02
    assert good_scores[1].top_drop >= good_scores[0].top_drop
    with pytest.raises(InvalidInputError, match="must match"):
        faithfulness(_left_bright_predict, view, good[:10], 1)


def test_blur_removes_detail():
    view = _left_bright_view()
    blurred = blur_image(view)
    assert blurred.shape == view.shape
    assert blurred.std() < view.std()


def test_gradcam_map_and_model_left_unchanged(tiny_model):
    prep = ImagePreprocessing.from_model(tiny_model, input_size=(3, 48, 48))
    view = prep.view(Image.fromarray(_left_bright_view()))
    flags = [p.requires_grad for p in tiny_model.parameters()]
    cam = gradcam(tiny_model, prep, view, 1, layer="bn2", device="cpu")
    values = np.asarray(cam.values)
    assert values.shape == (48, 48)
    assert values.min() >= 0.0 and values.max() == pytest.approx(1.0) or values.max() == 0.0
    assert [p.requires_grad for p in tiny_model.parameters()] == flags
    assert all(p.grad is None for p in tiny_model.parameters())
    with pytest.raises(InvalidInputError, match="no layer"):
        gradcam(tiny_model, prep, view, 1, layer="no_such_layer", device="cpu")


def _zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def _colour(channel: int, seed: int) -> np.ndarray:
    arr = np.random.default_rng(seed).integers(0, 60, (24, 24, 3)).astype(np.uint8)
    arr[..., channel] += 180
    return arr


def test_zip_of_class_folders_nested_hidden_and_bad_files():
    good = _png(_colour(0, 0))
    files = {
        "set/train/red/a.png": good,
        "set/train/blue/b.png": _png(_colour(2, 1)),
        "set/test/red/c.png": good,
        "set/test/blue/d.png": _png(_colour(2, 2)),
        "set/train/red/.hidden.png": good,
        "__MACOSX/set/train/red/._a.png": b"junk",
        "set/train/red/notes.docx": b"not an image",
        "set/train/red/cut.png": good[:60],
        "set/train/red/dot.png": _png(np.zeros((1, 1, 3), np.uint8)),
        "loose.png": good,
    }
    data = labelled_images_from_zip(_zip(files))
    assert sorted(data.labels) == ["blue", "blue", "red", "red"]
    assert data.split is not None and sorted(data.split) == ["test", "test", "train", "train"]
    joined = " | ".join(data.skipped)
    for fragment in ("hidden", "notes.docx", "cut.png", "dot.png", "loose.png"):
        assert fragment in joined
    assert "truncated or corrupt" in joined and "1x1" in joined


def test_zip_with_csv_labels():
    files = {
        "imgs/1.png": _png(_colour(0, 3)),
        "imgs/2.png": _png(_colour(2, 4)),
        "labels.csv": b"file,label\nimgs/1.png,red\n2.png,blue\nmissing.png,red\n",
    }
    data = labelled_images_from_zip(_zip(files))
    assert dict(zip(data.names, data.labels, strict=True)) == {"imgs/1.png": "red", "imgs/2.png": "blue"}
    assert any("missing.png" in s for s in data.skipped)


def test_zip_refusals():
    with pytest.raises(InvalidInputError, match="unsafe path"):
        labelled_images_from_zip(_zip({"../evil/a.png": _png(_colour(0, 0))}))
    with pytest.raises(InvalidInputError, match="not a valid zip"):
        labelled_images_from_zip(b"PK\x03\x04 not really a zip")
    # Thousands of tiny files: every one is refused on its header, the whole answer is one clear message.
    tiny = _png(np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(InvalidInputError, match="No labelled images"):
        labelled_images_from_zip(_zip({f"c/{i}.png": tiny for i in range(2000)}))


def test_trainable_checks_and_split():
    with pytest.raises(TrainingError, match="only one"):
        check_trainable(["cat"] * 10)
    with pytest.raises(TrainingError, match="'dog' \\(1 image\\)"):
        check_trainable(["cat"] * 10 + ["dog"])
    labels = ["a"] * 40 + ["b"] * 20 + ["c"] * 3
    split = stratified_split(labels, val_fraction=0.2, test_fraction=0.2, seed=0)
    arr = np.asarray(labels)
    for cls in ("a", "b", "c"):
        parts = {p: int(((arr == cls) & (split == p)).sum()) for p in ("train", "val", "test")}
        assert min(parts.values()) >= 1
    assert int(((arr == "a") & (split == "test")).sum()) == 8


def test_classification_metrics_values():
    metrics = classification_metrics([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 1, 0], ["x", "y", "z"])
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["majority_class"] == "x" and metrics["majority_baseline_accuracy"] == pytest.approx(0.5)
    assert metrics["per_class"]["y"]["precision"] == pytest.approx(2 / 3)
    assert metrics["per_class"]["x"]["recall"] == pytest.approx(2 / 3)
    assert metrics["per_class"]["z"]["recall"] == 0.0
    assert metrics["confusion_matrix"] == [[2, 1, 0], [0, 2, 0], [1, 0, 0]]


def _colour_set(n: int = 24) -> LabelledImages:
    images, labels = [], []
    for i in range(n):
        channel = 0 if i % 2 else 2
        images.append(Image.fromarray(_colour(channel, 100 + i)))
        labels.append("red" if channel == 0 else "blue")
    return LabelledImages(images, labels, [f"{i}.png" for i in range(n)])


def test_fine_tune_learns_saves_and_reloads(model_store):
    torch.manual_seed(0)
    model = timm.create_model("test_efficientnet", pretrained=False)
    prep = ImagePreprocessing.from_model(model, input_size=(3, 32, 32))
    seen: list[float] = []
    result = fine_tune(
        model,
        prep,
        _colour_set(40),
        FineTuneConfig(mode="full", epochs=4, learning_rate=3e-3),
        device="cpu",
        progress=lambda f, _m: seen.append(f),
    )
    assert result.class_names == ["blue", "red"]
    assert result.split_sizes == {"train": 28, "val": 6, "test": 6}
    assert result.metrics["accuracy"] > result.metrics["majority_baseline_accuracy"]
    assert result.metrics["accuracy"] == pytest.approx(1.0)
    assert len(result.history) == 4 and seen == sorted(seen) and seen[-1] == 1.0
    stored = save_classifier(
        model_store,
        "vision",
        "colours",
        result.model,
        architecture="test_efficientnet",
        class_names=result.class_names,
        preprocessing=result.preprocessing,
        metadata={"metrics": result.metrics},
        reserved_names=["efficientnet_lite0"],
    )
    assert (stored.path / "model.safetensors").is_file() and not list(stored.path.glob("*.pkl"))
    loaded = load_classifier(model_store.load("vision", "colours"))
    images = _colour_set(6).images
    before = ImageClassifier(result.model, result.preprocessing, result.class_names, device="cpu")
    after = ImageClassifier(loaded.model, loaded.preprocessing, loaded.class_names, device="cpu")
    np.testing.assert_allclose(before.predict_images(images), after.predict_images(images), atol=1e-5)
    with pytest.raises(InvalidInputError, match="built-in"):
        save_classifier(
            model_store,
            "vision",
            "efficientnet_lite0",
            result.model,
            architecture="test_efficientnet",
            class_names=result.class_names,
            preprocessing=result.preprocessing,
            reserved_names=["efficientnet_lite0"],
        )


def test_fine_tune_can_be_cancelled_and_refuses_bad_sets():
    model = timm.create_model("test_efficientnet", pretrained=False)
    prep = ImagePreprocessing.from_model(model, input_size=(3, 32, 32))
    with pytest.raises(TrainingCancelled):
        fine_tune(
            model, prep, _colour_set(12), FineTuneConfig(epochs=2), device="cpu", should_stop=lambda: True
        )
    one_class = LabelledImages(_colour_set(6).images, ["red"] * 6, [str(i) for i in range(6)])
    with pytest.raises(TrainingError, match="at least two classes"):
        fine_tune(model, prep, one_class, device="cpu")
    single = _colour_set(7)
    single.labels[-1] = "green"
    with pytest.raises(TrainingError, match="'green' \\(1 image\\)"):
        fine_tune(model, prep, single, device="cpu")


@pytest.mark.parametrize("total", [1, 2, 3, 4, 10, 11, 37])
def test_one_cycle_schedule_runs_any_length(total):
    from lucid.imaging.classifier import one_cycle_schedule

    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.1)
    schedule = one_cycle_schedule(optimizer, 0.1, total)
    rates = []
    for step in range(total):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if step < total - 1:
            schedule.step()
    assert all(np.isfinite(rates)) and max(rates) <= 0.1 + 1e-9
    if total >= 4:
        assert rates[-1] < 0.1 * 0.05  # annealed well below the peak by the end
