"""What the review-sentiment service returns: one analysed text, a scored batch, a batch's word drivers.

Plain data (DataFrames and :class:`shap.Explanation`), rendered by the page and written by the reports.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import shap


@dataclass
class TextAnalysis:
    """One analysed text: prediction, probabilities and its explanation.

    Attributes:
        text: the text as given (cleaned).
        label: the predicted class.
        probabilities: class -> probability.
        explained_label: the class the explanation is for.
        explanation: SHAP values per word (each the sum of its word pieces' values), in ``units`` of
            ``explained_label``.
        output: the model's output (``units``) for ``explained_label``; values + base reproduce it.
        additivity_error: |sum(values) + base - output|.
        truncated: the text was longer than the model reads.
        used_chars: characters of the text the model read (from the start).
        seconds: time taken by the explanation.
        units: ``probability`` or ``log-odds``.
        pieces: the SHAP values per word piece (shap's text masker's features).
    """

    text: str
    label: str
    probabilities: dict[str, float]
    explained_label: str
    explanation: shap.Explanation
    output: float
    additivity_error: float
    truncated: bool
    used_chars: int
    seconds: float
    units: str = "probability"
    pieces: shap.Explanation | None = None

    def truncation_notice(self) -> str:
        """A sentence for the user when the text was cut, else ''."""
        if not self.truncated:
            return ""
        return (
            f"This text has {len(self.text):,} characters; the model reads only the first "
            f"{self.used_chars:,} characters (its first word pieces). The prediction and the "
            "explanation are about that part only."
        )

    def word_table(self) -> pd.DataFrame:
        """One row per word, in text order, with its SHAP value."""
        return pd.DataFrame(
            {
                "position": np.arange(len(self.explanation.values)),
                "word": [str(w).strip() for w in self.explanation.data],
                "shap_value": np.asarray(self.explanation.values, dtype=np.float64),
            }
        )

    def piece_table(self) -> pd.DataFrame:
        """One row per word piece the model read, in text order, with its SHAP value (no [CLS]/[SEP])."""
        if self.pieces is None:
            return pd.DataFrame({"position": [], "piece": [], "shap_value": []})
        pieces = [str(p) for p in self.pieces.data]
        keep = [i for i, p in enumerate(pieces) if p.strip()]
        values = np.asarray(self.pieces.values, dtype=np.float64)
        return pd.DataFrame(
            {
                "position": np.arange(len(keep)),
                "piece": [pieces[i].strip() for i in keep],
                "shap_value": values[keep],
            }
        )


@dataclass
class BatchScores:
    """Scores of a batch of texts, in the input's row order.

    ``table`` has ``row``, ``text``, ``status`` (``scored`` / ``empty``), ``label`` and one
    ``p_<class>`` column per class; ``score`` is the probability of the score class (the last
    class, ``positive`` for the default model).
    """

    table: pd.DataFrame
    labels: list[str]
    score_label: str
    n_empty: int
    n_truncated: int
    seconds: float

    @property
    def scored(self) -> pd.DataFrame:
        return self.table[self.table["status"] == "scored"]

    def extremes(self, k: int = 5) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The ``k`` lowest-scoring and ``k`` highest-scoring texts."""
        scored = self.scored.sort_values("score", kind="stable")
        cols = ["row", "text", "label", "score"]
        return scored.head(k)[cols], scored.tail(k)[cols].iloc[::-1]


@dataclass
class WordDrivers:
    """Words that drive the score over a sample of a batch.

    ``table`` has one row per word: mean SHAP (log-odds of ``explained_label``), how many times it
    was seen and in how many texts. Only words seen at least ``min_count`` times are kept.
    """

    table: pd.DataFrame
    explained_label: str
    sample_size: int
    batch_size: int
    min_count: int
    seconds: float

    def top(self, k: int = 15, *, sign: int = 1) -> pd.DataFrame:
        """The ``k`` words with the largest (sign=1) or most negative (sign=-1) mean SHAP."""
        part = self.table[self.table["mean_shap"] * sign > 0]
        return part.sort_values("mean_shap", ascending=sign < 0, kind="stable").head(k)
