"""The credit-risk domain: the page, the commands and the batch job over :class:`FinanceService`."""

from __future__ import annotations

from typing import Any

from lucid.core.archives import read_path
from lucid.core.errors import InvalidInputError
from lucid.core.progress import Progress
from lucid.core.store import ModelStore, shared_service
from lucid.domains.base import Domain, Option, Request
from lucid.domains.finance.batch import DEFAULT_MODEL, FinanceBatch
from lucid.domains.finance.service import FinanceService


class FinanceDomain(Domain):
    name = "finance"
    title = "Credit risk"
    icon = ":material/account_balance:"
    audience = "Credit-risk analysts and their stakeholders"
    summary = (
        "Score loan applicants for probability of default with plain-language reasons for each score, "
        "check the model with the statistics risk teams use (AUC, Gini, KS, calibration, drift), try "
        "what-if changes, and train a model on your own portfolio."
    )
    page = "app_pages/finance.py"
    input_kind = "table"
    default_model = DEFAULT_MODEL
    options = (
        Option("--threshold", "reject when PD >= threshold", ("score", "evaluate"), 0.5, float),
        Option("--features", "comma-separated feature columns (default: all)", ("train",)),
        Option("--positive-label", "target value meaning default", ("train",)),
    )
    batch = FinanceBatch()

    def service(self, store: ModelStore | None = None) -> FinanceService:
        return shared_service(FinanceService, store.root if store else None)

    def run(self, request: Request, progress: Progress = None) -> dict[str, Any]:
        """``train``: the held-out metrics, ``beats_baseline``, ``saved`` and ``quality_gate`` (a model
        that does not beat the logistic baseline and chance is saved only with ``request.save_anyway``);
        ``evaluate``: the risk metrics of a model on a labelled file."""
        service = shared_service(FinanceService)
        df = service.read_applicants(*read_path(request.data))
        if request.command == "train":
            if not request.target:
                raise InvalidInputError("train needs --target COL.")
            features_text = request.option("features")
            features = [c.strip() for c in features_text.split(",")] if features_text else None
            result = service.train(
                df,
                request.target,
                request.name or "",
                features=features,
                positive_label=request.option("positive_label"),
                progress=progress,
                save_anyway=request.save_anyway,
            )
            return result.summary()
        bundle = service.load(request.model or DEFAULT_MODEL)
        threshold = float(request.option("threshold", 0.5))
        return {"model": bundle.name, **service.evaluate(bundle, df, request.target, threshold=threshold)}
