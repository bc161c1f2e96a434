import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from lucid.core.errors import InvalidInputError, ModelNotFoundError
from lucid.core.store import ModelStore


def _tiny_model():
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


def test_save_and_reload_gives_same_predictions(model_store):
    model = _tiny_model()
    x = torch.randn(16, 4)
    expected = model(x).detach()
    stored = model_store.save(
        "vision",
        "my model",
        lambda folder: save_file(model.state_dict(), folder / "weights.safetensors"),
        {"base_model": "tiny", "metrics": {"accuracy": np.float32(0.5)}},
    )
    assert stored.metadata["metrics"]["accuracy"] == 0.5
    loaded = model_store.load("vision", "my model")
    fresh = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    fresh.load_state_dict(load_file(loaded.path / "weights.safetensors"))
    assert torch.equal(fresh(x), expected)
    meta = json.loads((loaded.path / "metadata.json").read_text())
    assert meta["name"] == "my model" and meta["domain"] == "vision" and "created" in meta


def test_failed_write_leaves_nothing_and_keeps_old_model(model_store):
    model_store.save("nlp", "m", lambda f: (f / "w.json").write_text('{"v": 1}'), {})

    def crash(folder):
        (folder / "w.json").write_text('{"v": 2, "partial')
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        model_store.save("nlp", "m", crash, {})
    assert json.loads((model_store.path("nlp", "m") / "w.json").read_text()) == {"v": 1}
    leftovers = [p.name for p in (model_store.root / "nlp").iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_overwrite_replaces_whole_folder(model_store):
    model_store.save("nlp", "m", lambda f: (f / "old.bin").write_bytes(b"1"), {})
    model_store.save("nlp", "m", lambda f: (f / "new.bin").write_bytes(b"2"), {})
    names = sorted(p.name for p in model_store.path("nlp", "m").iterdir())
    assert names == ["metadata.json", "new.bin"]
    with pytest.raises(InvalidInputError, match="already exists"):
        model_store.save("nlp", "m", lambda f: None, {}, overwrite=False)


@pytest.mark.parametrize("bad", ["../escape", "a/b", "", ".hidden", "x" * 65, "con\x00"])
def test_unsafe_names_refused(model_store, bad):
    with pytest.raises(InvalidInputError, match="model name"):
        model_store.save("nlp", bad, lambda f: None, {})


def test_unknown_model_lists_valid_names(model_store):
    model_store.save("finance", "alpha", lambda f: None, {})
    model_store.save("finance", "beta", lambda f: None, {})
    with pytest.raises(ModelNotFoundError, match="Valid names: alpha, beta"):
        model_store.load("finance", "gamma")
    assert {m.name for m in model_store.list("finance")} == {"alpha", "beta"}
    model_store.delete("finance", "alpha")
    assert [m.name for m in model_store.list("finance")] == ["beta"]


def test_default_root_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("LUCID_MODEL_DIR", str(tmp_path / "elsewhere"))
    assert ModelStore().root == tmp_path / "elsewhere"


def test_shared_service_is_one_per_store_and_class(model_store, tmp_path):
    from lucid.core.store import clear_shared_services, shared_service
    from lucid.domains.nlp.service import NLPService
    from lucid.domains.vision.service import VisionService

    clear_shared_services()
    try:
        page = shared_service(NLPService, str(model_store.root))
        # The batch workers of this process (LUCID_MODEL_DIR points at the same store) get the same one,
        # also when the folder is spelt another way.
        assert shared_service(NLPService) is page
        assert shared_service(NLPService, model_store.root / ".." / "models") is page
        assert page.store.root == model_store.root.resolve()
        assert shared_service(NLPService, tmp_path / "other") is not page
        assert isinstance(shared_service(VisionService), VisionService)
        clear_shared_services()
        assert shared_service(NLPService) is not page
    finally:
        clear_shared_services()
