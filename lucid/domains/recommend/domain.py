"""The recommendations domain: the page, the commands and the batch job over :class:`RecommendService`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lucid.core.archives import read_path
from lucid.core.columns import ITEM_COLUMNS, RATING_COLUMNS, TIME_COLUMNS, USER_COLUMNS, find_column
from lucid.core.data import read_table
from lucid.core.errors import InvalidInputError
from lucid.core.progress import Progress
from lucid.core.store import ModelStore, shared_service
from lucid.domains.base import Command, Domain, Option, Request
from lucid.domains.recommend.batch import RecommendBatch, log, log_progress, pick_column
from lucid.domains.recommend.data import InteractionData, attach_item_table, prepare_interactions
from lucid.domains.recommend.model import DEFAULT_MODEL
from lucid.domains.recommend.ranking import K
from lucid.domains.recommend.service import RecommendService
from lucid.domains.recommend.training import train_recommender

_LOG_COLUMNS: tuple[Command, ...] = ("train", "evaluate")


def interactions_from_request(request: Request) -> InteractionData:
    """The interaction log of a CLI request, its columns given or found by their usual names."""
    table = read_table(*read_path(request.data))
    user_col = pick_column(table, request.option("user_col"), USER_COLUMNS, "user", "--user-col")
    item_col = pick_column(table, request.option("item_col"), ITEM_COLUMNS, "item", "--item-col")
    rating_col = request.option("rating_col")
    time_col = request.option("time_col")
    if rating_col is None and (found := find_column(list(table.columns), RATING_COLUMNS)) is not None:
        rating_col = found
        log.info("Using the column '%s' as the rating column.", found)
    if time_col is None and (found := find_column(list(table.columns), TIME_COLUMNS)) is not None:
        time_col = found
        log.info("Using the column '%s' as the timestamp column.", found)
    scale = None
    if request.option("scale"):
        try:
            lo, hi = (float(x) for x in str(request.option("scale")).split("-", 1))
        except ValueError as exc:
            raise InvalidInputError("--scale must look like 1-5.") from exc
        scale = (lo, hi)
    data = prepare_interactions(
        table,
        user_col=user_col,
        item_col=item_col,
        rating_col=rating_col,
        timestamp_col=time_col,
        rating_scale=scale,
    )
    items_path = request.option("items")
    if items_path:
        items = read_table(Path(items_path).read_bytes(), Path(items_path).name)
        cats = [c.strip() for c in str(request.option("category_cols", "")).split(",") if c.strip()]
        data = attach_item_table(
            data,
            items,
            id_col=request.option("item_id_col") or item_col,
            title_col=request.option("title_col"),
            category_cols=cats,
        )
    return data


def _flat_metrics(metrics: dict[str, dict[str, float]]) -> dict[str, float]:
    return {
        f"{system}/{name}": round(value, 5)
        for system, values in metrics.items()
        for name, value in values.items()
    }


class RecommendDomain(Domain):
    name = "recommend"
    title = "Recommendations"
    icon = ":material/recommend:"
    audience = "Merchandising and product teams"
    summary = (
        "See which items the system would recommend to a customer and why, check that it beats simply "
        "recommending what is popular, and train it on your own interaction log."
    )
    page = "app_pages/recommend.py"
    input_kind = "table"
    default_model = DEFAULT_MODEL
    options = (
        Option("--user-col", "user id column (default: found by name, e.g. user, userId, customer)"),
        Option("--item-col", "item id column of the log (default: found by name)", _LOG_COLUMNS),
        Option(
            "--rating-col", "rating column (default: found by name; none means implicit events)", _LOG_COLUMNS
        ),
        Option("--time-col", "timestamp column (default: found by name)", _LOG_COLUMNS),
        Option("--scale", "rating scale as LOW-HIGH, e.g. 1-5", _LOG_COLUMNS),
        Option("--items", "item table (CSV/Excel/Parquet)", _LOG_COLUMNS),
        Option("--item-id-col", "item id column of the item table", _LOG_COLUMNS),
        Option("--title-col", "title column of the item table", _LOG_COLUMNS),
        Option("--category-cols", "comma-separated category columns", _LOG_COLUMNS, ""),
        Option("--top", "recommendations per user", ("score",), K, int),
    )
    batch = RecommendBatch()

    def service(self, store: ModelStore | None = None) -> RecommendService:
        return shared_service(RecommendService, store.root if store else None)

    def run(self, request: Request, progress: Progress = None) -> dict[str, Any]:
        """``train`` / ``evaluate``: held-out metrics per system (popularity, candidates, full model);
        ``train`` adds the quality gate (the full model against popularity, NDCG@10 per held-out user)
        and saves a model that does not pass it only with ``request.save_anyway``."""
        report = progress or log_progress
        service = shared_service(RecommendService)
        if request.command == "train":
            trained = service.train(
                interactions_from_request(request),
                request.name or "",
                progress=report,
                save_anyway=request.save_anyway,
            )
            if not trained.saved:
                log.warning("Not saved: %s Use --save-anyway to save it.", trained.gate.verdict())
            return {
                "name": trained.name,
                **_flat_metrics(trained.model.metrics),
                "beats_baseline": trained.gate.beats_baseline,
                "saved": trained.saved,
                "quality_gate": trained.gate.as_dict(),
            }
        if request.command == "evaluate":
            if request.model:
                service.check_name(request.model)  # raises ModelNotFoundError for unknown names
            model = train_recommender(interactions_from_request(request), progress=report)
            return _flat_metrics(model.metrics)
        raise InvalidInputError(f"Unknown command '{request.command}'.")
