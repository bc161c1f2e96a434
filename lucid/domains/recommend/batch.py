"""The recommendations batch job: the top items of many users, each with its reason."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from lucid.batch.engine import RunStats
from lucid.core.archives import read_path
from lucid.core.columns import USER_COLUMNS, find_column
from lucid.core.data import read_table
from lucid.core.errors import InvalidInputError
from lucid.core.store import shared_service
from lucid.domains.base import BatchJob, Request
from lucid.domains.recommend.model import DEFAULT_MODEL
from lucid.domains.recommend.ranking import K
from lucid.domains.recommend.recommender import Recommender
from lucid.domains.recommend.service import RecommendService

log = logging.getLogger("lucid.recommend")


def log_progress(fraction: float, message: str) -> None:
    log.info("[%4.0f%%] %s", 100 * fraction, message)


def batch_frame(recommender: Recommender, users: pd.Series, *, model_name: str) -> pd.DataFrame:
    """The rows of a batch ``score``: one per user to recommend for (``user``), the ids of the column
    ``users`` (missing values left out, spaces stripped) deduplicated in order of first appearance.

    The CLI and the page's batch job build their rows here, so the same column gives the same rows.

    Raises:
        InvalidInputError: the column holds no user id, or ids the model does not know (so nothing is
            sent to workers).
    """
    ids = list(dict.fromkeys(str(u).strip() for u in users.dropna()))
    if not ids:
        raise InvalidInputError(f"The user column '{users.name}' holds no user ids.")
    unknown = [u for u in ids if not recommender.knows_user(u)]
    if unknown:
        raise InvalidInputError(
            f"{len(unknown)} user ids are unknown to the model '{model_name}' "
            f"(e.g. {', '.join(unknown[:3])})."
        )
    return pd.DataFrame({"user": ids})


def pick_column(
    table: pd.DataFrame, given: str | None, candidates: tuple[str, ...], role: str, flag: str
) -> str:
    """``given`` if the table has it, else the usual name found in the table (logged), else a plain error."""
    if given:
        if given not in table.columns:
            raise InvalidInputError(f"The {role} column '{given}' is not in the table; pass {flag}.")
        return given
    found = find_column(list(table.columns), candidates)
    if found is None:
        raise InvalidInputError(
            f"No {role} column was found (looked for {', '.join(candidates[:4])}); pass {flag}."
        )
    log.info("Using the column '%s' as the %s column.", found, role)
    return found


class RecommendBatch(BatchJob):
    """The top ``--top`` items of each user, each with its reason (from TreeSHAP); ``explain`` changes
    nothing, since reasons are always part of a recommendation."""

    partition_rows: ClassVar[int] = 2_000

    def rows(self, request: Request) -> pd.DataFrame:
        """The users to recommend for, one row each, from the user column of ``request.data`` (given
        with ``--user-col`` or found by name), deduplicated in order of first appearance.

        The model is loaded (built-in ones built on first use) so unknown models and users fail here.
        """
        top = int(request.option("top", K))
        if top < 1:
            raise InvalidInputError("--top must be at least 1.")
        table = read_table(*read_path(request.data))
        name = request.model or DEFAULT_MODEL
        recommender = shared_service(RecommendService).load(name, progress=log_progress)
        column = pick_column(table, request.option("user_col"), USER_COLUMNS, "user", "--user-col")
        return batch_frame(recommender, table[column], model_name=name)

    def score_partition(
        self, frame: pd.DataFrame, *, model: str | None, explain: bool, options: Mapping[str, Any]
    ) -> pd.DataFrame:
        """One row per user: ``user`` and, for each column of :meth:`Recommender.recommend_users`
        (rank, item, title, score, reason), the list of that user's values in rank order."""
        recommender = shared_service(RecommendService).load(model or DEFAULT_MODEL, progress=log_progress)
        users = frame["user"].tolist()
        top = recommender.recommend_users(users, int(options.get("top") or K), reasons=True)
        groups = {user: part for user, part in top.groupby("user", sort=False)}
        out: dict[str, list[Any]] = {"user": users}
        for column in top.columns.drop("user"):
            out[column] = [groups[u][column].tolist() if u in groups else [] for u in users]
        return pd.DataFrame(out)

    def finish(
        self,
        frame: pd.DataFrame,
        scored: pd.DataFrame,
        *,
        model: str | None,
        options: Mapping[str, Any],
        stats: RunStats,
    ) -> tuple[pd.DataFrame, dict[str, Any]]:
        """The recommendations one row per (user, rank), users in input order, and the user count."""
        columns = [c for c in scored.columns if c != "user"]
        lengths = scored[columns[0]].map(len).to_numpy() if columns else np.zeros(len(scored), dtype=int)
        table = pd.DataFrame(
            {
                "user": np.repeat(scored["user"].to_numpy(), lengths),
                **{c: list(itertools.chain.from_iterable(scored[c])) for c in columns},
            }
        )
        return table, {"users": len(scored)}
