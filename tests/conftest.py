import os
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from lucid.core.device import available_devices  # noqa: E402
from tests.live_app import start_app, stop_app  # noqa: E402

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


ROOT = Path(__file__).resolve().parent.parent


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
    folder = Path(os.environ.get("LUCID_SHARED_DATA", ROOT.parent / "shared" / "data"))
    if not folder.is_dir():
        pytest.skip(f"shared data folder not found at {folder}")
    return folder


# ------------------------------------------------------------------------------------------------
# Default models' stores, each built once per test session and shared by every test that reads it
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def german_store(tmp_path_factory) -> Path:
    """Root of a model store holding the German credit default (the quick finance default)."""
    from lucid.core.store import ModelStore
    from lucid.domains import DOMAINS

    root = tmp_path_factory.getbasetemp() / "finance-store"
    DOMAINS["finance"].service(ModelStore(root)).load("german_credit")
    return root


@pytest.fixture(scope="session")
def recommend_store(tmp_path_factory):
    """A model store holding the real MovieLens default (the recommendations default)."""
    from lucid.core.store import ModelStore
    from lucid.domains import DOMAINS

    store = ModelStore(tmp_path_factory.getbasetemp() / "recommend-default-models")
    DOMAINS["recommend"].ensure_defaults(store=store)
    return store


def _copy_model(source_root: Path, target_root: Path, domain: str, name: str) -> None:
    """Copy one built model into another store: only that model, so that whatever other tests saved
    into the shared store next to it does not reach the target."""
    shutil.copytree(source_root / domain / name, target_root / domain / name)


@pytest.fixture(scope="session")
def live_model_dir(tmp_path_factory, german_store, recommend_store):
    """The model store of the live app: the quick defaults in place before the server starts, so
    that concurrent sessions measure serving rather than a first-time build on a fresh machine.

    The app writes into its own store (the browser tests train), so the finance and recommendations
    defaults are copied from the shared stores rather than shared."""
    from lucid.core.store import ModelStore
    from lucid.domains import DOMAINS

    root = tmp_path_factory.mktemp("live-models")
    _copy_model(german_store, root, "finance", "german_credit")
    _copy_model(recommend_store.root, root, "recommend", DOMAINS["recommend"].default_model)
    store = ModelStore(root)
    DOMAINS["medical"].ensure_defaults(store=store)
    DOMAINS["recommend"].ensure_defaults(store=store)  # finds the copy current; builds only if it is not
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
