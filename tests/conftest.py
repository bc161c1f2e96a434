import os
import random

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from live_app import start_app, stop_app  # noqa: E402

from lucid.core.device import available_devices  # noqa: E402

DEVICES = available_devices()


@pytest.fixture(autouse=True)
def _seed():
    random.seed(0)
    np.random.seed(0)
    try:
        import torch

        torch.manual_seed(0)
    except ImportError:  # pragma: no cover
        pass
    yield


@pytest.fixture
def model_store(tmp_path, monkeypatch):
    """A fresh, empty model store for the test (LUCID_MODEL_DIR points at it)."""
    from lucid.core.store import ModelStore

    root = tmp_path / "models"
    monkeypatch.setenv("LUCID_MODEL_DIR", str(root))
    return ModelStore(root)


def pytest_generate_tests(metafunc):
    """Tests that take a ``device`` argument run on every device present (CUDA only where there is one)."""
    if "device" in metafunc.fixturenames:
        metafunc.parametrize("device", DEVICES)


ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


@pytest.fixture
def app_test():
    """Factory for an AppTest of the whole app, optionally switched to one page.

    Usage: ``at = app_test("app_pages/finance.py")`` returns an AppTest that has already run that page.
    """
    from streamlit.testing.v1 import AppTest

    def make(page: str | None = None, timeout: float = 120):
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=timeout).run()
        if page is not None:
            at.switch_page(str(ROOT / page)).run()
        return at

    return make


@pytest.fixture(scope="session")
def shared_data():
    """The read-only data folder beside the checkout (../shared/data), e.g. shared_data / "bccd"."""
    folder = __import__("pathlib").Path(os.environ.get("LUCID_SHARED_DATA", ROOT.parent / "shared" / "data"))
    if not folder.is_dir():
        pytest.skip(f"shared data folder not found at {folder}")
    return folder


@pytest.fixture(scope="session")
def live_model_dir(tmp_path_factory):
    """The model store of the live app: the quick defaults built once, before the server starts, so
    that concurrent sessions measure serving rather than a first-time build on a fresh machine."""
    from lucid.core.store import ModelStore
    from lucid.domains.finance.service import FinanceService
    from lucid.domains.medical.service import ensure_default_models as medical_defaults
    from lucid.domains.recommend.service import ensure_default_models as recommend_defaults

    root = tmp_path_factory.mktemp("live-models")
    store = ModelStore(root)
    FinanceService(store).load("german_credit")
    medical_defaults(store=store)
    recommend_defaults(store=store)
    return root


@pytest.fixture(scope="session")
def live_app_process(live_model_dir):
    """(process, URL) of the real app served on loopback for the whole test session."""
    proc, url = start_app({"LUCID_MODEL_DIR": str(live_model_dir)})
    yield proc, url
    stop_app(proc)


@pytest.fixture(scope="session")
def live_app(live_app_process):
    """URL of the real app served on loopback for the whole test session."""
    return live_app_process[1]
