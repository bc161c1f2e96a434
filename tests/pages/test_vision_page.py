"""The Vision page through AppTest: upload -> classify -> explain, batch and its report, train your own
(and stop it), bad input."""

from __future__ import annotations

import base64
import html
import io
import re
import zipfile

import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from lucid.explain.explanation import additivity_error, make_explanation
from lucid.ui.widgets import TRAINING_STOPPED, TrainingRun

CATS = {"tiger cat", "Egyptian cat", "tabby, tabby cat"}

pytestmark = pytest.mark.slow  # the page runs the real ImageNet model


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _errors(at) -> list[str]:
    return [e.value for e in at.error]


def test_upload_classify_explain(app_test, model_store):
    at = app_test("app_pages/vision.py")
    assert not at.exception
    at.radio(key="vision_source").set_value("Upload your own").run()
    at.file_uploader(key="vision_upload").set_value(
        [("coffee.png", _png(skdata.coffee()), "image/png"), ("cat.png", _png(skdata.chelsea()), "image/png")]
    )
    at.run()
    assert not at.exception and not _errors(at)
    predictions = at.session_state["vision_predictions"]
    assert list(predictions["image"]) == ["coffee.png", "cat.png"]
    assert predictions.loc[0, "top1"] == "espresso" and predictions.loc[0, "probability"] > 0.8
    assert predictions.loc[1, "top1"] in CATS
    assert any(m.label == "Top class" and m.value == "espresso" for m in at.metric)

    at.selectbox(key="vision_explain_image").set_value("cat.png")
    at.select_slider(key="vision_evals").set_value(50)
    at.button(key="vision_explain_button").click().run()
    assert not at.exception and not _errors(at)
    shown = at.session_state["vision_explanation"]
    result = shown["result"]
    assert shown["image"] == "cat.png" and result.class_name == predictions.loc[1, "top1"]
    flat = make_explanation(np.asarray(result.shap.values).reshape(1, -1), [float(result.shap.base_values)])
    assert additivity_error(flat, [result.probability]) < 1e-3
    assert result.gradcam.values.shape == (224, 224) and float(result.gradcam.values.max()) == pytest.approx(
        1.0
    )
    faith = result.faithfulness_table()
    assert set(faith["method"]) == {"SHAP", "Grad-CAM"} and len(faith) == 4
    # The opacity slider redraws without recomputing.
    at.slider(key="vision_opacity").set_value(0.8).run()
    assert at.session_state["vision_explanation"]["result"] is result or not at.exception


def test_samples_batch_tab_has_table_and_downloads(app_test, model_store):
    at = app_test("app_pages/vision.py")
    assert not at.exception
    predictions = at.session_state["vision_predictions"]
    assert list(predictions["image"]) == ["chelsea", "coffee"]
    assert predictions.loc[0, "top1"] in CATS and predictions.loc[1, "top1"] == "espresso"
    # Probabilities of the top 5 are sorted and sum to at most 1.
    probs = predictions[[f"prob_{i}" for i in range(1, 6)]].to_numpy()
    assert np.all(np.diff(probs, axis=1) <= 0) and np.all(probs.sum(axis=1) <= 1.0 + 1e-6)


def test_bad_uploads_get_clear_messages(app_test, model_store):
    at = app_test("app_pages/vision.py")
    at.radio(key="vision_source").set_value("Upload your own").run()
    at.file_uploader(key="vision_upload").set_value(
        ("notes.jpg", b"this is not an image at all" * 10, "image/jpeg")
    )
    at.run()
    assert not at.exception
    errors = _errors(at)
    assert errors and "No usable image" in errors[0] and "not an image" in errors[0]
    # One good and one truncated image: the good one is classified, the bad one listed.
    jpeg = io.BytesIO()
    Image.fromarray(skdata.coffee()).save(jpeg, format="JPEG")
    at.file_uploader(key="vision_upload").set_value(
        [("coffee.jpg", jpeg.getvalue(), "image/jpeg"), ("cut.jpg", jpeg.getvalue()[:1500], "image/jpeg")]
    )
    at.run()
    assert not at.exception and not _errors(at)
    assert list(at.session_state["vision_predictions"]["image"]) == ["coffee.jpg"]
    assert any("skipped" in w.value for w in at.warning)


def _class_zip(n_per_class: int = 14) -> bytes:
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for label, channel in (("red", 0), ("blue", 2)):
            for i in range(n_per_class):
                arr = rng.integers(0, 60, (40, 40, 3)).astype(np.uint8)
                arr[..., channel] += 180
                zf.writestr(f"shapes/{label}/{i}.png", _png(arr))
        zf.writestr("shapes/.DS_Store", b"junk")
        zf.writestr("shapes/readme.md", b"notes")
    return buffer.getvalue()


