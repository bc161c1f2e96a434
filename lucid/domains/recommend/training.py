"""Training the two-stage recommender, leakage-free, and measuring it against baselines.

Each user's latest 20% of interactions (random ones when there is no time) are held out for the
test; the ranker learns from a second hold-out inside the training part; the metrics compare
popularity, the candidate generator alone and the full model on the same test, and the quality gate
pairs the full model with popularity user by user. The model that serves recommendations is then
refit on all interactions by the same recipe.

Example:
    >>> model = train_recommender(movielens_interaction_data(), progress=print)
    >>> model.metrics["full model"]["ndcg@10"]
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import xgboost as xgb

from lucid.core.device import resolve_device
from lucid.core.progress import Progress, ShouldStop, report, scaled
from lucid.core.quality import QualityGate, compare_per_item
from lucid.domains.recommend.data import InteractionData, temporal_split
from lucid.domains.recommend.features import InteractionIndex, build_features
from lucid.domains.recommend.metrics import ndcg_at_k, ranking_metrics
from lucid.domains.recommend.model import (
    N_CANDIDATES,
    RANKER_ROUNDS,
    RECIPE_VERSION,
    BPRConfig,
    BPRMatrixFactorisation,
    train_bpr,
)
from lucid.domains.recommend.ranking import K, candidates, popularity_top, rerank, train_ranker
from lucid.domains.recommend.recommender import Recommender

#: At most this many users are scored for the held-out metrics (a seeded sample beyond it).
MAX_EVAL_USERS = 5000
#: At most this many users give the ranker its training rows.
MAX_RANKER_USERS = 5000


@dataclass(frozen=True)
class TrainConfig:
    """How a recommender is trained."""

    bpr: BPRConfig = field(default_factory=BPRConfig)
    n_candidates: int = N_CANDIDATES
    ranker_rounds: int = RANKER_ROUNDS
    test_fraction: float = 0.2
    seed: int = 0


def _encode(
    frame: pd.DataFrame, user_pos: dict[str, int], item_pos: dict[str, int]
) -> tuple[np.ndarray, np.ndarray]:
    return (
        frame["user"].map(user_pos).to_numpy(dtype=np.int64),
        frame["item"].map(item_pos).to_numpy(dtype=np.int64),
    )


def _relevant(frame: pd.DataFrame, user_pos: dict[str, int], item_pos: dict[str, int]) -> dict[int, set[int]]:
    u, i = _encode(frame, user_pos, item_pos)
    out: dict[int, set[int]] = {}
    for a, b in zip(u.tolist(), i.tolist(), strict=True):
        out.setdefault(a, set()).add(b)
    return out


def _sample_users(users: list[int], limit: int, seed: int) -> np.ndarray:
    """The users, sorted; a seeded sample of ``limit`` of them when there are more."""
    ordered = np.array(sorted(users), dtype=np.int64)
    if len(ordered) > limit:
        ordered = np.sort(np.random.default_rng(seed).choice(ordered, size=limit, replace=False))
    return ordered


def evaluate_systems(
    generator: BPRMatrixFactorisation,
    booster: xgb.Booster,
    index: InteractionIndex,
    relevant: dict[int, set[int]],
    *,
    n_candidates: int,
    k: int = K,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Metrics of popularity, the generator alone and the full model on the same held-out items."""
    metrics, _ = evaluate_per_user(
        generator, booster, index, relevant, n_candidates=n_candidates, k=k, seed=seed
    )
    return metrics


def evaluate_per_user(
    generator: BPRMatrixFactorisation,
    booster: xgb.Booster,
    index: InteractionIndex,
    relevant: dict[int, set[int]],
    *,
    n_candidates: int,
    k: int = K,
    seed: int = 0,
) -> tuple[dict[str, dict[str, float]], dict[str, np.ndarray]]:
    """:func:`evaluate_systems` and, per system, the NDCG@k of every evaluated user (same user order
    for every system, so the quality gate can pair them)."""
    users = _sample_users(list(relevant), MAX_EVAL_USERS, seed)
    kc = min(n_candidates, index.n_items)
    cands = candidates(generator, index, users, kc)
    feats = build_features(index, [index.profile(int(u)) for u in users], cands)
    top, _ = rerank(booster, feats, len(users), kc, k)
    full = np.take_along_axis(cands, top, axis=1)
    pop = popularity_top(index, users, k)
    item_users = dict(enumerate(index.item_users.astype(int).tolist()))
    rel = {int(u): relevant[int(u)] for u in users}
    out, per_user = {}, {}
    for name, ranked in (("popularity", pop), ("candidate generator", cands[:, :k]), ("full model", full)):
        recs = {int(u): [int(x) for x in row if x >= 0] for u, row in zip(users, ranked, strict=True)}
        out[name] = ranking_metrics(
            recs, rel, k=k, n_items=index.n_items, item_users=item_users, n_users=index.n_users
        )
        per_user[name] = np.array([ndcg_at_k(recs[int(u)], rel[int(u)], k) for u in users if rel[int(u)]])
    return out, per_user


