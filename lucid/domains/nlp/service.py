"""Review sentiment: scoring, word-level SHAP explanations, batch analysis and training of text classifiers.

The service takes plain texts and pandas tables and returns plain results (DataFrames,
:class:`shap.Explanation`); it never renders. The default model is built on first use by the same
training code as "train your own" (:mod:`lucid.domains.nlp.defaults`) and kept in the model store.

Example:
    >>> service = NLPService()
    >>> service.load(DEFAULT_MODEL, progress=lambda f, m: print(f"{f:.0%} {m}"))  # built if missing
    >>> analysis = service.analyse("Beautiful dress but the zip broke.")
    >>> analysis.label, analysis.probabilities
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from lucid.core.device import resolve_device
from lucid.core.errors import InvalidInputError
from lucid.core.progress import Progress, ShouldStop, check_stop
from lucid.core.store import ModelStore, StoredModel, data_hash, validate_name
from lucid.domains.base import ModelCard, ModelService
from lucid.domains.nlp.cards import model_card
from lucid.domains.nlp.data import MAX_BATCH_TEXTS, clean_text, normalise_word, require_text
from lucid.domains.nlp.defaults import build_default_model
from lucid.domains.nlp.explain import UNITS, default_max_evals, explain_pieces, explain_words, split_words
from lucid.domains.nlp.model import (
    DEFAULT_MODEL,
    RECIPE_VERSION,
    TextClassifier,
    TrainConfig,
    nlp_registry,
    softmax,
)
from lucid.domains.nlp.quality import TrainedText, training_gate
from lucid.domains.nlp.results import BatchScores, TextAnalysis, WordDrivers
from lucid.domains.nlp.training import check_labels, classification_metrics, train_and_evaluate
from lucid.explain.explanation import check_additivity


class NLPService(ModelService[TextClassifier]):
    """Score, explain and train text classifiers; the page, the CLI and the benchmark all use it.

    The constructor is cheap; models load on first use and are kept (one instance per name, and
    an int8 copy on request). Model calls are guarded by a lock per model, so one service can be
    shared by every session of the app.

    Example:
        >>> service = NLPService()
        >>> service.ensure_defaults()          # builds the default model once if it is missing
        >>> result = service.analyse("The zip broke on day two.")
        >>> result.label, result.explanation.values
    """

    domain = "nlp"
    registry = nlp_registry
    recipe_version = RECIPE_VERSION

    def __init__(self, store: ModelStore | None = None, device: torch.device | str | None = None) -> None:
        super().__init__(store)
        self._device_request = device
        self._int8: dict[str, TextClassifier] = {}

    @property
    def device(self) -> torch.device:
        if isinstance(self._device_request, torch.device):
            return self._device_request
        return resolve_device(self._device_request)

    # -- models ----------------------------------------------------------------------------

    def _build_default(self, name: str, *, progress: Progress, should_stop: ShouldStop) -> None:
        build_default_model(self.store, progress=progress, should_stop=should_stop, name=name)
        self.forget(name)

    def _read(self, name: str, *, progress: Progress = None) -> TextClassifier:
        entry = self.store.load(self.domain, name)
        if self.is_default(name):
            return nlp_registry.create(name, folder=entry.path, device=self.device)
        return TextClassifier.load(entry.path, device=self.device)

    def load(
        self,
        name: str = DEFAULT_MODEL,
        *,
        int8: bool = False,
        progress: Progress = None,
        should_stop: ShouldStop = None,
    ) -> TextClassifier:
        """The classifier called ``name`` (a registered default or a saved user model), loaded once.

        A missing or stale default is built first (see :meth:`ModelService.load`).

        Args:
            name: model name.
            int8: a dynamically quantised int8 copy, for faster scoring on the CPU (made once).
            progress: (fraction, message) callback of a build.
            should_stop: cancellation hook of a build.
        """
        clf = super().load(name, progress=progress, should_stop=should_stop)
        if not int8:
            return clf
        with self._lock:
            if name in self._int8:
                return self._int8[name]
        quantized = clf.quantized_copy()
        with self._lock:
            return self._int8.setdefault(name, quantized)

    def forget(self, name: str) -> None:
        """Drop a loaded model and its int8 copy (after it was overwritten or deleted)."""
        with self._lock:
            self._int8.pop(name, None)
        super().forget(name)

    def card(self, name: str = DEFAULT_MODEL) -> ModelCard:
        """Source, licence, data, held-out metrics beside the baseline, precision and limits of ``name``."""
        entry = self.stored(name)
        return model_card(entry.name, entry.metadata, self.device)

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
            check_stop(should_stop, "The explanation was stopped.")
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
        save_anyway: bool = False,
        progress: Progress = None,
        should_stop: ShouldStop = None,
    ) -> TrainedText:
        """Fine-tune a classifier on labelled texts and save it under ``name`` when it passes the gate.

        Rows with an empty text or label are dropped. The test split is held out from training and
        validation; the TF-IDF baseline is trained and tested on the same split. The quality gate
        compares the model's held-out macro-F1 with the baseline's and with chance (always the most
        common training class); a model that does not pass comes back unsaved, ready for
        :meth:`save_trained` on the user's explicit choice.

        Args:
            save_anyway: save even when the model does not pass the gate.

        Raises:
            InvalidInputError: a bad name (or a registered model's name), unusable labels.
            TrainingCancelled: stopped on request (nothing saved).
        """
        name = validate_name(name)
        if self.is_default(name):
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
        gate = training_gate(result)
        meta = result.metadata()
        meta["data"] = data_name
        meta["data_hash"] = data_hash("\n".join(x), "\n".join(y))
        meta["quality_gate"] = gate.as_dict()
        trained = TrainedText(name, result, gate, meta)
        if gate.passed or save_anyway:
            self.save_trained(trained)
        return trained

    def save_trained(self, trained: TrainedText) -> StoredModel:
        """Save a trained model under its name (one that did not pass the gate: on the user's choice)."""
        if self.is_default(trained.name):
            raise InvalidInputError(f"'{trained.name}' is the name of a built-in model; choose another name.")
        trained.stored = self.store.save(
            self.domain, trained.name, trained.result.classifier.save, trained.metadata
        )
        self.forget(trained.name)  # a model of that name loaded before is stale now
        return trained.stored

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
