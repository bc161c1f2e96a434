"""The review-sentiment domain: the page, the commands and the batch job over :class:`NLPService`."""

from __future__ import annotations

from typing import Any

from lucid.core.errors import InvalidInputError
from lucid.core.progress import Progress
from lucid.core.store import ModelStore, shared_service
from lucid.domains.base import Domain, Option, Request
from lucid.domains.nlp.batch import NLPBatch, log_progress, read_text_table
from lucid.domains.nlp.data import column_texts
from lucid.domains.nlp.model import DEFAULT_MODEL, TrainConfig
from lucid.domains.nlp.service import NLPService


class NLPDomain(Domain):
    name = "nlp"
    title = "Review sentiment"
    icon = ":material/reviews:"
    audience = "Customer experience and product teams"
    summary = (
        "Score customer reviews, tickets or survey answers as positive or negative, see which words "
        "drove each score, find what drives negative feedback across thousands of texts, and train the "
        "model on your own labelled texts."
    )
    page = "app_pages/nlp.py"
    input_kind = "table"
    default_model = DEFAULT_MODEL
    options = (
        Option("--text-col", "column holding the texts (default: best guess)"),
        Option("--epochs", "training epochs (default 3)", ("train",), 3, int),
        Option("--max-length", "word pieces read per text", ("train",), 128, int),
        Option("--int8", "score with the int8-quantised model (CPU)", ("score",), flag_only=True),
        Option("--explain-evals", "model calls per explained text", ("score",), None, int),
    )
    batch = NLPBatch()

    def service(self, store: ModelStore | None = None) -> NLPService:
        return shared_service(NLPService, store.root if store else None)

    def run(self, request: Request, progress: Progress = None) -> dict[str, Any]:
        """``train`` or ``evaluate`` on a labelled table of texts.

        ``train`` saves the model only when it passes the quality gate (held-out macro-F1 above the
        TF-IDF baseline's and clearly above chance) or with ``request.save_anyway``; its summary says
        whether it was saved and why.
        """
        report = progress or log_progress
        service = shared_service(NLPService)
        df, column, filename = read_text_table(request.data, request.option("text_col"))
        texts = column_texts(df, column)
        model = request.model or DEFAULT_MODEL
        if request.command != "train":
            service.load(model, progress=report)  # a missing default is built here, with progress
        if request.command == "train":
            if not request.target:
                raise InvalidInputError("Name the label column with --target.")
            if request.target not in df.columns:
                raise InvalidInputError(f"The file has no column '{request.target}'.")
            config = TrainConfig(
                epochs=int(request.option("epochs", 3)), max_length=int(request.option("max_length", 128))
            )
            trained = service.train(
                texts,
                df[request.target].tolist(),
                request.name or "",
                config=config,
                data_name=filename,
                save_anyway=request.save_anyway,
                progress=report,
            )
            result = trained.result
            return {
                "model": trained.name,
                "saved": trained.saved,
                "path": str(trained.stored.path) if trained.stored else None,
                "beats_baseline": trained.gate.beats_baseline,
                "quality_gate": trained.gate.as_dict(),
                "verdict": trained.gate.verdict(),
                "caveats": trained.gate.caveats(),
                "n_train": result.n_train,
                **{k: result.metrics[k] for k in ("accuracy", "macro_f1", "roc_auc", "n_test")},
                "baseline": {k: result.baseline[k] for k in ("accuracy", "macro_f1", "roc_auc")},
            }
        if request.command == "evaluate":
            if not request.target or request.target not in df.columns:
                raise InvalidInputError("Name an existing label column with --target.")
            metrics = service.evaluate(texts, df[request.target].tolist(), model)
            return {"model": model, **{k: v for k, v in metrics.items() if k != "per_class"}}
        raise InvalidInputError(f"Unknown command '{request.command}'.")
