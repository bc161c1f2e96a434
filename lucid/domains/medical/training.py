"""Training on your own labelled scans: what medical images add to the shared fine-tuning code.

The fine-tuning loop, augmentation and model storage are those of :mod:`lucid.imaging.training`
(shared with the Vision page). This module trains on the patient-level split of
:mod:`lucid.domains.medical.data`, fits a temperature on the validation split and measures the
test split with the medical metrics of :mod:`lucid.domains.medical.metrics`.

Example:
    >>> labelled = labelled_scans_from_zip(zip_bytes, window="file")
    >>> result = train_on_scans(labelled, ScanTrainConfig(epochs=3), progress=print)
    >>> result.metrics["per_class"]["tumour"]["sensitivity"]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from lucid.core.errors import TrainingError
from lucid.core.progress import Progress, ShouldStop, report, scaled
from lucid.core.quality import QualityGate
from lucid.domains.medical.data import LabelledScans
from lucid.domains.medical.metrics import fit_temperature, medical_metrics, predicted_classes
from lucid.imaging.classifier import ImageClassifier
from lucid.imaging.preprocess import ImagePreprocessing
from lucid.imaging.training import FineTuneConfig, FineTuneResult, fine_tune

#: Bump when the medical training recipe changes.
RECIPE_VERSION = "medical-finetune-1"
BACKBONE = "tf_efficientnet_lite0"
GRADCAM_LAYER = "bn2"


@dataclass
class ScanTrainConfig:
    """Settings: the shared fine-tuning recipe plus the medical decision threshold.

    Attributes:
        epochs, mode, image_size, batch_size, learning_rate, seed: passed to
            :class:`lucid.imaging.training.FineTuneConfig` (``mode`` ``"head"`` trains only a new
            classifier on the frozen backbone; ``"full"`` trains every layer).
        threshold: the probability at which a class is called, for sensitivity/specificity.
        positive_class: for two classes, the one called at ``threshold`` (default the second).
    """

    epochs: int = 5
    mode: Literal["head", "full"] = "full"
    image_size: int = 224
    batch_size: int = 32
    learning_rate: float | None = None
    threshold: float = 0.5
    positive_class: str | None = None
    seed: int = 0

    def fine_tune_config(self) -> FineTuneConfig:
        return FineTuneConfig(
            mode=self.mode,
            epochs=int(self.epochs),
            batch_size=int(self.batch_size),
            learning_rate=self.learning_rate,
            image_size=int(self.image_size),
            seed=int(self.seed),
        )


@dataclass
class ScanTrainResult:
    """The fine-tuned model (raw logits; divide by ``temperature`` to calibrate), its preprocessing and
    medical metrics.

    ``test_labels`` and ``test_predictions`` (class indices) are the held-out scans the quality gate is
    measured on. The service fills in the rest: ``gate``, the ``name`` asked for, the ``metadata`` to
    store, and ``saved`` (false when the model did not pass the gate and was kept only in memory, so
    that it can still be saved on the user's explicit choice).
    """

    model: nn.Module
    class_names: list[str]
    preprocessing: ImagePreprocessing
    metrics: dict[str, Any]
    shared: FineTuneResult
    temperature: float
    calibrated: bool
    split_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    test_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    test_predictions: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    gate: QualityGate | None = None
    name: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    saved: bool = False


def scan_preprocessing(model: nn.Module, image_size: int) -> ImagePreprocessing:
    """The backbone's timm preprocessing, but squashing the whole scan to a square (no centre crop, so
    nothing near the edge of a scan is cut away)."""
    return ImagePreprocessing.from_model(
        model, input_size=(3, image_size, image_size), crop_pct=1.0, crop_mode="squash"
    )


def build_backbone(pretrained: bool = True) -> nn.Module:
    """EfficientNet-Lite0 with the packaged ImageNet weights (or random weights for tiny tests)."""
    if pretrained:
        from lucid.imaging.backbones import load_efficientnet_lite0

        return load_efficientnet_lite0()
    import timm

    return timm.create_model(BACKBONE, pretrained=False)


def _check_split(labelled: LabelledScans) -> np.ndarray:
    split = np.asarray(labelled.data.split, dtype=str)
    labels = np.asarray(labelled.data.labels)
    classes = set(labels.tolist())
    for part in ("train", "test"):
        missing = sorted(classes - set(labels[split == part].tolist()))
        if missing:
            raise TrainingError(
                f"After the {labelled.group_kind}-level split, the {part} split has no images of "
                f"{', '.join(missing)}; add images from more {labelled.group_kind}s per class."
            )
    return split


def train_on_scans(
    labelled: LabelledScans,
    config: ScanTrainConfig | None = None,
    *,
    progress: Progress = None,
    should_stop: ShouldStop = None,
    pretrained: bool = True,
    device: torch.device | None = None,
) -> ScanTrainResult:
    """Fine-tune with the shared loop on the group-level split, then calibrate and measure.

    Raises:
        TrainingError: a class is missing from the train or test split after grouping.
        TrainingCancelled: ``should_stop`` returned True (nothing is returned or saved).
    """
    config = config or ScanTrainConfig()
    split = _check_split(labelled)
    model = build_backbone(pretrained)
    prep = scan_preprocessing(model, config.image_size)
    tune = config.fine_tune_config()
    shared = fine_tune(
        model,
        prep,
        labelled.data,
        tune,
        device=device,
        progress=scaled(progress, 0.0, 0.9),
        should_stop=should_stop,
    )
    classes = shared.class_names
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[c] for c in labelled.data.labels])
    report(progress, 0.92, "Calibrating on the validation split and measuring on the test split")
    classifier = ImageClassifier(
        shared.model, shared.preprocessing, classes, device=device, activation="none"
    )

    def logits_of(part: str) -> np.ndarray:
        idx = np.flatnonzero(split == part)
        if len(idx) == 0:
            return np.zeros((0, len(classes)), dtype=np.float32)
        views = np.stack([shared.preprocessing.view(labelled.data.images[i]) for i in idx])
        return classifier.predict_views(views)

    val_logits, test_logits = logits_of("val"), logits_of("test")
    y_val, y_test = y[split == "val"], y[split == "test"]
    calibrated = len(y_val) >= 2 and len(set(y_val.tolist())) >= 2
    temperature = fit_temperature(val_logits, y_val) if calibrated else 1.0
    probs = torch.softmax(torch.as_tensor(test_logits) / temperature, dim=1).numpy()
    raw = torch.softmax(torch.as_tensor(test_logits), dim=1).numpy()
    metrics = medical_metrics(
        probs, y_test, classes, threshold=config.threshold, positive_class=config.positive_class
    )
    metrics["ece_uncalibrated"] = medical_metrics(raw, y_test, classes)["ece"]
    metrics["temperature"] = temperature
    metrics["calibrated"] = calibrated
    metrics["macro_f1"] = shared.metrics.get("macro_f1")
    metrics["val_accuracy"] = shared.metrics.get("val_accuracy")
    groups = np.asarray(labelled.groups)
    metrics["group_kind"] = labelled.group_kind
    metrics["groups_in_train_and_test"] = len(set(groups[split == "train"]) & set(groups[split == "test"]))
    metrics["epoch_seconds"] = (
        float(np.mean([h["seconds"] for h in shared.history])) if shared.history else 0.0
    )
    split_counts = {
        part: {c: int(((split == part) & (y == i)).sum()) for i, c in enumerate(classes)}
        for part in ("train", "val", "test")
    }
    report(progress, 1.0, f"Test accuracy {metrics['accuracy']:.3f} on {len(y_test)} held-out images")
    return ScanTrainResult(
        model=shared.model.eval(),
        class_names=classes,
        preprocessing=shared.preprocessing,
        metrics=metrics,
        shared=shared,
        temperature=temperature,
        calibrated=calibrated,
        split_counts=split_counts,
        config=asdict(config),
        test_labels=y_test,
        test_predictions=predicted_classes(
            probs, classes, threshold=config.threshold, positive_class=config.positive_class
        ),
    )
