"""The review-sentiment batch job: many texts scored (and explained by their top words)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from lucid.batch.engine import RunStats
from lucid.core.archives import read_path
from lucid.core.errors import InvalidInputError
from lucid.core.store import shared_service
from lucid.domains.base import BatchJob, Request
from lucid.domains.nlp.data import column_texts, read_texts_file, text_columns
from lucid.domains.nlp.model import DEFAULT_MODEL
from lucid.domains.nlp.service import NLPService
from lucid.explain.explanation import reproducible_shap

log = logging.getLogger("lucid.nlp")


def log_progress(fraction: float, message: str) -> None:
    log.info("%3.0f%% %s", 100 * fraction, message)


def read_text_table(path: str, text_col: str | None) -> tuple[pd.DataFrame, str, str]:
    """The table of a CLI input, its text column (``text_col`` or the page's best guess) and file name."""
    data, filename = read_path(path)
    df = read_texts_file(data, filename)
    column = text_col or next(iter(text_columns(df)), None)
    if column is None:
        raise InvalidInputError("No text column was found; name it with --text-col.")
    if column not in df.columns:
        raise InvalidInputError(f"The file has no column '{column}'.")
    return df, column, filename


def batch_frame(df: pd.DataFrame, column: str, texts: Sequence[str] | None = None) -> pd.DataFrame:
    """The rows of a batch job over ``df[column]``: ``row`` (position), ``shown`` (the column as
    written to the output) and ``text`` (the cleaned text that is scored); the column's name is kept in
    ``attrs["text_column"]``. Used by the CLI and by the page's export, so both score the same rows."""
    frame = pd.DataFrame(
        {
            "row": np.arange(len(df)),
            "shown": df[column].astype("string").fillna("").to_numpy(),
            "text": list(texts) if texts is not None else column_texts(df, column),
        }
    )
    frame.attrs["text_column"] = column
    return frame


def _top_words(service: NLPService, text: str, model: str, max_evals: int | None) -> str:
    """The five words with the largest |SHAP| of a text, as ``word +0.123; ...`` ('' for no text)."""
    if not text:
        return ""
    with reproducible_shap():
        analysis = service.analyse(text, model, max_evals=max_evals)
    table = analysis.word_table().sort_values("shap_value", key=np.abs, ascending=False).head(5)
    return "; ".join(f"{w} {v:+.3f}" for w, v in zip(table["word"], table["shap_value"], strict=True))


class NLPBatch(BatchJob):
    """Texts scored with a label and class probabilities; with ``explain`` each text's top words."""

    #: Explaining a text costs hundreds of model calls.
    partition_rows: ClassVar[int] = 500

    def rows(self, request: Request) -> pd.DataFrame:
        """One row per input row: ``row``, ``shown`` and ``text`` (see :func:`batch_frame`).

        The default model is built here if it is missing, and the model is looked up, so an unknown
        name fails before any work is sent to workers.
        """
        df, column, _ = read_text_table(request.data, request.option("text_col"))
        texts = column_texts(df, column)
        if not texts:
            raise InvalidInputError("There are no texts to score.")
        if not any(texts):
            raise InvalidInputError("Every text in the chosen column is empty.")
        service = shared_service(NLPService)
        model = service.check_name(request.model or DEFAULT_MODEL)
        if not service.is_built(model):  # a missing or stale default: built here, once, with progress
            service.load(model, progress=log_progress)
        return batch_frame(df, column, texts)

    def score_partition(
        self, frame: pd.DataFrame, *, model: str | None, explain: bool, options: Mapping[str, Any]
    ) -> pd.DataFrame:
        """Columns: ``row``, ``shown``, ``status``, ``label``, ``p_<class>``..., ``score``, ``truncated``
        and with ``explain`` ``top_words``; a partition of empty texts only is marked without a model call.
        """
        service = shared_service(NLPService)
        model = model or DEFAULT_MODEL
        int8 = bool(options.get("int8", False))
        texts = frame["text"].tolist()
        if any(texts):
            table = service.score(texts, model, int8=int8).table
        else:
            labels = service.load(model, int8=int8).labels
            table = pd.DataFrame(
                {"row": np.arange(len(texts)), "text": texts, "status": "empty", "label": ""}
            )
            for label in labels:
                table[f"p_{label}"] = np.nan
            table["score"] = table[f"p_{labels[-1]}"]
            table["truncated"] = False
        out = table.drop(columns=["text"])
        out["row"] = frame["row"].to_numpy()
        out.insert(1, "shown", frame["shown"].to_numpy())
        if explain:
            evals = options.get("explain_evals")
            out["top_words"] = [_top_words(service, t, model, evals) for t in table["text"]]
        return out

    def finish(
        self,
        frame: pd.DataFrame,
        scored: pd.DataFrame,
        *,
        model: str | None,
        options: Mapping[str, Any],
        stats: RunStats,
    ) -> tuple[pd.DataFrame, dict[str, Any]]:
        """The scored table under the text column's own name, and the counts of the summary."""
        out = scored.rename(columns={"shown": frame.attrs["text_column"]})
        done = scored["status"] == "scored"
        counts = scored.loc[done, "label"].value_counts().to_dict()
        return out, {
            "model": model or DEFAULT_MODEL,
            "scored": int(done.sum()),
            "empty": int((scored["status"] == "empty").sum()),
            "truncated": int(scored["truncated"].sum()),
            "labels": {str(k): int(v) for k, v in counts.items()},
            "texts_per_second": round(int(done.sum()) / max(stats.seconds, 1e-9), 1),
        }
