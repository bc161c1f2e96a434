"""Recommendations: top-N items per user with a reason for every item, and ranking metrics
against baselines.

Two stages. A BPR matrix factorisation (torch) proposes :data:`lucid.domains.recommend.model.N_CANDIDATES`
candidates per user; an XGBoost ranker re-orders them from interpretable features
(:mod:`lucid.domains.recommend.features`) and is explained exactly with TreeSHAP (``pred_contribs``).
Training is leakage-free: each user's latest 20% of interactions (random ones when there is no
time) are held out for the test; the ranker learns from a second hold-out inside the training
part; the metrics compare popularity, the candidate generator alone and the full model on the
same test. The model that serves recommendations is then refit on all interactions by the same
recipe.

Example:
    >>> service = RecommendService()
    >>> model = service.load("movielens-100k")          # built and stored on first use
    >>> recs = model.recommend("196", n=10)
    >>> recs.table[["title", "reason"]]
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import shap
import torch
import xgboost as xgb
from safetensors.torch import load_file, save_file

from lucid.core.device import resolve_device, xgboost_device
from lucid.core.errors import InvalidInputError, ModelNotFoundError, TrainingCancelled, TrainingError
from lucid.core.store import ModelStore, data_hash, validate_name
from lucid.domains.recommend.data import (
    InteractionData,
    movielens_interaction_data,
    temporal_split,
)
from lucid.domains.recommend.features import (
    FEATURE_LABELS,
    CandidateFeatures,
    InteractionIndex,
    Profile,
    build_features,
    reasons_from_shap,
)
from lucid.domains.recommend.metrics import ranking_metrics
from lucid.domains.recommend.model import (
    N_CANDIDATES,
    RANKER_PARAMS,
    RANKER_ROUNDS,
    RECIPE_VERSION,
    RECOMMEND_MODELS,
    BPRConfig,
    BPRMatrixFactorisation,
    fold_in_user,
    train_bpr,
)
from lucid.explain.explanation import check_additivity, make_explanation

DOMAIN = "recommend"
DEFAULT_MODEL = "movielens-100k"
K = 10
MAX_EVAL_USERS = 5000
MAX_RANKER_USERS = 5000
SYSTEMS = ("popularity", "candidate generator", "full model")

Progress = Callable[[float, str], None]
StopHook = Callable[[], bool]


def _noop(_fraction: float, _message: str) -> None:
    return None


def _scaled(progress: Progress | None, lo: float, hi: float) -> Progress:
    report = progress or _noop
    return lambda fraction, message: report(lo + (hi - lo) * float(fraction), message)


@dataclass(frozen=True)
class TrainConfig:
    """How a recommender is trained."""

    bpr: BPRConfig = field(default_factory=BPRConfig)
    n_candidates: int = N_CANDIDATES
    ranker_rounds: int = RANKER_ROUNDS
    test_fraction: float = 0.2
    seed: int = 0


@dataclass
class Recommendations:
    """Top-N for one user: a table (rank, item, title, categories, score, reason), the SHAP values."""

    user: str
    table: pd.DataFrame
    explanation: shap.Explanation
    reason_features: list[list[str]]


# ----------------------------------------------------------------------------------------------
# Stages shared by training, evaluation and serving
# ----------------------------------------------------------------------------------------------


def _generator_scores(model: BPRMatrixFactorisation, user_vectors: torch.Tensor) -> np.ndarray:
    with torch.inference_mode():
        scores = user_vectors @ model.item_emb.weight.T + model.item_bias.weight.T
    return scores.float().numpy()


def _top_unseen(scores: np.ndarray, seen: Any, k: int) -> np.ndarray:
    """Top ``k`` item indices per row of ``scores``, never an item marked in ``seen`` (sparse rows)."""
    scores = scores.copy()
    coo = seen.tocoo()
    scores[coo.row, coo.col] = -np.inf
    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1)


def _candidates(
    model: BPRMatrixFactorisation, index: InteractionIndex, users: np.ndarray, k: int
) -> np.ndarray:
    vectors = model.user_emb.weight.detach()[torch.as_tensor(users, dtype=torch.long)]
    return _top_unseen(_generator_scores(model, vectors), index.seen_mask(users), k)


def _popularity_top(index: InteractionIndex, users: np.ndarray, k: int) -> np.ndarray:
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


def _rerank(
    booster: xgb.Booster, feats: CandidateFeatures, n_rows: int, k_cands: int, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Positions (into each user's candidate block) of the ``n`` best candidates, and all margins."""
    margin = booster.predict(xgb.DMatrix(feats.values, feature_names=feats.feature_names), output_margin=True)
    margin = margin.reshape(n_rows, k_cands)
    return np.argsort(-margin, axis=1, kind="stable")[:, :n], margin


