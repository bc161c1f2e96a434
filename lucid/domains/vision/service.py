"""Vision: classify photos into ImageNet categories or your own, explain with SHAP and Grad-CAM, fine-tune.

Plain inputs and outputs (PIL images, bytes, DataFrames, :class:`shap.Explanation`); no Streamlit.
The image tools themselves (preprocessing, heat-maps, faithfulness, fine-tuning) live in
:mod:`lucid.imaging` and :mod:`lucid.explain.image` and are shared with the Medical imaging page.

Example:
    >>> from lucid.domains.vision.service import VisionService
    >>> from lucid.domains.vision.data import sample_images
    >>> service = VisionService()                         # cheap; models load on first use
    >>> photos = sample_images(["chelsea", "coffee"])
    >>> table = service.classify(photos, "efficientnet_lite0")      # one row per image, top-5
    >>> result = service.explain(photos["chelsea"], "efficientnet_lite0")  # SHAP + Grad-CAM maps
    >>> result.shap.values.shape, result.faithfulness_table()
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from lucid.core.errors import InvalidInputError
from lucid.core.progress import Progress, ShouldStop, report
from lucid.core.quality import QualityGate
from lucid.core.store import ModelStore, validate_name
from lucid.domains.base import ModelCard, ModelService
from lucid.domains.vision.cards import default_card, sample_check_text, saved_card
from lucid.domains.vision.data import sample_images
from lucid.domains.vision.explain import DEFAULT_SHAP_EVALS, ImageExplanation, explain_image
from lucid.domains.vision.model import (
    GRADCAM_LAYERS,
    VISION_MODELS,
    imagenet_class_names,
    load_efficientnet_lite0,
)
from lucid.domains.vision.quality import accuracy_gate
from lucid.imaging.classifier import ImageClassifier, top_k_from_probabilities
from lucid.imaging.datasets import LabelledImages
from lucid.imaging.metrics import evaluate_classifier
from lucid.imaging.persist import load_classifier, save_classifier
from lucid.imaging.preprocess import ImagePreprocessing
from lucid.imaging.training import RECIPE_VERSION, FineTuneConfig, FineTuneResult, fine_tune

log = logging.getLogger("lucid.vision")

DOMAIN = "vision"
DEFAULT_MODEL = "efficientnet_lite0"
#: What the packaged weights must give on the sample photos before the default is served.
EXPECTED_TOP1 = {"chelsea": {"tiger cat", "Egyptian cat", "tabby, tabby cat"}, "coffee": {"espresso"}}


def data_summary(data: LabelledImages) -> str:
    """The training data in a few words, for the list of saved models."""
    counts = data.class_counts()
    return f"{len(data):,} labelled images, {len(counts)} classes ({', '.join(sorted(counts))})"


@dataclass
class TrainedImages:
    """A fine-tuned model with its quality gate, saved or waiting for the user's choice.

    Attributes:
        name: the (validated) name it is or will be saved under.
        result: the fine-tuning result (model, classes, held-out test metrics, history).
        gate: test accuracy against the majority-class baseline and chance.
        data: the training data in words.
        saved: whether it is in the model store.
    """

    name: str
    result: FineTuneResult
    gate: QualityGate
    data: str
    saved: bool = False


def top_k_table(clf: ImageClassifier, items: Sequence[tuple[str, Image.Image]], k: int = 5) -> pd.DataFrame:
    """Top-``k`` classes for every named image, one row each (batched inference).

    Returns:
        Columns ``image``, ``top1``, ``probability``, then ``class_i``/``prob_i`` for i = 1..k.
    """
    probs = clf.predict_images([im for _, im in items])
    ranked = top_k_from_probabilities(probs, clf.class_names, k)
    rows = []
    for (name, _), top in zip(items, ranked, strict=True):
        row: dict[str, Any] = {"image": name, "top1": top[0][1], "probability": top[0][2]}
        for i, (_, cls, p) in enumerate(top, start=1):
            row[f"class_{i}"] = cls
            row[f"prob_{i}"] = p
        rows.append(row)
    return pd.DataFrame(rows)


class VisionService(ModelService[ImageClassifier]):
    """Load, classify, explain and fine-tune image classifiers (built-in ImageNet model and saved ones).

    Thread-safe: one instance may be shared by all sessions; each model runs under its own lock.
    The default's weights are packaged, so nothing is built into the store: on first use in a
    service its weights are checked (they load and recognise the sample photos) instead.

    Args:
        store: where user models are saved (default: ``LUCID_MODEL_DIR``).
        device: default :func:`lucid.core.device.resolve_device`.

    Example:
        >>> service = VisionService()
        >>> service.model_names()
        ['efficientnet_lite0', 'my-cells']
    """

    domain = DOMAIN
    registry = VISION_MODELS
    recipe_version = RECIPE_VERSION

    def __init__(self, store: ModelStore | None = None, device: str | None = None) -> None:
        super().__init__(store)
        self.device = device
        self._checked: dict[str, ImageClassifier] = {}  # defaults whose packaged weights were checked
        self._layers: dict[str, str] = {}
        self._sample_checks: dict[str, str] = {}

    # ---------------------------------------------------------------- models
    def _default_is_current(self, name: str) -> bool:
        """Packaged weights: current once this service checked them (nothing is kept in the store)."""
        with self._lock:
            return name in self._checked

    def _build_default(self, name: str, *, progress: Progress, should_stop: ShouldStop) -> None:
        """Check the packaged weights: they load and recognise the sample photos; nothing is written.

        Raises:
            RuntimeError: the weights loaded but the sanity predictions are wrong.
        """
        report(progress, 0.1, "Loading EfficientNet-Lite0 ImageNet weights")
        clf = self._registered(name)
        table = top_k_table(clf, list(sample_images(list(EXPECTED_TOP1)).items()), k=5)
        top = dict(zip(table["image"], table["top1"], strict=True))
        if any(top[photo] not in classes for photo, classes in EXPECTED_TOP1.items()):
            raise RuntimeError(f"The ImageNet weights gave unexpected predictions: {top}")
        with self._lock:
            self._checked[name] = clf
        report(
            progress,
            1.0,
            f"EfficientNet-Lite0 ready (chelsea -> {top['chelsea']}, coffee -> {top['coffee']})",
        )

    def _registered(self, name: str) -> ImageClassifier:
        spec = VISION_MODELS.get(name)
        model = VISION_MODELS.create(name)
        prep = ImagePreprocessing.from_model(model)
        self._layers[name] = spec.extra["gradcam_layer"]
        return ImageClassifier(model, prep, imagenet_class_names(), device=self.device)

    def _read(self, name: str, *, progress: Progress = None) -> ImageClassifier:
        if self.is_default(name):
            with self._lock:
                checked = self._checked.get(name)
            return checked if checked is not None else self._registered(name)
        loaded = load_classifier(self.store.load(DOMAIN, name))
        self._layers[name] = loaded.gradcam_layer or GRADCAM_LAYERS.get(loaded.architecture, "bn2")
        return ImageClassifier(loaded.model, loaded.preprocessing, loaded.class_names, device=self.device)

    def stamp(self, name: str) -> str:
        """Changes whenever a saved model of that name is retrained (so cached results are dropped)."""
        if self.is_default(name) or not self.store.exists(DOMAIN, name):
            return ""
        return str(self.store.load(DOMAIN, name).metadata.get("created", ""))

    # ---------------------------------------------------------------- cards
    def sample_check(self, name: str = DEFAULT_MODEL) -> str:
        """Top-3 on the 'chelsea' and 'coffee' photos in the served precision, and how far float32 differs."""
        with self._lock:
            if name in self._sample_checks:
                return self._sample_checks[name]
        text = sample_check_text(self.load(name))
        with self._lock:
            self._sample_checks[name] = text
        return text

    def card(self, name: str) -> ModelCard:
        """Source, licence, data, metrics measured on held-out data and limits of a model."""
        name = self.check_name(name)
        if self.is_default(name):
            return default_card(name, measured=self.sample_check(name))
        return saved_card(name, self.store.load(DOMAIN, name).metadata)

    # ---------------------------------------------------------------- classify
    def classify(
        self,
        images: Mapping[str, Image.Image] | Sequence[tuple[str, Image.Image]],
        model: str = DEFAULT_MODEL,
        *,
        k: int = 5,
    ) -> pd.DataFrame:
        """Top-``k`` classes for every image, one row each (batched inference).

        Returns:
            Columns ``image``, ``top1``, ``probability``, then ``class_i``/``prob_i`` for i = 1..k.
        """
        items = list(images.items()) if isinstance(images, Mapping) else list(images)
        if not items:
            raise InvalidInputError("No images to classify.")
        return top_k_table(self.load(model), items, k)

    # ---------------------------------------------------------------- explain
    def class_names(self, model: str = DEFAULT_MODEL) -> list[str]:
        return list(self.load(model).class_names)

    def explain(
        self,
        image: Image.Image | np.ndarray,
        model: str = DEFAULT_MODEL,
        *,
        class_index: int | None = None,
        max_evals: int = DEFAULT_SHAP_EVALS,
        fractions: Sequence[float] = (0.1, 0.2),
    ) -> ImageExplanation:
        """SHAP and Grad-CAM heat-maps for one image and one class (default: the top class).

        Both maps come with faithfulness scores: the class probability's fall when the top 10% / 20%
        of the image by attribution is blurred, against random regions of the same size.
        """
        clf = self.load(model)
        return explain_image(
            clf,
            image,
            layer=self._layers[model],
            class_index=class_index,
            max_evals=max_evals,
            fractions=fractions,
        )

    # ---------------------------------------------------------------- train
    def train(
        self,
        data: LabelledImages,
        name: str,
        config: FineTuneConfig = FineTuneConfig(),
        *,
        progress: Progress = None,
        should_stop: ShouldStop = None,
        save_anyway: bool = False,
        save: bool = True,
    ) -> TrainedImages:
        """Fine-tune the ImageNet EfficientNet-Lite0 on labelled images and save it under ``name`` when it
        passes the quality gate (or with ``save_anyway``).

        The gate compares the test accuracy with always predicting the most common training class on
        the same held-out images, and with chance; a model that does not pass comes back unsaved, ready
        for :meth:`save_trained` on the user's explicit choice.

        Args:
            save_anyway: save even when the model does not pass the gate.
            save: ``False`` never saves (measure only).

        Raises:
            InvalidInputError: the name is invalid or is a built-in model's.
            TrainingError: one class only, or a class with fewer than three images.
            TrainingCancelled: ``should_stop`` returned true; nothing was saved.
        """
        clean = validate_name(name)
        if clean in VISION_MODELS:
            raise InvalidInputError(f"'{clean}' is the name of a built-in model; choose another name.")
        backbone = load_efficientnet_lite0()  # a fresh copy: the shared default model stays untouched
        prep = ImagePreprocessing.from_model(backbone)
        result = fine_tune(
            backbone, prep, data, config, device=self.device, progress=progress, should_stop=should_stop
        )
        trained = TrainedImages(clean, result, accuracy_gate(result.metrics), data_summary(data))
        if save and (trained.gate.passed or save_anyway):
            self.save_trained(trained)
        return trained

    def save_trained(self, trained: TrainedImages) -> None:
        """Save a trained model (one that did not pass the gate, on the user's explicit choice)."""
        result = trained.result
        save_classifier(
            self.store,
            DOMAIN,
            trained.name,
            result.model,
            architecture="tf_efficientnet_lite0",
            class_names=result.class_names,
            preprocessing=result.preprocessing,
            reserved_names=VISION_MODELS.names(),
            gradcam_layer=GRADCAM_LAYERS["tf_efficientnet_lite0"],
            metadata={
                "metrics": result.metrics,
                "quality_gate": trained.gate.as_dict(),
                "data": trained.data,
                "history": result.history,
                "split_sizes": result.split_sizes,
                "config": result.config.as_dict(),
                "data_hash": result.data_hash,
                "recipe_version": RECIPE_VERSION,
                "train_seconds": result.seconds,
            },
        )
        trained.saved = True
        self.forget(trained.name)
        with self._lock:
            self._sample_checks.pop(trained.name, None)

    def evaluate(self, data: LabelledImages, model: str = DEFAULT_MODEL) -> dict[str, Any]:
        """Accuracy, per-class precision/recall and confusion matrix of a model on labelled images."""
        return evaluate_classifier(self.load(model), data)
