"""The trained two-stage recommender, ready to serve: top-N per user with a reason for every item,
cold start from chosen items, similar items, and the global view (SHAP beeswarm, popularity bias).

Example:
    >>> model = RecommendService().load("movielens-100k")
    >>> model.recommend("196", n=10).table[["title", "reason"]]
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import shap
import torch
import xgboost as xgb

from lucid.core.errors import InvalidInputError
from lucid.core.quality import QualityGate
from lucid.domains.recommend.data import InteractionData
from lucid.domains.recommend.features import (
    FEATURE_LABELS,
    CandidateFeatures,
    InteractionIndex,
    Profile,
    build_features,
    reasons_from_shap,
)
from lucid.domains.recommend.model import N_CANDIDATES, BPRMatrixFactorisation, fold_in_user
from lucid.domains.recommend.ranking import SYSTEMS, K, generator_scores, popularity_top, rerank, top_unseen
from lucid.explain.explanation import check_additivity, make_explanation


@dataclass
class Recommendations:
    """Top-N for one user: a table (rank, item, title, categories, score, reason), the SHAP values."""

    user: str
    table: pd.DataFrame
    explanation: shap.Explanation
    reason_features: list[list[str]]


class Recommender:
    """A trained two-stage recommender over one interaction log, ready to serve.

    Build one with :func:`~lucid.domains.recommend.training.train_recommender` or read one with
    :func:`~lucid.domains.recommend.persistence.read_recommender`. Its methods are safe to
    call from several threads (the torch and XGBoost calls are serialised by a lock).
    """

    def __init__(
        self,
        data: InteractionData,
        generator: BPRMatrixFactorisation,
        booster: xgb.Booster,
        metrics: dict[str, dict[str, float]],
        info: dict[str, Any],
        *,
        gate: QualityGate | None = None,
    ) -> None:
        self.data = data
        self.generator = generator.eval()
        self.booster = booster
        self.metrics = metrics
        self.info = info
        #: The held-out comparison with popularity when just trained (a stored one is in its metadata).
        self.gate = gate
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
            cands = top_unseen(generator_scores(self.generator, vectors), seen, k)
            feats = build_features(self.index, profiles, cands)
            top, margin = rerank(self.booster, feats, len(profiles), k, n)
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
        if ratings is None:
            given = dict.fromkeys((self.item_index(i) for i in items), float("nan"))
        else:
            given = {self.item_index(i): float(r) for i, r in zip(items, ratings, strict=True)}
        idx = np.array(sorted(given), dtype=np.int64)
        # Without ratings every chosen item counts as liked, and reasons say "because you chose X".
        chosen = None if ratings is None else [given[i] for i in idx]
        with self._lock:
            vector = fold_in_user(self.generator, idx)
        profile = self.index.new_profile(idx, chosen)
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
        pop_top = popularity_top(self.index, np.arange(self.index.n_users), n)
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
        return metrics_table(self.metrics)


def metrics_table(metrics: dict[str, dict[str, float]]) -> pd.DataFrame:
    """Held-out metrics per system (``metrics[system][metric]``) as a table: a ``metric`` column, then
    one column per system in :data:`~lucid.domains.recommend.ranking.SYSTEMS` order."""
    frame = pd.DataFrame({s: metrics[s] for s in SYSTEMS if s in metrics})
    frame.index.name = "metric"
    return frame.reset_index()
