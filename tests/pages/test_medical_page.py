"""The medical page through AppTest: upload DICOM -> window -> classify -> explain, with no PHI shown."""

import numpy as np
import pytest

from tests.fixtures.medical.builders import FAKE_PHI, make_dicom, make_nifti, make_zip

PAGE = "app_pages/medical.py"


@pytest.fixture(autouse=True)
def _fresh_service(model_store):
    """Each test gets an empty model store and a service built for it (the page shares the service)."""
    from lucid.core.store import clear_shared_services

    clear_shared_services()
    yield
    clear_shared_services()


def _all_text(at) -> str:
    """Every string the page rendered (markdown, captions, metrics, tables, widgets' labels/values)."""
    parts = []
    for kind in ("markdown", "caption", "title", "subheader", "info", "warning", "error", "success"):
        parts += [str(e.value) for e in getattr(at, kind)]
    parts += [f"{m.label} {m.value}" for m in at.metric]
    parts += [e.value.to_csv() for e in at.dataframe]
    parts += [str(e.proto) for e in at.get("download_button")]
    parts += [str(e.proto) for e in at.get("plotly_chart")]
    for kind in ("selectbox", "radio", "slider", "select_slider", "checkbox", "text_input"):
        parts += [f"{w.label} {w.value}" for w in getattr(at, kind)]
    return "\n".join(parts)


def _phi_dicom() -> bytes:
    yy, xx = np.mgrid[0:96, 0:96]
    head = ((yy - 48) ** 2 / 40**2 + (xx - 48) ** 2 / 34**2) < 1
    pixels = np.where(head, 1064, 24).astype(np.uint16)  # 40 HU brain inside, -1000 HU air outside
    return make_dicom(pixels, modality="CT", window=(40.0, 80.0))


def test_page_shows_disclaimer_and_samples(app_test):
    at = app_test(PAGE)
    assert not at.exception
    assert any("not for clinical use" in w.value for w in at.warning)
    at.radio(key="medical_source").set_value("Sample").run()
    assert not at.exception
    fields = at.dataframe[0].value
    assert "CT" in fields["value"].tolist()
    assert "Brain" in at.selectbox(key="medical_window").options


