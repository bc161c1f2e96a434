"""Writing a :class:`~lucid.domains.recommend.recommender.Recommender` into a model-store folder and
reading it back: the generator as safetensors, the ranker as XGBoost JSON, the log and the item and
user tables as Parquet, everything else in ``config.json``.

Example:
    >>> store.save("recommend", "shop", functools.partial(write_recommender, model), metadata)
    >>> model = read_recommender(store.load("recommend", "shop").path)
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import xgboost as xgb
from safetensors.torch import load_file, save_file

from lucid.domains.recommend.data import InteractionData
from lucid.domains.recommend.model import RANKER_PARAMS, BPRMatrixFactorisation
from lucid.domains.recommend.recommender import Recommender

#: The keys of ``config.json`` that describe the data rather than the model's facts (``info``).
_DATA_KEYS = ("rating_scale", "like_threshold", "item_word", "notes", "metrics")


def write_recommender(model: Recommender, folder: Path) -> None:
    """Write the model's files into ``folder`` (safetensors, XGBoost JSON, Parquet, JSON)."""
    save_file(
        {k: v.contiguous() for k, v in model.generator.state_dict().items()},
        folder / "generator.safetensors",
    )
    model.booster.save_model(str(folder / "ranker.json"))
    model.data.interactions.to_parquet(folder / "interactions.parquet", index=False)
    model.data.items.reset_index().to_parquet(folder / "items.parquet", index=False)
    if model.data.users is not None:
        model.data.users.rename_axis("user").reset_index().astype(str).to_parquet(
            folder / "users.parquet", index=False
        )
    config = {
        "rating_scale": model.data.rating_scale,
        "like_threshold": model.data.like_threshold,
        "item_word": model.data.item_word,
        "notes": model.data.notes,
        "metrics": model.metrics,
        **model.info,
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2, default=str))


def read_recommender(folder: Path) -> Recommender:
    """Load a model written by :func:`write_recommender`."""
    config = json.loads((folder / "config.json").read_text())
    interactions = pd.read_parquet(folder / "interactions.parquet")
    items = pd.read_parquet(folder / "items.parquet").set_index("item")
    users = None
    if (folder / "users.parquet").is_file():
        users = pd.read_parquet(folder / "users.parquet")
        users = users.set_index(users.columns[0]).rename_axis("user")
    scale = tuple(config["rating_scale"]) if config.get("rating_scale") else None
    data = InteractionData(
        interactions,
        items,
        users,
        scale,
        config.get("like_threshold"),
        config.get("notes", []),
        config.get("item_word", "item"),
    )
    state = load_file(str(folder / "generator.safetensors"))
    generator = BPRMatrixFactorisation(
        state["user_emb.weight"].shape[0],
        state["item_emb.weight"].shape[0],
        state["user_emb.weight"].shape[1],
    )
    generator.load_state_dict(state)
    booster = xgb.Booster()
    booster.load_model(str(folder / "ranker.json"))
    booster.set_param({"nthread": int(RANKER_PARAMS["nthread"])})
    info = {k: v for k, v in config.items() if k not in _DATA_KEYS}
    return Recommender(data, generator, booster, config.get("metrics", {}), info)