def _train_ranker(
    feats: CandidateFeatures, labels: np.ndarray, rounds: int, should_stop: StopHook | None
) -> xgb.Booster:
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
    if should_stop is not None and should_stop():
        raise TrainingCancelled("Training was stopped before it finished; nothing was saved.")
    return booster


# ----------------------------------------------------------------------------------------------
# The trained recommender
# ----------------------------------------------------------------------------------------------


class Recommender:
    """A trained two-stage recommender over one interaction log, ready to serve.

    Build one with :func:`train_recommender` or :meth:`Recommender.load`. Its methods are safe to
    call from several threads (the torch and XGBoost calls are serialised by a lock).
    """

    def __init__(
        self,
        data: InteractionData,
        generator: BPRMatrixFactorisation,
        booster: xgb.Booster,
        metrics: dict[str, dict[str, float]],
        info: dict[str, Any],
    ) -> None:
        self.data = data
        self.generator = generator.eval()
        self.booster = booster
        self.metrics = metrics
        self.info = info
        self.user_ids = sorted(data.interactions["user"].unique())
        self.item_ids = list(data.items.index)
        self._user_pos = {u: k for k, u in enumerate(self.user_ids)}
        self._item_pos = {i: k for k, i in enumerate(self.item_ids)}
        self.titles = data.items["title"].astype(str).tolist()
        self.index = InteractionIndex(
            data.interactions,
            self.user_ids,
            self.item_ids,
            data.items["categories"].tolist(),
            data.like_threshold,
        )
        self.feature_names = self.index.feature_names()
        self.n_candidates = int(info.get("n_candidates", N_CANDIDATES))
        self._lock = threading.Lock()

    # -- look-ups ----------------------------------------------------------------------------
    @property
    def item_word(self) -> str:
        return self.data.item_word

    def knows_user(self, user: str) -> bool:
        """Whether the model was trained with this user id."""
        return str(user).strip() in self._user_pos

    def user_index(self, user: str) -> int:
        """Index of a user id; raises :class:`InvalidInputError` for an unknown id."""
        key = str(user).strip()
        if key not in self._user_pos:
            examples = ", ".join(self.user_ids[:5])
            raise InvalidInputError(
                f"Unknown user id '{key[:40]}'. This model knows {len(self.user_ids):,} users "
                f"(e.g. {examples}); for someone new, enter the {self.item_word}s they like instead."
            )
        return self._user_pos[key]

    def item_index(self, item: str) -> int:
        """Index of an item id; raises :class:`InvalidInputError` for an unknown id."""
        key = str(item).strip()
        if key not in self._item_pos:
            raise InvalidInputError(f"Unknown {self.item_word} id '{key[:40]}'.")
        return self._item_pos[key]

    def item_label(self, idx: int) -> str:
        return self.titles[idx]

    def history(self, user: str) -> pd.DataFrame:
        """A user's interactions, latest first: item, title, categories, rating, time."""
        u = self.user_index(user)
        lo, hi = self.index.indptr[u], self.index.indptr[u + 1]
        items = self.index._i[lo:hi]
        out = pd.DataFrame(
            {
                "item": [self.item_ids[i] for i in items],
                "title": [self.titles[i] for i in items],
                "categories": self.data.items["categories"].to_numpy()[items],
            }
        )
        if self.data.has_ratings:
            out["rating"] = self.index._r[lo:hi]
        if self.index.has_time:
            out["time"] = pd.to_datetime(self.index._t[lo:hi], unit="s", utc=True).strftime("%Y-%m-%d %H:%M")
        return out.iloc[::-1].reset_index(drop=True)

    # -- recommending --------------------------------------------------------------------------
    def _recommend_profiles(
        self, profiles: list[Profile], vectors: torch.Tensor, seen: Any, n: int
    ) -> tuple[np.ndarray, np.ndarray, CandidateFeatures, np.ndarray]:
        """Top-``n`` candidate positions per user, their margins, features and candidates."""
        k = min(self.n_candidates, self.index.n_items)
        with self._lock:
            cands = _top_unseen(_generator_scores(self.generator, vectors), seen, k)
            feats = build_features(self.index, profiles, cands)
            top, margin = _rerank(self.booster, feats, len(profiles), k, n)
        return top, np.take_along_axis(margin, top, axis=1), feats, cands

    def _explain_rows(self, feats: CandidateFeatures, rows: np.ndarray) -> shap.Explanation:
        with self._lock:
            contribs = self.booster.predict(
                xgb.DMatrix(feats.values[rows], feature_names=feats.feature_names), pred_contribs=True
            )
        return make_explanation(
            contribs[:, :-1],
            contribs[:, -1],
            feats.values[rows],
            feature_names=[FEATURE_LABELS.get(f, f) for f in feats.feature_names],
            output_names="log-odds that the user picks the item",
        )

    def _package(
        self, user: str, feats: CandidateFeatures, rows: np.ndarray, margins: np.ndarray
    ) -> Recommendations:
        expl = self._explain_rows(feats, rows)
        check_additivity(expl, margins, atol=1e-3)
        reasons, quoted = [], []
        for j, row in enumerate(rows):
            text, used = reasons_from_shap(
                np.asarray(expl.values[j]),
                row=int(row),
                feats=feats,
                index=self.index,
                titles=self.titles,
                rating_scale=self.data.rating_scale,
                item_word=self.item_word,
            )
            reasons.append(text)
            quoted.append(used)
        items = feats.items[rows]
        table = pd.DataFrame(
            {
                "rank": np.arange(1, len(rows) + 1),
                "item": [self.item_ids[i] for i in items],
                "title": [self.titles[i] for i in items],
                "categories": self.data.items["categories"].to_numpy()[items],
                "score": 1.0 / (1.0 + np.exp(-margins.astype(np.float64))),
                "reason": reasons,
            }
        )
        return Recommendations(user=user, table=table, explanation=expl, reason_features=quoted)

    def recommend(self, user: str, n: int = K) -> Recommendations:
        """Top ``n`` items for a known user, never one already in their history, each with a reason.

        Raises:
            InvalidInputError: unknown user id.
        """
        u = self.user_index(user)
        vectors = self.generator.user_emb.weight.detach()[[u]]
        top, margins, feats, _ = self._recommend_profiles(
            [self.index.profile(u)], vectors, self.index.seen_mask(np.array([u])), n
        )
        return self._package(str(user).strip(), feats, top[0], margins[0])

    def recommend_new_user(
        self, items: Sequence[str], n: int = K, ratings: Sequence[float] | None = None
    ) -> Recommendations:
        """Top ``n`` for someone not in the data, from the items they say they like (cold start).

        Raises:
            InvalidInputError: no items, or unknown item ids.
        """
        if not items:
            raise InvalidInputError(f"Choose at least one {self.item_word} the new user likes.")
        if ratings is not None and len(ratings) != len(items):
            raise InvalidInputError("Give one rating per chosen item, or none.")
        given = {
            self.item_index(i): (None if ratings is None else float(r))
            for i, r in zip(items, items if ratings is None else ratings, strict=True)
        }
        idx = np.array(sorted(given), dtype=np.int64)
        # Without ratings every chosen item counts as liked, and reasons say "because you chose X".
        ratings = None if ratings is None else [given[i] for i in idx]
        with self._lock:
            vector = fold_in_user(self.generator, idx)
        profile = self.index.new_profile(idx, ratings)
        seen = self.index.matrix[:1].copy() * 0
        seen = seen.tolil()
        seen[0, idx] = 1
        top, margins, feats, _ = self._recommend_profiles([profile], vector[None, :], seen.tocsr(), n)
        return self._package("new user", feats, top[0], margins[0])

    def recommend_all(self, n: int = K, *, reasons: bool = True) -> pd.DataFrame:
        """Top ``n`` for every user: user, rank, item, title, score and (optionally) the reason."""
        return self._recommend_indices(np.arange(self.index.n_users), n, reasons=reasons)

    def recommend_users(self, users: Sequence[str], n: int = K, *, reasons: bool = True) -> pd.DataFrame:
        """Top ``n`` for the given known users (raises :class:`InvalidInputError` for unknown ids)."""
        idx = np.array([self.user_index(u) for u in users], dtype=np.int64)
        return self._recommend_indices(idx, n, reasons=reasons)

    def _recommend_indices(
        self, users: np.ndarray, n: int, *, reasons: bool, batch: int = 2000
    ) -> pd.DataFrame:
        frames = []
        for lo in range(0, len(users), batch):
            chunk = users[lo : lo + batch]
            vectors = self.generator.user_emb.weight.detach()[torch.as_tensor(chunk)]
            profiles = [self.index.profile(int(u)) for u in chunk]
            top, margins, feats, _ = self._recommend_profiles(
                profiles, vectors, self.index.seen_mask(chunk), n
            )
            k = feats.values.shape[0] // len(chunk)
            rows = (top + (np.arange(len(chunk)) * k)[:, None]).reshape(-1)
            frame = pd.DataFrame(
                {
                    "user": np.repeat([self.user_ids[u] for u in chunk], top.shape[1]),
                    "rank": np.tile(np.arange(1, top.shape[1] + 1), len(chunk)),
                    "item": [self.item_ids[i] for i in feats.items[rows]],
                    "title": [self.titles[i] for i in feats.items[rows]],
                    "score": 1.0 / (1.0 + np.exp(-margins.reshape(-1).astype(np.float64))),
                }
            )
            if reasons:
                expl = self._explain_rows(feats, rows)
                frame["reason"] = [
                    reasons_from_shap(
                        np.asarray(expl.values[j]),
                        row=int(row),
                        feats=feats,
                        index=self.index,
                        titles=self.titles,
                        rating_scale=self.data.rating_scale,
                        item_word=self.item_word,
                    )[0]
                    for j, row in enumerate(rows)
                ]
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)

    def similar_items(self, item: str, n: int = K) -> pd.DataFrame:
        """The ``n`` items most often chosen by the same users: item, title, similarity, shared users."""
        i = self.item_index(item)
        sims = self.index.similarity_block(np.array([i]), np.arange(self.index.n_items))[0]
        sims[i] = -np.inf
        top = np.argsort(-sims, kind="stable")[:n]
        top = top[np.isfinite(sims[top]) & (sims[top] > 0)]
        shared = self.index.cooccurrence[i].toarray().ravel()
        return pd.DataFrame(
            {
                "item": [self.item_ids[j] for j in top],
                "title": [self.titles[j] for j in top],
                "categories": self.data.items["categories"].to_numpy()[top],
                "similarity": sims[top].astype(float),
                "shared users": shared[top].astype(int),
            }
        )

    # -- global view ---------------------------------------------------------------------------
    def global_explanation(self, max_users: int = 300, n: int = K, seed: int = 0) -> shap.Explanation:
        """SHAP values of the top-``n`` items of up to ``max_users`` users (for the beeswarm)."""
        rng = np.random.default_rng(seed)
        users = np.sort(
            rng.choice(self.index.n_users, size=min(max_users, self.index.n_users), replace=False)
        )
        vectors = self.generator.user_emb.weight.detach()[torch.as_tensor(users)]
        profiles = [self.index.profile(int(u)) for u in users]
        top, _, feats, _ = self._recommend_profiles(profiles, vectors, self.index.seen_mask(users), n)
        k = feats.values.shape[0] // len(users)
        rows = (top + (np.arange(len(users)) * k)[:, None]).reshape(-1)
        return self._explain_rows(feats, rows)

    def popularity_bias(self, top_all: pd.DataFrame | None = None, n: int = K) -> pd.DataFrame:
        """Per item: how many users have it and how often it is recommended by each system.

        Returns columns item, title, users (popularity), popularity rank, full model, popularity.
        """
        top_all = top_all if top_all is not None else self.recommend_all(n, reasons=False)
        counts = top_all["item"].value_counts()
        pop_top = _popularity_top(self.index, np.arange(self.index.n_users), n)
        pop_counts = pd.Series(
            np.bincount(pop_top[pop_top >= 0].ravel(), minlength=self.index.n_items), index=self.item_ids
        )
        order = self.index.popularity_ranking()
        frame = pd.DataFrame(
            {
                "item": [self.item_ids[i] for i in order],
                "title": [self.titles[i] for i in order],
                "users": self.index.item_users[order].astype(int),
                "popularity rank": np.arange(1, len(order) + 1),
            }
        )
        frame["full model"] = frame["item"].map(counts).fillna(0).astype(int).to_numpy()
        frame["popularity"] = pop_counts.reindex(frame["item"]).to_numpy()
        return frame

    def metrics_table(self) -> pd.DataFrame:
        """Held-out metrics of the three systems side by side (rows: metrics, columns: systems)."""
        frame = pd.DataFrame({s: self.metrics[s] for s in SYSTEMS if s in self.metrics})
        frame.index.name = "metric"
        return frame.reset_index()

    # -- persistence -----------------------------------------------------------------------------
    def write(self, folder: Path) -> None:
        """Write the model's files into ``folder`` (safetensors, XGBoost JSON, Parquet, JSON)."""
        save_file(
            {k: v.contiguous() for k, v in self.generator.state_dict().items()},
            folder / "generator.safetensors",
        )
        self.booster.save_model(str(folder / "ranker.json"))
        self.data.interactions.to_parquet(folder / "interactions.parquet", index=False)
        self.data.items.reset_index().to_parquet(folder / "items.parquet", index=False)
        if self.data.users is not None:
            self.data.users.rename_axis("user").reset_index().astype(str).to_parquet(
                folder / "users.parquet", index=False
            )
        config = {
            "rating_scale": self.data.rating_scale,
            "like_threshold": self.data.like_threshold,
            "item_word": self.data.item_word,
            "notes": self.data.notes,
            "metrics": self.metrics,
            **self.info,
        }
        (folder / "config.json").write_text(json.dumps(config, indent=2, default=str))

    @classmethod
    def read(cls, folder: Path) -> Recommender:
        """Load a model written by :meth:`write`."""
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
        info = {
            k: v
            for k, v in config.items()
            if k not in ("rating_scale", "like_threshold", "item_word", "notes", "metrics")
        }
        return cls(data, generator, booster, config.get("metrics", {}), info)


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------


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
    users = np.array(sorted(users), dtype=np.int64)
    if len(users) > limit:
        users = np.sort(np.random.default_rng(seed).choice(users, size=limit, replace=False))
    return users


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
    users = _sample_users(list(relevant), MAX_EVAL_USERS, seed)
    kc = min(n_candidates, index.n_items)
    cands = _candidates(generator, index, users, kc)
    feats = build_features(index, [index.profile(int(u)) for u in users], cands)
    top, _ = _rerank(booster, feats, len(users), kc, k)
    full = np.take_along_axis(cands, top, axis=1)
    pop = _popularity_top(index, users, k)
    item_users = dict(enumerate(index.item_users.astype(int).tolist()))
    rel = {int(u): relevant[int(u)] for u in users}
    out = {}
    for name, ranked in (("popularity", pop), ("candidate generator", cands[:, :k]), ("full model", full)):
        recs = {int(u): [int(x) for x in row if x >= 0] for u, row in zip(users, ranked, strict=True)}
        out[name] = ranking_metrics(
            recs, rel, k=k, n_items=index.n_items, item_users=item_users, n_users=index.n_users
        )
    return out