def test_train_your_own_then_classify_with_it(app_test, model_store):
    at = app_test("app_pages/vision.py")
    at.file_uploader(key="vision_train_upload").set_value(("shapes.zip", _class_zip(), "application/zip"))
    at.run()
    assert not at.exception and not _errors(at)
    at.slider(key="vision_epochs").set_value(3)
    at.select_slider(key="vision_image_size").set_value(96)
    at.text_input(key="vision_train_name").set_value("colours")
    at.button(key="vision_train_button").click().run(timeout=300)
    assert not at.exception and not _errors(at)
    trained = at.session_state["vision_trained"]
    assert trained["name"] == "colours"
    assert trained["metrics"]["accuracy"] == pytest.approx(1.0)  # red vs blue is trivially separable
    assert model_store.exists("vision", "colours")
    assert "colours" in at.selectbox(key="vision_model").options
    at.selectbox(key="vision_model").set_value("colours").run()
    assert not at.exception and not _errors(at)
    assert set(at.session_state["vision_predictions"]["top1"]) <= {"red", "blue"}


def _tiny_png(seed: int, size: int = 32) -> bytes:
    return _png(np.random.default_rng(seed).integers(0, 255, (size, size, 3)).astype(np.uint8))


def test_batch_report_has_a_gallery_of_thumbnails_with_escaped_names(
    app_test, model_store, downloads_captured
):
    at = app_test("app_pages/vision.py")
    at.radio(key="vision_source").set_value("Upload your own").run()
    names = ["<script>alert(1)</script>.png", "b&w.png", "plain.png"]
    at.file_uploader(key="vision_upload").set_value(
        [(n, _tiny_png(i, 24 + 8 * i), "image/png") for i, n in enumerate(names)]
    )
    at.run()
    assert not at.exception and not _errors(at)
    predictions = at.session_state["vision_predictions"]
    assert list(predictions["image"]) == names
    report = downloads_captured["predictions.html"].decode("utf-8")
    thumbnails = re.findall(r"<img src='data:image/jpeg;base64,([A-Za-z0-9+/=]+)'", report)
    assert len(thumbnails) == len(names)
    for encoded in thumbnails:
        thumb = Image.open(io.BytesIO(base64.b64decode(encoded)))
        assert thumb.format == "JPEG" and max(thumb.size) <= 160
    for top1, probability in zip(predictions["top1"], predictions["probability"], strict=True):
        assert f"{html.escape(top1)} ({probability:.1%})" in report
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.png" in report and "<script>" not in report
    assert "b&amp;w.png" in report
    assert "Showing the first" not in report  # 3 images: not capped


def _train_settings(at, name: str) -> None:
    at.file_uploader(key="vision_train_upload").set_value(("shapes.zip", _class_zip(), "application/zip"))
    at.run()
    assert not at.exception and not _errors(at)
    at.slider(key="vision_epochs").set_value(1)
    at.select_slider(key="vision_image_size").set_value(96)
    at.checkbox(key="vision_augment").uncheck()
    at.text_input(key="vision_train_name").set_value(name)


def _nothing_saved(model_store) -> bool:
    folder = model_store.root / "vision"
    return model_store.list("vision") == [] and (not folder.exists() or not any(folder.iterdir()))


def test_stop_clicked_during_training_saves_nothing_and_the_page_still_works(
    app_test, model_store, monkeypatch, press_during_run
):
    import lucid.domains.vision.service as vision_service

    at = app_test("app_pages/vision.py")
    _train_settings(at, "stopped")
    polls: list[int] = []
    real_fine_tune = vision_service.fine_tune

    def fine_tune_with_a_click(*args, should_stop, **kwargs):
        def poll() -> bool:
            polls.append(1)
            if len(polls) == 2:  # the user clicks Stop during the second step
                press_during_run(at, "vision_train_stop", release="vision_train_button")
            return should_stop()

        return real_fine_tune(*args, should_stop=poll, **kwargs)

    monkeypatch.setattr(vision_service, "fine_tune", fine_tune_with_a_click)
    at.button(key="vision_train_button").click().run(timeout=300)
    assert not at.exception and not _errors(at)
    assert TRAINING_STOPPED in [w.value for w in at.warning]
    assert len(polls) == 2  # the run ended at the poll, inside the training loop
    assert _nothing_saved(model_store)
    assert "stopped" not in at.selectbox(key="vision_model").options
    assert "vision_trained" not in at.session_state
    # The page still works: the same settings train and save.
    at.button(key="vision_train_button").click().run(timeout=300)
    assert not at.exception and not _errors(at)
    assert TRAINING_STOPPED not in [w.value for w in at.warning]
    assert model_store.exists("vision", "stopped")


