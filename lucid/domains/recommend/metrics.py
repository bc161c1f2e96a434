"""Ranking metrics for top-N recommendations (no streamlit, no torch).

Every function takes, per user, the ranked list of recommended items and the set of relevant
(held-out) items, and averages over the users that have at least one relevant item.

Example:
    >>> ranking_metrics({"u1": ["a", "b"]}, {"u1": {"b"}}, k=2)["precision@2"]
    0.5
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Mapping, Sequence
from typing import TypeVar

import numpy as np


def precision_at_k(ranked: Sequence[Hashable], relevant: Collection[Hashable], k: int) -> float:
    """Share of the first ``k`` recommendations that are relevant (always divided by ``k``)."""
    return sum(1 for item in list(ranked)[:k] if item in relevant) / k


def recall_at_k(ranked: Sequence[Hashable], relevant: Collection[Hashable], k: int) -> float:
    """Share of the relevant items found in the first ``k`` recommendations."""
    if not relevant:
        return 0.0
    return sum(1 for item in list(ranked)[:k] if item in relevant) / len(relevant)


def ndcg_at_k(ranked: Sequence[Hashable], relevant: Collection[Hashable], k: int) -> float:
    """Normalised discounted cumulative gain with binary relevance: DCG / the best possible DCG."""
    if not relevant:
        return 0.0
    dcg = sum(1.0 / np.log2(pos + 2) for pos, item in enumerate(list(ranked)[:k]) if item in relevant)
    ideal = sum(1.0 / np.log2(pos + 2) for pos in range(min(len(relevant), k)))
    return float(dcg / ideal)


def average_precision_at_k(ranked: Sequence[Hashable], relevant: Collection[Hashable], k: int) -> float:
    """Mean of precision@i over the positions i of the hits, divided by min(|relevant|, k)."""
    if not relevant:
        return 0.0
    hits, total = 0, 0.0
    for pos, item in enumerate(list(ranked)[:k]):
        if item in relevant:
            hits += 1
            total += hits / (pos + 1)
    return total / min(len(relevant), k)


def hit_at_k(ranked: Sequence[Hashable], relevant: Collection[Hashable], k: int) -> float:
    """1 when at least one of the first ``k`` recommendations is relevant, else 0."""
    return float(any(item in relevant for item in list(ranked)[:k]))


# Users and items may be ids of any hashable type; a TypeVar keeps e.g. dict[int, list[int]] acceptable
# (a Mapping is invariant in its key type, so Mapping[Hashable, ...] would reject it).
UserT = TypeVar("UserT", bound=Hashable)
ItemT = TypeVar("ItemT", bound=Hashable)


def catalogue_coverage(recommendations: Mapping[UserT, Sequence[ItemT]], n_items: int, k: int) -> float:
    """Share of the catalogue that appears in at least one user's top ``k``."""
    shown = {item for ranked in recommendations.values() for item in list(ranked)[:k]}
    return len(shown) / n_items if n_items else 0.0


def novelty(
    recommendations: Mapping[UserT, Sequence[ItemT]],
    item_users: Mapping[ItemT, int],
    n_users: int,
    k: int,
) -> float:
    """Mean self-information, -log2 p(item), of the recommended items, in bits.

    ``p(item) = (users who have the item + 1) / (n_users + 1)``, from the training data: the
    rarer the recommended items, the higher the novelty.
    """
    bits = [
        -np.log2((item_users.get(item, 0) + 1) / (n_users + 1))
        for ranked in recommendations.values()
        for item in list(ranked)[:k]
    ]
    return float(np.mean(bits)) if bits else 0.0


def ranking_metrics(
    recommendations: Mapping[UserT, Sequence[ItemT]],
    relevant: Mapping[UserT, Collection[ItemT]],
    *,
    k: int = 10,
    n_items: int | None = None,
    item_users: Mapping[ItemT, int] | None = None,
    n_users: int | None = None,
) -> dict[str, float]:
    """All the ranking metrics of one recommender, averaged over users with relevant items.

    Args:
        recommendations: user -> ranked items.
        relevant: user -> the held-out items that count as hits.
        k: cut-off.
        n_items: catalogue size, for coverage (skipped when ``None``).
        item_users: item -> how many training users have it, for novelty (skipped when ``None``).
        n_users: number of training users, for novelty.

    Returns:
        ``precision@k``, ``recall@k``, ``ndcg@k``, ``map@k``, ``hit_rate@k``, ``users`` and, when their
        inputs are given, ``coverage@k`` and ``novelty@k``.
    """
    users = [u for u, rel in relevant.items() if rel]
    out: dict[str, float] = {}
    funcs = {
        "precision": precision_at_k,
        "recall": recall_at_k,
        "ndcg": ndcg_at_k,
        "map": average_precision_at_k,
        "hit_rate": hit_at_k,
    }
    for name, fn in funcs.items():
        scores = [fn(recommendations.get(u, []), set(relevant[u]), k) for u in users]
        out[f"{name}@{k}"] = float(np.mean(scores)) if scores else 0.0
    if n_items is not None:
        out[f"coverage@{k}"] = catalogue_coverage(recommendations, n_items, k)
    if item_users is not None and n_users is not None:
        out[f"novelty@{k}"] = novelty(recommendations, item_users, n_users, k)
    out["users"] = float(len(users))
    return out
