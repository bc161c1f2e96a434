"""The stages shared by training, evaluation and serving: candidates from the generator, the
popularity baseline, and the XGBoost ranker that re-orders the candidates.

Example:
    >>> cands = candidates(generator, index, users, k=50)
    >>> top, margins = rerank(booster, build_features(index, profiles, cands), len(users), 50, n=10)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import xgboost as xgb

from lucid.core.device import xgboost_device
from lucid.core.errors import TrainingError
from lucid.core.progress import ShouldStop, check_stop
from lucid.domains.recommend.features import CandidateFeatures, InteractionIndex
from lucid.domains.recommend.model import RANKER_PARAMS, BPRMatrixFactorisation

#: Recommendations per user unless asked otherwise (and the cut-off of the ranking metrics).
K = 10
#: The systems the held-out metrics compare, in display order.
SYSTEMS = ("popularity", "candidate generator", "full model")


def generator_scores(model: BPRMatrixFactorisation, user_vectors: torch.Tensor) -> np.ndarray:
    """The generator's score of every item for each row of ``user_vectors`` (rows: users)."""
    with torch.inference_mode():
        scores = user_vectors @ model.item_emb.weight.T + model.item_bias.weight.T
    return scores.float().numpy()


def top_unseen(scores: np.ndarray, seen: Any, k: int) -> np.ndarray:
    """Top ``k`` item indices per row of ``scores``, never an item marked in ``seen`` (sparse rows)."""
    scores = scores.copy()
    coo = seen.tocoo()
    scores[coo.row, coo.col] = -np.inf
    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1)


def candidates(
    model: BPRMatrixFactorisation, index: InteractionIndex, users: np.ndarray, k: int
) -> np.ndarray:
    """The generator's top ``k`` unseen items of each of ``users`` (indices), best first."""
    vectors = model.user_emb.weight.detach()[torch.as_tensor(users, dtype=torch.long)]
    return top_unseen(generator_scores(model, vectors), index.seen_mask(users), k)


def popularity_top(index: InteractionIndex, users: np.ndarray, k: int) -> np.ndarray:
    """The baseline: the ``k`` most popular items each user does not have (``-1`` pads short rows)."""
    ranking = index.popularity_ranking()
    out = np.empty((len(users), k), dtype=np.int64)
    for row, u in enumerate(users):
        seen = set(index.matrix.indices[index.matrix.indptr[u] : index.matrix.indptr[u + 1]].tolist())
        picked = []
        for item in ranking:
            if item not in seen:
                picked.append(item)
                if len(picked) == k:
                    break
        out[row, : len(picked)] = picked
        out[row, len(picked) :] = -1
    return out


def rerank(
    booster: xgb.Booster, feats: CandidateFeatures, n_rows: int, k_cands: int, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Positions (into each user's candidate block) of the ``n`` best candidates, and all margins."""
    margin = booster.predict(xgb.DMatrix(feats.values, feature_names=feats.feature_names), output_margin=True)
    margin = margin.reshape(n_rows, k_cands)
    return np.argsort(-margin, axis=1, kind="stable")[:, :n], margin


def train_ranker(
    feats: CandidateFeatures, labels: np.ndarray, rounds: int, should_stop: ShouldStop
) -> xgb.Booster:
    """The ranker: XGBoost on the candidates' features, label 1 where the user picked the candidate.

    Raises:
        TrainingError: no candidate is a positive, so there is nothing to learn.
        TrainingCancelled: ``should_stop`` returned true (polled after every boosting round).
    """
    if labels.sum() == 0:
        raise TrainingError(
            "No held-out item was among the candidates, so the ranker has nothing to learn from. "
            "The log may be too small or too sparse."
        )
    params = {**RANKER_PARAMS, "device": xgboost_device()}
    positives = labels.mean()
    params["base_score"] = float(np.clip(positives, 1e-4, 1 - 1e-4))
    dtrain = xgb.DMatrix(feats.values, label=labels, feature_names=feats.feature_names)

    class _Stop(xgb.callback.TrainingCallback):
        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            return bool(should_stop is not None and should_stop())

    booster = xgb.train(params, dtrain, num_boost_round=rounds, callbacks=[_Stop()])
    check_stop(should_stop)
    return booster
