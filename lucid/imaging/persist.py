"""Saving image classifiers to the model store (safetensors weights and a JSON config) and loading them.

Example:
    >>> save_classifier(store, "vision", "my-cells", result.model, architecture="tf_efficientnet_lite0",
    ...                 class_names=result.class_names, preprocessing=result.preprocessing,
    ...                 metadata={"metrics": result.metrics})
    >>> loaded = load_classifier(store.load("vision", "my-cells"))
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import timm
from safetensors.torch import load_file, save_file
from torch import nn

from lucid.core.errors import InvalidInputError
from lucid.core.store import ModelStore, StoredModel, validate_name
from lucid.imaging.preprocess import ImagePreprocessing
from lucid.imaging.training import RECIPE_VERSION

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


def save_classifier(
    store: ModelStore,
    domain: str,
    name: str,
    model: nn.Module,
    *,
    architecture: str,
    class_names: Sequence[str],
    preprocessing: ImagePreprocessing,
    metadata: dict[str, Any] | None = None,
    reserved_names: Iterable[str] = (),
    gradcam_layer: str | None = None,
) -> StoredModel:
    """Save a classifier to the model store: ``model.safetensors`` + ``config.json`` + ``metadata.json``.

    Args:
        store: the model store.
        domain: e.g. ``"vision"`` or ``"medical"``.
        name: the user's name (validated; must not be one of ``reserved_names``).
        model: the trained module.
        architecture: the timm model name it was built from (used to rebuild it).
        class_names: index -> class.
        preprocessing: its preprocessing.
        metadata: metrics, data hash, recipe, ... (stored in ``metadata.json``).
        reserved_names: built-in model names that user models may not take.
        gradcam_layer: module name Grad-CAM should use.

    Raises:
        InvalidInputError: bad or reserved name.
    """
    clean = validate_name(name)
    reserved = {r.lower() for r in reserved_names}
    if clean.lower() in reserved:
        raise InvalidInputError(f"'{clean}' is the name of a built-in model; choose another name.")
    config = {
        "architecture": architecture,
        "num_classes": len(class_names),
        "class_names": [str(c) for c in class_names],
        "data_config": preprocessing.to_json(),
        "gradcam_layer": gradcam_layer,
        "format": "safetensors",
    }
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}

    def write(folder: Path) -> None:
        save_file(state, str(folder / WEIGHTS_FILE))
        (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2))

    meta = {"base_model": architecture, "recipe_version": RECIPE_VERSION, **(metadata or {})}
    meta.setdefault("class_names", config["class_names"])
    return store.save(domain, clean, write, meta)


@dataclass
class LoadedClassifier:
    """A classifier read back from the store."""

    model: nn.Module
    class_names: list[str]
    preprocessing: ImagePreprocessing
    architecture: str
    gradcam_layer: str | None
    metadata: dict[str, Any]


def load_classifier(
    stored: StoredModel, *, build: Callable[[dict[str, Any]], nn.Module] | None = None
) -> LoadedClassifier:
    """Rebuild a saved classifier (timm architecture by default, or ``build(config)``) and load its weights.

    Raises:
        InvalidInputError: the folder does not hold a classifier saved by :func:`save_classifier`.
    """
    config_path = stored.path / CONFIG_FILE
    weights_path = stored.path / WEIGHTS_FILE
    if not config_path.is_file() or not weights_path.is_file():
        raise InvalidInputError(f"The saved model '{stored.name}' is incomplete (no weights or config).")
    config = json.loads(config_path.read_text())
    if build is not None:
        model = build(config)
    else:
        model = timm.create_model(
            config["architecture"], pretrained=False, num_classes=int(config["num_classes"])
        )
    state = load_file(str(weights_path))
    model.load_state_dict(state, strict=True)
    model.eval()
    return LoadedClassifier(
        model=model,
        class_names=list(config["class_names"]),
        preprocessing=ImagePreprocessing.from_config(config["data_config"]),
        architecture=str(config["architecture"]),
        gradcam_layer=config.get("gradcam_layer"),
        metadata=dict(stored.metadata),
    )


def clone_model(model: nn.Module) -> nn.Module:
    """A deep copy (fine-tuning modifies its model in place; keep the shared default untouched)."""
    return copy.deepcopy(model)
