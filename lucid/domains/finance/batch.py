"""The credit-risk batch job: many applicants scored (and explained), here or on a Dask cluster."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import pandas as pd

from lucid.batch.engine import RunStats
from lucid.core.archives import read_path
from lucid.core.store import shared_service
from lucid.domains.base import BatchJob, Request
from lucid.domains.finance.data import validate_applicants
from lucid.domains.finance.service import FinanceService

DEFAULT_MODEL = "german_credit"


def _service() -> FinanceService:
    return shared_service(FinanceService)


class FinanceBatch(BatchJob):
    """Applicants scored with a PD, a grade, a decision and reasons; with ``explain`` every SHAP value."""

    partition_rows: ClassVar[int] = 2_000

    def rows(self, request: Request) -> pd.DataFrame:
        service = _service()
        applicants = service.read_applicants(*read_path(request.data))
        service.load(request.model or DEFAULT_MODEL)  # an unknown name fails before any work is sent
        return applicants

    def score_partition(
        self, frame: pd.DataFrame, *, model: str | None, explain: bool, options: Mapping[str, Any]
    ) -> pd.DataFrame:
        service = _service()
        bundle = service.load(model or DEFAULT_MODEL)
        threshold = float(options.get("threshold") or 0.5)
        scored = service.score(
            bundle,
            frame.reset_index(drop=True),
            threshold=threshold,
            reasons_rows=0 if explain else len(frame),
        )
        return service.export_full(bundle, scored) if explain else scored.table

    def finish(
        self,
        frame: pd.DataFrame,
        scored: pd.DataFrame,
        *,
        model: str | None,
        options: Mapping[str, Any],
        stats: RunStats,
    ) -> tuple[pd.DataFrame, dict[str, Any]]:
        bundle = _service().load(model or DEFAULT_MODEL)
        _, report = validate_applicants(frame, bundle.model)
        threshold = float(options.get("threshold") or 0.5)
        return scored, {
            "model": bundle.name,
            "mean_pd": float(scored["pd"].mean()) if len(scored) else float("nan"),
            "rejected": int((scored["pd"] >= threshold).sum()),
            "warnings": report.messages(),
        }