def test_a_requested_stop_shows_the_message_and_saves_nothing(app_test, model_store):
    at = app_test("app_pages/vision.py")
    _train_settings(at, "not-saved")
    at.session_state["vision_train"] = TrainingRun(stop_requested=True)
    at.button(key="vision_train_button").click().run(timeout=300)
    assert not at.exception and not _errors(at)
    assert [w.value for w in at.warning if "Training" in w.value] == [TRAINING_STOPPED]
    assert _nothing_saved(model_store)


def test_service_stops_at_the_step_should_stop_says_and_saves_nothing(model_store):
    from lucid.core.errors import TrainingCancelled
    from lucid.domains.vision.service import VisionService
    from lucid.imaging.datasets import labelled_images_from_zip
    from lucid.imaging.training import FineTuneConfig

    data = labelled_images_from_zip(_class_zip())
    polls: list[int] = []
    steps: list[str] = []

    def stop_after_three_steps() -> bool:
        polls.append(1)
        return len(polls) > 3

    with pytest.raises(TrainingCancelled):
        VisionService(model_store).train(
            data,
            "halted",
            FineTuneConfig(epochs=1, image_size=64, augment=False),
            progress=lambda f, m: steps.append(m) if ": step " in m else None,
            should_stop=stop_after_three_steps,
        )
    assert len(polls) == 4 and len(steps) == 3
    assert _nothing_saved(model_store)


def _same_picture_zip() -> bytes:
    """Two classes (10 'a', 7 'b') of one picture: no model beats always answering 'a'."""
    same = np.random.default_rng(1).integers(0, 255, (40, 40, 3)).astype(np.uint8)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for label, n in (("a", 10), ("b", 7)):
            for i in range(n):
                zf.writestr(f"{label}/{i}.png", _png(same))
    return buffer.getvalue()


def test_a_model_that_fails_the_gate_is_saved_only_with_save_anyway(app_test, model_store):
    at = app_test("app_pages/vision.py")
    at.file_uploader(key="vision_train_upload").set_value(
        ("same.zip", _same_picture_zip(), "application/zip")
    )
    at.run()
    at.slider(key="vision_epochs").set_value(1)
    at.select_slider(key="vision_image_size").set_value(96)
    at.checkbox(key="vision_augment").uncheck()
    at.text_input(key="vision_train_name").set_value("same")
    at.button(key="vision_train_button").click().run(timeout=300)
    assert not at.exception and not _errors(at)
    gate = at.session_state["vision_trained"]["gate"]
    assert not gate.passed and not gate.beats_baseline  # one answer for all: at best the majority
    assert any(w.value.startswith("Not better than its baseline") for w in at.warning)
    assert not model_store.exists("vision", "same") and "same" not in at.selectbox(key="vision_model").options
    at.button(key="vision_train_save_anyway").click().run(timeout=300)
    assert not at.exception and not _errors(at)
    assert model_store.load("vision", "same").metadata["quality_gate"]["passed"] is False
    assert "same" in at.selectbox(key="vision_model").options  # listed at once, no reload
    assert any("Saved on your request" in i.value for i in at.info)
    assert "vision_trained_pending" not in at.session_state
    assert not [b for b in at.button if b.key == "vision_train_save_anyway"]


def test_the_model_manager_renames_and_deletes_a_saved_model(app_test, model_store):
    from lucid.domains.vision.service import VisionService
    from lucid.imaging.datasets import labelled_images_from_zip
    from lucid.imaging.training import FineTuneConfig

    config = FineTuneConfig(epochs=1, image_size=64, augment=False)
    VisionService(model_store).train(
        labelled_images_from_zip(_same_picture_zip()), "old", config, save_anyway=True
    )
    at = app_test("app_pages/vision.py")
    at.selectbox(key="vision_model").set_value("old").run()
    assert not at.exception and not _errors(at)
    assert at.selectbox(key="vision_models_manage_model").options == ["old"]
    at.text_input(key="vision_models_manage_new_name").set_value("new").run()
    at.button(key="vision_models_manage_rename").click().run()
    assert not at.exception and not _errors(at)
    assert model_store.exists("vision", "new") and not model_store.exists("vision", "old")
    assert at.selectbox(key="vision_model").options == ["efficientnet_lite0", "new"]
    assert at.selectbox(key="vision_model").value == "efficientnet_lite0"  # 'old' is gone
    at.button(key="vision_models_manage_delete").click().run()
    at.button(key="vision_models_manage_delete_yes").click().run()
    assert not at.exception and not _errors(at)
    assert model_store.list("vision") == []
    assert at.selectbox(key="vision_model").options == ["efficientnet_lite0"]