def quality_gate(per_user: dict[str, np.ndarray], *, n_relevant_users: int, k: int = K) -> QualityGate:
    """The full model against popularity on the same held-out users (NDCG@k per user, paired).

    Chance is 0: a recommender that never finds a held-out item scores 0 for every user.
    """
    notes = [
        "Measured on a model trained without each user's held-out interactions; the saved model is "
        "then refit on all of them by the same recipe."
    ]
    if n_relevant_users > MAX_EVAL_USERS:
        notes.append(f"Measured on a seeded sample of {MAX_EVAL_USERS:,} of {n_relevant_users:,} users.")
    return compare_per_item(
        f"NDCG@{k}",
        per_user["full model"],
        per_user["popularity"],
        baseline_name="recommending the most popular items (popularity)",
        chance=0.0,
        notes=notes,
    )


def train_recommender(
    data: InteractionData,
    *,
    config: TrainConfig | None = None,
    progress: Progress = None,
    should_stop: ShouldStop = None,
    device: torch.device | None = None,
) -> Recommender:
    """Train, evaluate and refit the two-stage recommender on an interaction log.

    Steps: hold out each user's latest interactions (test); inside the rest, hold out the latest
    again (ranker labels); train the generator on what is left, and the ranker on its candidates;
    retrain the generator on the whole training part and measure popularity, the generator and
    the full model on the test, and build the quality gate (the full model against popularity,
    NDCG@10 per held-out user, in :attr:`Recommender.gate`); finally refit the generator on
    everything for serving.

    Raises:
        TrainingError: the data gives the ranker nothing to learn from.
        TrainingCancelled: ``should_stop`` returned true.
    """
    config = config or TrainConfig()
    device = device or resolve_device()
    started = time.perf_counter()
    frame = data.interactions
    user_ids = sorted(frame["user"].unique())
    item_ids = list(data.items.index)
    user_pos = {u: k for k, u in enumerate(user_ids)}
    item_pos = {i: k for k, i in enumerate(item_ids)}
    categories = data.items["categories"].tolist()
    kc = min(config.n_candidates, len(item_ids))

    def fit_generator(part: pd.DataFrame, lo: float, hi: float, label: str) -> BPRMatrixFactorisation:
        u, i = _encode(part, user_pos, item_pos)
        return train_bpr(
            u,
            i,
            n_users=len(user_ids),
            n_items=len(item_ids),
            config=config.bpr,
            device=device,
            progress=scaled(progress, lo, hi, prefix=f"{label}: "),
            should_stop=should_stop,
        )

    train, test = temporal_split(frame, test_fraction=config.test_fraction, seed=config.seed)
    fit, val = temporal_split(train, test_fraction=config.test_fraction, seed=config.seed + 1)
    g_fit = fit_generator(fit, 0.0, 0.25, "Step 1/4, ranker data")
    index_fit = InteractionIndex(fit, user_ids, item_ids, categories, data.like_threshold)
    val_rel = _relevant(val, user_pos, item_pos)
    ranker_users = _sample_users(list(val_rel), MAX_RANKER_USERS, config.seed)
    cands = candidates(g_fit, index_fit, ranker_users, kc)
    feats = build_features(index_fit, [index_fit.profile(int(u)) for u in ranker_users], cands)
    labels = np.array(
        [
            int(item) in val_rel[int(u)]
            for u, item in zip(np.repeat(ranker_users, kc), feats.items, strict=True)
        ],
        dtype=np.float32,
    )
    report(progress, 0.25, "Step 2/4: training the ranker")
    booster = train_ranker(feats, labels, config.ranker_rounds, should_stop)
    g_train = fit_generator(train, 0.3, 0.6, "Step 3/4, evaluation")
    index_train = InteractionIndex(train, user_ids, item_ids, categories, data.like_threshold)
    test_rel = _relevant(test, user_pos, item_pos)
    metrics, per_user = evaluate_per_user(
        g_train, booster, index_train, test_rel, n_candidates=kc, seed=config.seed
    )
    gate = quality_gate(per_user, n_relevant_users=sum(1 for v in test_rel.values() if v))
    g_all = fit_generator(frame, 0.62, 1.0, "Step 4/4, final model on all data")
    info = {
        "recipe_version": RECIPE_VERSION,
        "n_candidates": kc,
        "train_seconds": round(time.perf_counter() - started, 1),
        "n_users": len(user_ids),
        "n_items": len(item_ids),
        "n_interactions": len(frame),
        "test_interactions": len(test),
        "split": "per-user latest 20% by time" if data.has_time else "per-user random 20%",
        "ranker_rows": int(len(labels)),
        "ranker_positives": int(labels.sum()),
        "device": device.type,
    }
    report(progress, 1.0, "Done")
    return Recommender(data, g_all, booster, metrics, info, gate=gate)