def train_recommender(
    data: InteractionData,
    *,
    config: TrainConfig | None = None,
    progress: Progress | None = None,
    should_stop: StopHook | None = None,
    device: torch.device | None = None,
) -> Recommender:
    """Train, evaluate and refit the two-stage recommender on an interaction log.

    Steps: hold out each user's latest interactions (test); inside the rest, hold out the latest
    again (ranker labels); train the generator on what is left, and the ranker on its candidates;
    retrain the generator on the whole training part and measure popularity, the generator and
    the full model on the test; finally refit the generator on everything for serving.

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
        report = _scaled(progress, lo, hi)
        return train_bpr(
            u,
            i,
            n_users=len(user_ids),
            n_items=len(item_ids),
            config=config.bpr,
            device=device,
            progress=lambda f, m: report(f, f"{label}: {m}"),
            should_stop=should_stop,
        )

    train, test = temporal_split(frame, test_fraction=config.test_fraction, seed=config.seed)
    fit, val = temporal_split(train, test_fraction=config.test_fraction, seed=config.seed + 1)
    g_fit = fit_generator(fit, 0.0, 0.25, "Step 1/4, ranker data")
    index_fit = InteractionIndex(fit, user_ids, item_ids, categories, data.like_threshold)
    val_rel = _relevant(val, user_pos, item_pos)
    ranker_users = _sample_users(list(val_rel), MAX_RANKER_USERS, config.seed)
    cands = _candidates(g_fit, index_fit, ranker_users, kc)
    feats = build_features(index_fit, [index_fit.profile(int(u)) for u in ranker_users], cands)
    labels = np.array(
        [
            int(item) in val_rel[int(u)]
            for u, item in zip(np.repeat(ranker_users, kc), feats.items, strict=True)
        ],
        dtype=np.float32,
    )
    _scaled(progress, 0.25, 0.3)(0.0, "Step 2/4: training the ranker")
    booster = _train_ranker(feats, labels, config.ranker_rounds, should_stop)
    g_train = fit_generator(train, 0.3, 0.6, "Step 3/4, evaluation")
    index_train = InteractionIndex(train, user_ids, item_ids, categories, data.like_threshold)
    metrics = evaluate_systems(
        g_train, booster, index_train, _relevant(test, user_pos, item_pos), n_candidates=kc, seed=config.seed
    )
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
    (progress or _noop)(1.0, "Done")
    return Recommender(data, g_all, booster, metrics, info)


# ----------------------------------------------------------------------------------------------
# The service
# ----------------------------------------------------------------------------------------------


def default_card(name: str) -> dict[str, Any]:
    """The registry facts of a built-in model (title, source, licence, data, description)."""
    spec = RECOMMEND_MODELS.get(name)
    return {
        "Model": spec.title,
        "How it works": spec.description,
        "Weights": "trained by Lucid's own recipe on first use and kept in the model store",
        "Data source": spec.source,
        "Licence": spec.licence,
        "Training and test data": spec.data,
    }


class RecommendService:
    """Load, train and save recommenders (built-in and user-trained).

    Example:
        >>> service = RecommendService()
        >>> model = service.load("movielens-100k", progress=print)
        >>> model.recommend("1").table
    """

    def __init__(self, store: ModelStore | None = None) -> None:
        self._store = store
        self._models: dict[str, Recommender] = {}
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    @property
    def store(self) -> ModelStore:
        return self._store or ModelStore()

    def model_names(self) -> list[str]:
        """Built-in names first, then saved user models."""
        saved = [m.name for m in self.store.list(DOMAIN) if m.name not in RECOMMEND_MODELS]
        return RECOMMEND_MODELS.names() + saved

    def is_built(self, name: str) -> bool:
        if not self.store.exists(DOMAIN, name):
            return False
        meta = self.store.load(DOMAIN, name).metadata
        return name not in RECOMMEND_MODELS or meta.get("recipe_version") == RECIPE_VERSION

    def needs_build(self, name: str) -> bool:
        """True for a built-in model that is not in memory and must be trained before use."""
        return name in RECOMMEND_MODELS and name not in self._models and not self.is_built(name)

    def load(self, name: str = DEFAULT_MODEL, *, progress: Progress | None = None) -> Recommender:
        """A ready recommender: from memory, from the store, or (built-in only) trained now and stored.

        Raises:
            ModelNotFoundError: neither built-in nor saved.
        """
        with self._lock:
            if name in self._models:
                return self._models[name]
            loading = self._loading.setdefault(name, threading.Lock())
        # Building the default (about half a minute) or reading a model holds only this name's lock, so
        # sessions using models already loaded are never made to wait for it.
        with loading:
            with self._lock:
                if name in self._models:  # loaded by another session while this one waited
                    return self._models[name]
            if name in RECOMMEND_MODELS and not self.is_built(name):
                model = self._build_default(name, progress)
            elif self.store.exists(DOMAIN, name):
                model = Recommender.read(self.store.load(DOMAIN, name).path)
            else:
                raise ModelNotFoundError(name, self.model_names(), kind="recommendation model")
            with self._lock:
                self._models[name] = model
            return model

    def _build_default(self, name: str, progress: Progress | None) -> Recommender:
        data = movielens_interaction_data(RECOMMEND_MODELS.create(name))
        model = train_recommender(data, progress=progress)
        self._save(name, model, base_model=name)
        return model

    def _save(self, name: str, model: Recommender, base_model: str) -> None:
        frame = model.data.interactions
        meta = {
            "base_model": base_model,
            "recipe_version": RECIPE_VERSION,
            "data_hash": data_hash(frame.to_csv(index=False)),
            "metrics": model.metrics,
            **{k: v for k, v in model.info.items() if k != "recipe_version"},
        }
        self.store.save(DOMAIN, name, model.write, meta)

    def train(
        self,
        data: InteractionData,
        name: str,
        *,
        config: TrainConfig | None = None,
        progress: Progress | None = None,
        should_stop: StopHook | None = None,
    ) -> Recommender:
        """Train on a user's interaction log and save the model under ``name``.

        Raises:
            InvalidInputError: invalid name, or the name of a built-in model.
        """
        name = validate_name(name)
        if name in RECOMMEND_MODELS:
            raise InvalidInputError(f"'{name}' is the name of a built-in model; choose another name.")
        model = train_recommender(data, config=config, progress=progress, should_stop=should_stop)
        self._save(name, model, base_model="BPR matrix factorisation + XGBoost ranker")
        with self._lock:
            self._models[name] = model
        return model

    def card(self, name: str, model: Recommender | None = None) -> dict[str, Any]:
        """A model card: source, licence, data, held-out metrics and limits."""
        if name in RECOMMEND_MODELS:
            card = default_card(name)
        else:
            card = {
                "Model": f"{name} (trained on an uploaded interaction log)",
                "How it works": RECOMMEND_MODELS.get(DEFAULT_MODEL).description.replace("movies", "items"),
                "Weights": "trained by Lucid on the uploaded data; stored in the model store",
                "Licence": "the uploader's data; the model's code is part of Lucid",
            }
        if model is not None:
            card["Size"] = (
                f"{model.info.get('n_users', 0):,} users, {model.info.get('n_items', 0):,} items, "
                f"{model.info.get('n_interactions', 0):,} interactions"
            )
            card["Held-out split"] = (
                f"{model.info.get('split', '')}; {model.info.get('test_interactions', 0):,} test interactions"
            )
            card["Metrics on held-out data"] = model.metrics_table().round(4)
            card["Training time"] = (
                f"{model.info.get('train_seconds', 0)} s on {model.info.get('device', 'cpu')}"
            )
        card["Limits"] = (
            "Learns only from who interacted with what (plus categories and ratings when given); it knows "
            "nothing about items no one has chosen yet. A held-out item counts as a hit whether it was "
            "liked or not. Recommendations favour popular items more than a random pick would (see the "
            "popularity-bias chart). Reasons describe the ranker's SHAP values, not a causal account."
        )
        return card


def ensure_default_models(progress: Progress | None = None, store: ModelStore | None = None) -> list[str]:
    """Build and store every built-in recommender that is missing or from an older recipe.

    Returns:
        The names that were built now.
    """
    service = RecommendService(store)
    built = []
    for name in RECOMMEND_MODELS.names():
        if not service.is_built(name):
            service.load(name, progress=progress)
            built.append(name)
    return built