@pytest.fixture
def downloaded(monkeypatch):
    """Every file the page offers for download (bytes, mimetype), captured as Streamlit stores it."""
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    files = []
    original = MemoryMediaFileStorage.load_and_get_id

    def capture(self, path_or_data, mimetype, kind, filename=None):
        if isinstance(path_or_data, bytes):
            files.append((path_or_data, mimetype))
        return original(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", capture)
    return files


@pytest.mark.slow
def test_upload_window_classify_explain_without_phi(app_test, downloaded):
    at = app_test(PAGE)
    at.file_uploader(key="medical_upload").set_value(("scan.dcm", _phi_dicom(), "application/dicom"))
    at.run()
    assert not at.exception and not at.error
    window = at.selectbox(key="medical_window")
    assert window.options[0] == "File window"
    window.set_value("Brain").run()
    assert any("centre 40, width 80" in c.value for c in at.caption)
    at.selectbox(key="medical_model").set_value("phydcm_brain_mri").run()
    at.button(key="medical_classify").click().run()
    assert not at.exception and not at.error
    assert at.metric[0].label == "Most likely class"
    assert at.metric[0].value in {"glioma", "meningioma", "notumor", "pituitary"}
    assert any("uncalibrated" in c.value for c in at.caption)
    at.select_slider(key="medical_evals").set_value(50).run()
    at.button(key="medical_explain").click().run()
    assert not at.exception and not at.error
    assert any("Faithfulness" in m.value for m in at.markdown)
    assert len(at.get("plotly_chart")) >= 3  # probabilities, Grad-CAM, SHAP
    text = _all_text(at)
    for value in FAKE_PHI.values():
        assert value not in text, value
    reports = [data for data, mime in downloaded if mime == "text/html"]
    assert len(reports) >= 2 and any(b"Faithfulness" in r for r in reports)
    assert any(mime == "image/png" for _, mime in downloaded)
    for data, _ in downloaded:
        for value in FAKE_PHI.values():
            assert value.encode() not in data, value
    # Revealing is explicit and possible.
    at.checkbox(key="medical_reveal").check().run()
    assert FAKE_PHI["PatientName"] in _all_text(at)


def test_nifti_upload_has_axis_and_slice_pickers_and_reports_nans(app_test):
    volume = np.random.default_rng(0).random((20, 24, 16)).astype(np.float32)
    volume[0, 0, 0] = np.nan
    at = app_test(PAGE)
    at.file_uploader(key="medical_upload").set_value(
        ("brain.nii.gz", make_nifti(volume, gz=True), "application/gzip")
    )
    at.run()
    assert not at.exception and not at.error
    assert any("NaN" in i.value for i in at.info)
    assert at.selectbox(key="medical_axis").value == 2
    assert at.slider(key="medical_slice").max == 15
    at.selectbox(key="medical_axis").set_value(0).run()
    assert at.slider(key="medical_slice").max == 19 and not at.exception


def test_bad_upload_gets_one_clear_message(app_test):
    at = app_test(PAGE)
    at.file_uploader(key="medical_upload").set_value(("scan.dcm", b"plain text, no scan" * 20, "text/plain"))
    at.run()
    assert not at.exception
    assert len(at.error) == 1 and "not a DICOM file" in at.error[0].value


@pytest.mark.slow
def test_train_tab_trains_saves_and_lists_the_model(app_test, model_store):
    from lucid.domains.medical.windowing import to_png

    rng = np.random.default_rng(0)
    files = {}
    for i in range(10):
        for label in ("clear", "spot"):
            image = rng.integers(0, 50, (48, 48, 3)).astype(np.uint8)
            if label == "spot":
                image[12:36, 12:36] = 240
            files[f"{label}/{i}.png"] = to_png(image)
    at = app_test(PAGE)
    at.radio(key="medical_source").set_value("Sample")  # a scan on view, so the model picker is drawn
    at.file_uploader(key="medical_train_zip").set_value(("cells.zip", make_zip(files), "application/zip"))
    at.run()
    at.text_input(key="medical_train_name").set_value("spots-page")
    at.number_input(key="medical_train_epochs").set_value(2)
    at.select_slider(key="medical_train_size").set_value(64)
    at.radio(key="medical_train_mode").set_value("head")
    at.button(key="medical_train").click().run()
    assert not at.exception and not at.error
    labels = {m.label: m.value for m in at.metric}
    assert float(labels["Test accuracy"].rstrip("%")) >= 75.0
    assert labels["Majority-class baseline"] == "50.0%"
    assert model_store.exists("medical", "spots-page")
    assert model_store.load("medical", "spots-page").metadata["quality_gate"]["passed"] is True
    assert any(s.value.startswith("Better than its baseline") for s in at.success)
    assert not _has(at, "medical_train_save_anyway")
    # Listed at once, without a reload: in the model picker and in the saved-model list.
    assert "spots-page" in at.selectbox(key="medical_model").options
    assert "spots-page" in at.selectbox(key="medical_manage_model").options


def _has(at, key: str) -> bool:
    return any(getattr(e, "key", None) == key for e in at.button)


def _flat_zip() -> bytes:
    """Two class folders holding the same image: no model can beat the most common class."""
    from lucid.domains.medical.windowing import to_png

    image = to_png(np.random.default_rng(0).integers(0, 50, (48, 48, 3)).astype(np.uint8))
    return make_zip({f"{label}/{i}.png": image for label in ("clear", "spot") for i in range(10)})


@pytest.mark.slow
def test_a_model_that_fails_the_gate_is_saved_only_by_save_anyway(app_test, model_store):
    at = app_test(PAGE)
    at.radio(key="medical_source").set_value("Sample")
    at.file_uploader(key="medical_train_zip").set_value(("flat.zip", _flat_zip(), "application/zip"))
    at.run()
    at.text_input(key="medical_train_name").set_value("flat-page")
    at.number_input(key="medical_train_epochs").set_value(1)
    at.select_slider(key="medical_train_size").set_value(64)
    at.radio(key="medical_train_mode").set_value("head")
    at.button(key="medical_train").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert not model_store.exists("medical", "flat-page")
    assert any(w.value.startswith("Not better than its baseline") for w in at.warning)
    assert "flat-page" not in at.selectbox(key="medical_model").options
    at.button(key="medical_train_save_anyway").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert model_store.exists("medical", "flat-page")
    assert model_store.load("medical", "flat-page").metadata["quality_gate"]["passed"] is False
    assert any("Saved on your request" in i.value for i in at.info)
    assert not _has(at, "medical_train_save_anyway")
    assert "flat-page" in at.selectbox(key="medical_model").options
    # A new run that fails again offers its own "Save anyway": the last choice is not carried over.
    at.text_input(key="medical_train_name").set_value("flat-again")
    at.button(key="medical_train").click().run()
    assert _has(at, "medical_train_save_anyway") and not model_store.exists("medical", "flat-again")


@pytest.mark.slow
def test_model_manager_renames_and_deletes_a_saved_model(app_test, model_store):
    from lucid.domains.medical.service import MedicalService
    from tests.domains.medical.test_gate import TINY, _scans

    MedicalService(model_store).train(
        _scans(24, informative=False), "kept", TINY, pretrained=False, save_anyway=True
    )
    at = app_test(PAGE)
    assert at.selectbox(key="medical_manage_model").options == ["kept"]
    assert "accuracy 0.500 (baseline 0.500)" in at.dataframe[0].value.to_csv()  # the saved-model list
    at.text_input(key="medical_manage_new_name").set_value("renamed").run()  # Rename waits for a name
    at.button(key="medical_manage_rename").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert model_store.exists("medical", "renamed") and not model_store.exists("medical", "kept")
    assert at.selectbox(key="medical_manage_model").options == ["renamed"]
    assert any(e.label == "Model card: renamed" for e in at.expander)
    at.button(key="medical_manage_delete").click().run()
    at.button(key="medical_manage_delete_yes").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert model_store.list("medical") == []
    assert not any("renamed" in e.label for e in at.expander)


def _spots_zip() -> bytes:
    from lucid.domains.medical.windowing import to_png

    rng = np.random.default_rng(0)
    files = {}
    for i in range(10):
        for label in ("clear", "spot"):
            image = rng.integers(0, 50, (48, 48, 3)).astype(np.uint8)
            if label == "spot":
                image[12:36, 12:36] = 240
            files[f"{label}/{i}.png"] = to_png(image)
    return make_zip(files)


@pytest.mark.slow
def test_stop_clicked_during_training_saves_nothing(app_test, model_store, monkeypatch, press_during_run):
    import lucid.domains.medical.training as medical_train
    from lucid.ui.widgets import TRAINING_STOPPED

    at = app_test(PAGE)
    at.file_uploader(key="medical_train_zip").set_value(("cells.zip", _spots_zip(), "application/zip"))
    at.run()
    at.text_input(key="medical_train_name").set_value("stopped-scans")
    at.number_input(key="medical_train_epochs").set_value(1)
    at.select_slider(key="medical_train_size").set_value(64)
    at.radio(key="medical_train_mode").set_value("head")
    polls: list[int] = []
    real_fine_tune = medical_train.fine_tune

    def fine_tune_with_a_click(*args, should_stop, **kwargs):
        def poll() -> bool:
            polls.append(1)
            if len(polls) == 2:  # the user clicks Stop during the second step
                press_during_run(at, "medical_train_stop", release="medical_train")
            return should_stop()

        return real_fine_tune(*args, should_stop=poll, **kwargs)

    monkeypatch.setattr(medical_train, "fine_tune", fine_tune_with_a_click)
    at.button(key="medical_train").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert TRAINING_STOPPED in [w.value for w in at.warning]
    assert len(polls) == 2
    assert model_store.list("medical") == [] and not model_store.exists("medical", "stopped-scans")
    assert "medical_trained" not in at.session_state
    assert not any("stopped-scans" in e.label for e in at.expander)  # not on the Models tab
    assert any("Model card:" in e.label for e in at.expander)
