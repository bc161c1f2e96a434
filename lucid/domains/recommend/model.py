"""Recommendation models: the BPR matrix-factorisation candidate generator, the ranker recipe and the
registry of built-in recommenders.

The recommender has two stages. A collaborative candidate generator (matrix factorisation trained
with Bayesian Personalised Ranking, in torch, on the device from :mod:`lucid.core.device`) proposes
the items a user is most likely to pick; a gradient-boosted ranker (XGBoost) re-orders those
candidates from a handful of interpretable features, so every score can be explained exactly with
TreeSHAP. The feature engineering is in :mod:`~lucid.domains.recommend.features`, the pipeline in
:mod:`~lucid.domains.recommend.training`, the demo data in :mod:`~lucid.domains.recommend.movielens`;
this module holds the torch module, its training loop, the ranker's hyper-parameters and the registry.

Example:
    >>> model = train_bpr(users, items, n_users=10, n_items=20, config=BPRConfig(dim=8, epochs=5))
    >>> model.score_all(torch.arange(10)).shape
    torch.Size([10, 20])
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from lucid.core.device import resolve_device
from lucid.core.progress import Progress, ShouldStop, check_stop
from lucid.core.registry import ModelRegistry
from lucid.domains.recommend.movielens import (
    MOVIELENS_LICENCE,
    MOVIELENS_SOURCE,
    MovieLensTables,
    load_movielens,
)

#: Bumped whenever the training recipe changes, so stored defaults are rebuilt.
RECIPE_VERSION = "recommend-2"

# ----------------------------------------------------------------------------------------------
# Candidate generator: matrix factorisation trained with BPR
# ----------------------------------------------------------------------------------------------


class BPRMatrixFactorisation(nn.Module):
    """Score(user, item) = <user vector, item vector> + item bias."""

    def __init__(self, n_users: int, n_items: int, dim: int = 64) -> None:
        super().__init__()
        self.user_emb = nn.Embedding(n_users, dim)
        self.item_emb = nn.Embedding(n_items, dim)
        self.item_bias = nn.Embedding(n_items, 1)
        nn.init.normal_(self.user_emb.weight, std=0.05)
        nn.init.normal_(self.item_emb.weight, std=0.05)
        nn.init.zeros_(self.item_bias.weight)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores of matching (user, item) pairs."""
        u = self.user_emb(users)
        v = self.item_emb(items)
        return (u * v).sum(-1) + self.item_bias(items).squeeze(-1)

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        """Scores of every item for each of ``users`` (rows: users, columns: items)."""
        return self.user_emb(users) @ self.item_emb.weight.T + self.item_bias.weight.T


@dataclass(frozen=True)
class BPRConfig:
    """Hyper-parameters of the candidate generator."""

    dim: int = 64
    epochs: int = 25
    batch_size: int = 8192
    lr: float = 0.02
    weight_decay: float = 1e-5
    l2: float = 1e-4
    seed: int = 0


def train_bpr(
    users: np.ndarray,
    items: np.ndarray,
    *,
    n_users: int,
    n_items: int,
    config: BPRConfig | None = None,
    device: torch.device | str | None = None,
    progress: Progress = None,
    should_stop: ShouldStop = None,
) -> BPRMatrixFactorisation:
    """Train a BPR matrix factorisation on positive (user, item) pairs.

    Each step samples, for every positive pair, one item the user has not interacted with and
    pushes the positive's score above it (the BPR log-sigmoid loss). On CUDA the step runs under
    autocast with a gradient scaler.

    Args:
        users: user index of each positive interaction.
        items: item index of each positive interaction.
        n_users: number of users (indices are ``0..n_users-1``).
        n_items: number of items.
        config: hyper-parameters.
        device: where to train (default: :func:`lucid.core.device.resolve_device`).
        progress: called with (fraction done, message) after every epoch.
        should_stop: polled after every batch; when it returns true, :class:`TrainingCancelled` is raised.

    Returns:
        The trained model, on the CPU, in eval mode.
    """
    config = config or BPRConfig()
    device = torch.device(device) if device is not None else resolve_device()
    threads = torch.get_num_threads()
    if device.type == "cpu":
        # Small batched ops: one thread avoids costly contention between threads on a busy CPU.
        torch.set_num_threads(1)
    try:
        return _train_bpr_loop(users, items, n_users, n_items, config, device, progress, should_stop)
    finally:
        torch.set_num_threads(threads)


