"""Recommendations: the service that builds, trains, saves and loads recommenders (built-in and
user-trained) on top of :class:`~lucid.domains.base.ModelService`.

Two stages. A BPR matrix factorisation (torch) proposes :data:`lucid.domains.recommend.model.N_CANDIDATES`
candidates per user; an XGBoost ranker re-orders them from interpretable features
(:mod:`lucid.domains.recommend.features`) and is explained exactly with TreeSHAP (``pred_contribs``).
The stages are in :mod:`~lucid.domains.recommend.ranking`, the trained model in
:mod:`~lucid.domains.recommend.recommender`, the leakage-free training and the metrics against
baselines in :mod:`~lucid.domains.recommend.training`.

Example:
    >>> service = RecommendService()
    >>> model = service.load("movielens-100k")          # built and stored on first use
    >>> recs = model.recommend("196", n=10)
    >>> recs.table[["title", "reason"]]
    >>> trained = service.train(data, "shop")        # saved only when it beats popularity
    >>> trained.gate.verdict(), trained.saved
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from typing import Any, ClassVar

from lucid.core.errors import InvalidInputError, TrainingError
from lucid.core.progress import Progress, ShouldStop
from lucid.core.quality import QualityGate
from lucid.core.registry import ModelRegistry
from lucid.core.store import data_hash, validate_name
from lucid.domains.base import ModelCard, ModelService
from lucid.domains.recommend.cards import recommender_card
from lucid.domains.recommend.data import InteractionData
from lucid.domains.recommend.model import DEFAULT_MODEL, RECIPE_VERSION, RECOMMEND_MODELS
from lucid.domains.recommend.movielens import movielens_interaction_data
from lucid.domains.recommend.persistence import read_recommender, write_recommender
from lucid.domains.recommend.recommender import Recommender
from lucid.domains.recommend.training import TrainConfig, train_recommender

DOMAIN = "recommend"

__all__ = ["DEFAULT_MODEL", "DOMAIN", "RecommendService", "TrainConfig", "TrainedRecommender"]


@dataclass(frozen=True)
class TrainedRecommender:
    """A training run's outcome: the model, its held-out comparison with popularity, and whether it
    was saved (a model that does not pass the gate is kept here until the user chooses to save it).

    Attributes:
        name: the name it is (or would be) saved under.
        model: the trained recommender.
        gate: NDCG@10 of the model against popularity on the same held-out users.
        saved: whether it is in the model store.
    """

    name: str
    model: Recommender
    gate: QualityGate
    saved: bool


class RecommendService(ModelService[Recommender]):
    """Load, train and save recommenders (built-in and user-trained).

    A built-in model is trained by Lucid's recipe on first use (about half a minute) and stored;
    it is current while its metadata's ``recipe_version`` is :data:`RECIPE_VERSION`.

    Example:
        >>> service = RecommendService()
        >>> model = service.load("movielens-100k", progress=print)
        >>> model.recommend("1").table
    """

    domain: ClassVar[str] = DOMAIN
    registry: ClassVar[ModelRegistry] = RECOMMEND_MODELS
    recipe_version: ClassVar[int | str] = RECIPE_VERSION

    def load(
        self, name: str = DEFAULT_MODEL, *, progress: Progress = None, should_stop: ShouldStop = None
    ) -> Recommender:
        """A ready recommender (default: the built-in one), see :meth:`ModelService.load`.

        Raises:
            ModelNotFoundError: neither built-in nor saved; the message lists the names.
        """
        return super().load(name, progress=progress, should_stop=should_stop)

    def train(
        self,
        data: InteractionData,
        name: str,
        *,
        config: TrainConfig | None = None,
        progress: Progress = None,
        should_stop: ShouldStop = None,
        save_anyway: bool = False,
    ) -> TrainedRecommender:
        """Train on a user's interaction log, measure it against popularity, and save it under ``name``
        when it passes the quality gate (or with ``save_anyway``).

        A model that does not pass is returned unsaved (``saved=False``); :meth:`save_trained` saves
        it on the user's explicit choice.

        Raises:
            InvalidInputError: invalid name, or the name of a built-in model.
            TrainingCancelled: ``should_stop`` returned true; nothing was saved.
        """
        name = self._check_new_name(name)
        model = train_recommender(data, config=config, progress=progress, should_stop=should_stop)
        gate = model.gate
        if gate is None:  # train_recommender always measures one; a missing gate is a defect
            raise TrainingError("The new model could not be measured against its baseline.")
        result = TrainedRecommender(name, model, gate, saved=False)
        if gate.passed or save_anyway:
            result = self.save_trained(result)
        return result

    def save_trained(self, result: TrainedRecommender) -> TrainedRecommender:
        """Save a trained model that was not saved (it did not pass the gate), on the user's choice."""
        name = self._check_new_name(result.name)
        self._save(
            name, result.model, base_model="BPR matrix factorisation + XGBoost ranker", gate=result.gate
        )
        self.remember(name, result.model)
        return dataclasses.replace(result, name=name, saved=True)

    def _check_new_name(self, name: str) -> str:
        name = validate_name(name)
        if self.is_default(name):
            raise InvalidInputError(f"'{name}' is the name of a built-in model; choose another name.")
        return name

    def card(self, name: str) -> ModelCard:
        """The model card: source, licence, data, held-out metrics (once built) and limits."""
        name = self.check_name(name)
        meta = self.store.load(self.domain, name).metadata if self.store.exists(self.domain, name) else None
        return recommender_card(name, meta)

    # -- what the base asks of a domain --------------------------------------------------------
    def _build_default(self, name: str, *, progress: Progress, should_stop: ShouldStop) -> None:
        data = movielens_interaction_data(RECOMMEND_MODELS.create(name))
        model = train_recommender(data, progress=progress, should_stop=should_stop)
        self._save(name, model, base_model=name)  # a built-in model is the reference: no gate to pass

    def _read(self, name: str, *, progress: Progress = None) -> Recommender:
        return read_recommender(self.store.load(self.domain, name).path)

    def _save(self, name: str, model: Recommender, base_model: str, gate: QualityGate | None = None) -> None:
        frame = model.data.interactions
        meta: dict[str, Any] = {
            "base_model": base_model,
            "data": (
                f"{model.info.get('n_users', 0):,} users, {model.info.get('n_items', 0):,} items, "
                f"{len(frame):,} interactions"
            ),
            "recipe_version": RECIPE_VERSION,
            "data_hash": data_hash(frame.to_csv(index=False)),
            "metrics": model.metrics,
            **{k: v for k, v in model.info.items() if k != "recipe_version"},
        }
        gate = gate or model.gate
        if gate is not None:
            meta["quality_gate"] = gate.as_dict()
        self.store.save(self.domain, name, functools.partial(write_recommender, model), meta)
