"""Model cards of recommenders: the registry's facts for a built-in model, the upload's for a saved
one, and the held-out metrics and sizes recorded in the model store.

Example:
    >>> card = recommender_card("movielens-100k", store.load("recommend", "movielens-100k").metadata)
    >>> card.sections()["Held-out test metrics"]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from lucid.domains.base import ModelCard
from lucid.domains.recommend.model import DEFAULT_MODEL, RECOMMEND_MODELS
from lucid.domains.recommend.recommender import metrics_table

CAVEATS = [
    "Learns only from who interacted with what (plus categories and ratings when given); it knows "
    "nothing about items no one has chosen yet.",
    "A held-out item counts as a hit whether it was liked or not.",
    "Recommendations favour popular items more than a random pick would (see the popularity-bias chart).",
    "Reasons describe the ranker's SHAP values, not a causal account.",
]
NOT_MEASURED = "Not measured yet: the model is trained (and measured) on first use."


def recommender_card(name: str, metadata: Mapping[str, Any] | None = None) -> ModelCard:
    """The model card of ``name`` from the registry (built-in) or the upload (saved), with the held-out
    metrics and sizes of ``metadata`` (the model store's entry; ``None`` while a default is not built).
    """
    meta = metadata or {}
    if name in RECOMMEND_MODELS:
        spec = RECOMMEND_MODELS.get(name)
        title, how, data = spec.title, spec.description, spec.data
        source = "trained by Lucid's own recipe on first use and kept in the model store"
        licence = spec.licence
        details: dict[str, Any] = {"How it works": how, "Data source": spec.source}
    else:
        title = f"{name} (trained on an uploaded interaction log)"
        # The recipe is the default's; only the word for what is recommended differs.
        how = RECOMMEND_MODELS.get(DEFAULT_MODEL).description.replace("movies", "items")
        source = "trained by Lucid on the uploaded data; stored in the model store"
        licence = "the uploader's data; the model's code is part of Lucid"
        data = "the uploaded interaction log"
        if meta.get("split"):
            data += f", evaluated on each user's held-out interactions ({meta['split']})"
        details = {"How it works": how}
    metrics: pd.DataFrame | str = NOT_MEASURED
    if meta.get("metrics"):
        metrics = metrics_table(meta["metrics"]).round(4)
        details["Size"] = (
            f"{meta.get('n_users', 0):,} users, {meta.get('n_items', 0):,} items, "
            f"{meta.get('n_interactions', 0):,} interactions"
        )
        details["Held-out split"] = (
            f"{meta.get('split', '')}; {meta.get('test_interactions', 0):,} test interactions"
        )
        details["Training time"] = f"{meta.get('train_seconds', 0)} s on {meta.get('device', 'cpu')}"
    return ModelCard(
        model=title,
        source=source,
        licence=licence,
        data=data,
        metrics=metrics,
        details=details,
        caveats=list(CAVEATS),
    )