def _train_bpr_loop(
    users: np.ndarray,
    items: np.ndarray,
    n_users: int,
    n_items: int,
    config: BPRConfig,
    device: torch.device,
    progress: Progress,
    should_stop: ShouldStop,
) -> BPRMatrixFactorisation:
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    model = BPRMatrixFactorisation(n_users, n_items, config.dim).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    use_amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda") if use_amp else None
    u_all = torch.as_tensor(np.array(users, dtype=np.int64))
    i_all = torch.as_tensor(np.array(items, dtype=np.int64))
    # Known positives, to resample negatives that happen to be positives.
    positive_keys = torch.unique(u_all * n_items + i_all)  # sorted
    n = len(u_all)
    start = time.perf_counter()
    for epoch in range(config.epochs):
        order = torch.randperm(n, generator=generator)
        model.train()
        for lo in range(0, n, config.batch_size):
            check_stop(should_stop)
            idx = order[lo : lo + config.batch_size]
            u, pos = u_all[idx], i_all[idx]
            neg = torch.randint(0, n_items, (len(idx),), generator=generator)
            keys = u * n_items + neg
            where = torch.searchsorted(positive_keys, keys).clamp_(max=len(positive_keys) - 1)
            clash = positive_keys[where] == keys
            if clash.any():
                neg[clash] = torch.randint(0, n_items, (int(clash.sum()),), generator=generator)
            u, pos, neg = u.to(device), pos.to(device), neg.to(device)
            with torch.autocast(device_type=device.type, enabled=use_amp):
                diff = model(u, pos) - model(u, neg)
                loss = -torch.nn.functional.logsigmoid(diff).mean()
                reg = (
                    model.user_emb(u).pow(2).sum(-1)
                    + model.item_emb(pos).pow(2).sum(-1)
                    + model.item_emb(neg).pow(2).sum(-1)
                ).mean()
                loss = loss + config.l2 * reg
            optimiser.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimiser)
                scaler.update()
            else:
                loss.backward()
                optimiser.step()
        if progress is not None:
            progress(
                (epoch + 1) / config.epochs,
                f"Candidate generator epoch {epoch + 1}/{config.epochs} "
                f"(loss {float(loss.detach()):.3f}, {time.perf_counter() - start:.0f} s)",
            )
    return model.cpu().eval()


def fold_in_user(
    model: BPRMatrixFactorisation,
    items: np.ndarray,
    *,
    steps: int = 150,
    lr: float = 0.05,
    l2: float = 1e-3,
    seed: int = 0,
) -> torch.Tensor:
    """A vector for a new user from the items they like, keeping the item vectors fixed.

    A few BPR gradient steps on the one user vector (cold start): the user's items are pushed
    above randomly drawn others.
    """
    generator = torch.Generator().manual_seed(seed)
    item_emb = model.item_emb.weight.detach()
    item_bias = model.item_bias.weight.detach().squeeze(-1)
    n_items = item_emb.shape[0]
    pos = torch.as_tensor(np.asarray(items, dtype=np.int64))
    vec = torch.zeros(item_emb.shape[1], requires_grad=True)
    optimiser = torch.optim.Adam([vec], lr=lr)
    mask = torch.zeros(n_items, dtype=torch.bool)
    mask[pos] = True
    for _ in range(steps):
        neg = torch.randint(0, n_items, (len(pos) * 8,), generator=generator)
        neg = neg[~mask[neg]]
        p = pos.repeat(8)[: len(neg)]
        diff = item_emb[p] @ vec + item_bias[p] - (item_emb[neg] @ vec + item_bias[neg])
        loss = -torch.nn.functional.logsigmoid(diff).mean() + l2 * vec.pow(2).sum()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return vec.detach()


# ----------------------------------------------------------------------------------------------
# Ranker recipe
# ----------------------------------------------------------------------------------------------

#: XGBoost parameters of the ranker (binary: does the user pick this candidate next?).
RANKER_PARAMS: dict[str, str | int | float] = {
    "objective": "binary:logistic",
    "eval_metric": "logloss",
    "max_depth": 4,
    "eta": 0.1,
    "subsample": 0.9,
    "colsample_bytree": 0.9,
    "min_child_weight": 5,
    "lambda": 2.0,
    "tree_method": "hist",
    "seed": 0,
    # One thread: on a CPU shared with other work, XGBoost's threads slow each other down.
    "nthread": 1,
}
RANKER_ROUNDS = 150
#: Candidates the generator proposes per user for the ranker to re-order.
N_CANDIDATES = 50


# ----------------------------------------------------------------------------------------------
# The registry of built-in recommenders
# ----------------------------------------------------------------------------------------------

RECOMMEND_MODELS = ModelRegistry("recommend")
#: The built-in recommender the page, the CLI and the batch job use unless told otherwise.
DEFAULT_MODEL = "movielens-100k"


@RECOMMEND_MODELS.register(
    name="movielens-100k",
    title="Movie recommender (MovieLens 100k)",
    source=MOVIELENS_SOURCE,
    licence=MOVIELENS_LICENCE,
    data=(
        "100,000 ratings (1-5) by 943 users of 1,682 movies, Sept 1997 - Apr 1998, with movie titles, "
        "release dates and 19 genre flags. Evaluated on each user's last 20% of ratings by time."
    ),
    description=(
        "BPR matrix factorisation (torch) proposes 50 candidates per user; an XGBoost ranker over "
        "interpretable features (similarity to movies the user rated, genre affinity, popularity, "
        "trend, ratings by others) orders them and is explained exactly with TreeSHAP."
    ),
    extra={"recipe_version": RECIPE_VERSION, "domain_words": {"item": "movie", "items": "movies"}},
)
def movielens_100k() -> MovieLensTables:
    """The demo data the default recommender is trained on."""
    return load_movielens()
