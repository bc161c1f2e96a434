"""A stored credit-risk model in memory (:class:`CreditBundle`) and its files in the model store:
the booster and schema, the held-out labels and scores, the training data's reference
distributions, the demo rows and the compiled TreeSHAP tables.

Example:
    >>> bundle = read_bundle(store.load("finance", "german_credit"), device="cpu", is_default=True)
    >>> bundle.feature_names[:2]
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb
from safetensors.numpy import load_file, save_file

from lucid.core.progress import Progress
from lucid.core.store import ModelStore, StoredModel
from lucid.domains.finance.data import validate_applicants
from lucid.domains.finance.model import RECIPE_VERSION, CreditModel
from lucid.domains.finance.training import TrainedCredit
from lucid.domains.finance.treeshap import CompiledTreeShap

HOLDOUT_FILE = "holdout.safetensors"
REFERENCE_FILE = "reference.json"
DEMO_FILE = "demo_rows.csv"
TREESHAP_FILE = "treeshap.safetensors"
DOMAIN = "finance"

log = logging.getLogger("lucid.finance")


@dataclass
class CreditBundle:
    """A loaded model with everything the page and CLI need about it."""

    name: str
    model: CreditModel
    metadata: dict[str, Any]
    holdout_y: np.ndarray
    holdout_pd: np.ndarray
    reference: dict[str, Any]
    demo_rows: pd.DataFrame
    is_default: bool = False
    explainer: CompiledTreeShap | None = None

    @property
    def feature_names(self) -> list[str]:
        return self.model.feature_names


def write_bundle_files(folder: Path, trained: TrainedCredit) -> None:
    """Write a trained model and everything read back with it into a (temporary) store folder."""
    trained.model.save(folder)
    save_file(
        {"y": trained.holdout_y.astype(np.int8), "pd": trained.holdout_pd.astype(np.float32)},
        str(folder / HOLDOUT_FILE),
    )
    (folder / REFERENCE_FILE).write_text(json.dumps(trained.reference))
    trained.demo_rows.to_csv(folder / DEMO_FILE, index=False)
    if trained.explainer is not None:
        save_file(trained.explainer.to_tensors(), str(folder / TREESHAP_FILE))


def load_explainer(
    model: CreditModel, path: Path, demo: pd.DataFrame, progress: Progress
) -> CompiledTreeShap:
    """The stored TreeSHAP tables, checked against ``pred_contribs`` on the demo rows; rebuilt if off."""
    if path.is_file():
        try:
            explainer = CompiledTreeShap.from_tensors(model, load_file(str(path)))
            frame, _ = validate_applicants(demo, model)
            if np.max(np.abs(explainer.shap_values(frame)[0] - model.contributions(frame)[0])) < 1e-4:
                return explainer
        except (KeyError, ValueError, OSError) as exc:
            log.warning("stored TreeSHAP tables unreadable (%s); rebuilding", type(exc).__name__)
        log.warning("stored TreeSHAP tables disagree with the model; rebuilding them")
    explainer = CompiledTreeShap.compile(model, progress=progress)
    tmp = path.with_name(f".{path.name}.tmp")
    try:  # keep the rebuilt tables for the next start; written aside and renamed in one step
        save_file(explainer.to_tensors(), str(tmp))
        tmp.replace(path)
    except OSError:
        log.warning("could not store rebuilt TreeSHAP tables (read-only model store?)")
    return explainer


def read_bundle(
    stored: StoredModel, *, device: str, is_default: bool, progress: Progress = None
) -> CreditBundle:
    """Read a stored model and its companion files (the TreeSHAP tables checked, rebuilt if off)."""
    model = CreditModel.load(stored.path, device=device)
    holdout = load_file(str(stored.path / HOLDOUT_FILE))
    reference = json.loads((stored.path / REFERENCE_FILE).read_text())
    demo = pd.read_csv(stored.path / DEMO_FILE)
    explainer = load_explainer(model, stored.path / TREESHAP_FILE, demo, progress)
    return CreditBundle(
        stored.name,
        model,
        stored.metadata,
        holdout["y"].astype(np.int64),
        holdout["pd"].astype(np.float64),
        reference,
        demo,
        is_default=is_default,
        explainer=explainer,
    )


def save_bundle(
    store: ModelStore, name: str, trained: TrainedCredit, meta: dict[str, Any], *, is_default: bool
) -> CreditBundle:
    """Save a trained model with its metadata (``meta``: title, source, licence, data) and return it
    as loaded, so it need not be read back."""
    metadata = {
        **meta,
        "base_model": f"XGBoost {xgb.__version__} gradient-boosted trees (hist, native categoricals)",
        "recipe_version": RECIPE_VERSION,
        "recipe": trained.model.recipe,
        "target": trained.model.target,
        "positive_label": trained.model.positive_label,
        "negative_label": trained.model.negative_label,
        "features": trained.model.feature_names,
        "metrics": trained.metrics,
        "baseline": trained.baseline,
        **trained.facts,
    }
    stored = store.save(DOMAIN, name, lambda folder: write_bundle_files(folder, trained), metadata)
    return CreditBundle(
        stored.name,
        trained.model,
        stored.metadata,
        trained.holdout_y,
        trained.holdout_pd,
        trained.reference,
        trained.demo_rows,
        is_default=is_default,
        explainer=trained.explainer,
    )
