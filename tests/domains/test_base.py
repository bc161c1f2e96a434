"""ModelService, the base of every domain's models, on a toy domain: names, versions, loading once,
building a default on first use, rename and delete rules, the saved-model table."""

from __future__ import annotations

import json
import threading

import pytest

from lucid.core.errors import InvalidInputError, ModelNotFoundError
from lucid.core.registry import ModelRegistry
from lucid.core.store import ModelStore
from lucid.domains.base import ModelCard, ModelService

TOY_MODELS = ModelRegistry("toy")


@TOY_MODELS.register(name="builtin", title="Built-in toy", source="here", licence="MIT", data="none")
def _builtin() -> dict:
    return {"weight": 1.0}


class ToyService(ModelService[dict]):
    domain = "toy"
    registry = TOY_MODELS
    recipe_version = 2

    def __init__(self, store: ModelStore | None = None) -> None:
        super().__init__(store)
        self.builds = 0
        self.reads = 0

    def _build_default(self, name, *, progress, should_stop):
        self.builds += 1
        if progress:
            progress(0.5, "building")
        self.store.save(
            self.domain,
            name,
            lambda folder: (folder / "w.json").write_text(json.dumps(TOY_MODELS.get(name).build())),
            {"recipe_version": self.recipe_version},
        )

    def _read(self, name, *, progress=None):
        self.reads += 1
        return json.loads((self.store.load(self.domain, name).path / "w.json").read_text())

    def card(self, name):
        return ModelCard(model=name, source="here", licence="MIT", data="none", metrics={"accuracy": 1.0})

    def save_user_model(self, name: str, weight: float, metadata: dict) -> None:
        self.store.save(
            self.domain,
            name,
            lambda folder: (folder / "w.json").write_text(json.dumps({"weight": weight})),
            metadata,
        )


@pytest.fixture
def service(tmp_path):
    return ToyService(ModelStore(tmp_path))


def test_a_default_is_built_on_first_use_and_read_once(service):
    steps = []
    assert not service.is_built("builtin")
    model = service.load("builtin", progress=lambda f, m: steps.append(m))
    assert model == {"weight": 1.0} and steps == ["building"]
    assert service.load("builtin") is model and (service.builds, service.reads) == (1, 1)
    assert service.is_built("builtin") and service.ensure_defaults() == []


def test_a_default_of_another_recipe_version_is_rebuilt(service):
    service.store.save("toy", "builtin", lambda f: (f / "w.json").write_text("{}"), {"recipe_version": 1})
    assert not service.is_built("builtin")
    assert service.ensure_defaults() == ["builtin"] and service.builds == 1
    assert service.store.load("toy", "builtin").metadata["recipe_version"] == 2


def test_concurrent_first_loads_build_once(service):
    results = []
    threads = [threading.Thread(target=lambda: results.append(service.load("builtin"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert service.builds == 1 and len({id(r) for r in results}) == 1


def test_names_defaults_first_then_saved_newest_first_and_unknown_refused(service):
    service.save_user_model("older", 0.5, {"data": "a.csv"})
    service.save_user_model("newer", 0.7, {"data": "b.csv"})
    meta = service.store.path("toy", "older") / "metadata.json"
    stored = json.loads(meta.read_text())
    meta.write_text(json.dumps({**stored, "created": "2000-01-01T00:00:00+00:00"}))
    assert service.model_names() == ["builtin", "newer", "older"]
    with pytest.raises(ModelNotFoundError) as info:
        service.check_name("../etc")
    assert info.value.valid == ["builtin", "newer", "older"]


def test_rename_and_delete_keep_built_in_models_theirs(service):
    service.save_user_model(
        "mine", 0.5, {"data": "a.csv", "quality_gate": {"metric": "accuracy", "model": 0.9, "baseline": 0.6}}
    )
    assert service.load("mine") == {"weight": 0.5}
    renamed = service.rename("mine", "ours")
    assert renamed.name == "ours" and renamed.metadata["renamed_from"] == "mine"
    assert service.load("ours") == {"weight": 0.5}
    with pytest.raises(ModelNotFoundError):
        service.load("mine")  # forgotten, and gone from the store
    with pytest.raises(InvalidInputError, match="built-in"):
        service.rename("builtin", "x")
    with pytest.raises(InvalidInputError, match="built-in"):
        service.rename("ours", "builtin")
    with pytest.raises(InvalidInputError, match="built-in"):
        service.delete("builtin")
    table = service.saved_models_table()
    assert list(table["Name"]) == ["ours"] and table.loc[0, "Data"] == "a.csv"
    assert table.loc[0, "Held-out result"] == "accuracy 0.900 (baseline 0.600)"
    service.delete("ours")
    assert service.saved_models_table().empty and service.model_names() == ["builtin"]


def test_rename_refuses_a_taken_name(service):
    service.save_user_model("a", 0.1, {})
    service.save_user_model("b", 0.2, {})
    with pytest.raises(InvalidInputError, match="already exists"):
        service.rename("a", "b")
    assert service.load("a") == {"weight": 0.1} and service.load("b") == {"weight": 0.2}
