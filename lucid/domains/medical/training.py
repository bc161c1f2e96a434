"""Training on your own labelled scans: what medical images add to the shared fine-tuning code.

The fine-tuning loop, augmentation, stratified split and model storage are those of
:mod:`lucid.imaging.classifier` (shared with the Vision page). This module adds what scans need:

* reading a zip of class folders of DICOM or PNG files, each windowed exactly as the viewer shows
  it, refusing volumes where one slice is expected and archives that mix modalities;
* a patient-level split: when the DICOM files carry patient IDs, every patient lies wholly in
  train, validation or test (stratified by class), so no patient leaks between them;
* medical metrics on the held-out test split: AUC per class, sensitivity and specificity at a
  chosen threshold, the confusion matrix, and calibration (expected calibration error before and
  after a temperature fitted on the validation split).

Example:
    >>> labelled = labelled_scans_from_zip(zip_bytes, window="file")
    >>> result = train_on_scans(labelled, ScanTrainConfig(epochs=3), progress=print)
    >>> result.metrics["per_class"]["tumour"]["sensitivity"]
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from sklearn.metrics import confusion_matrix, roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold
from torch import nn

from lucid.core.archives import read_zip
from lucid.core.errors import InvalidInputError, TrainingError
from lucid.domains.medical.scans import WINDOW_PRESETS, Scan, auto_window, load_scan, render_slice
from lucid.imaging.classifier import (
    FineTuneConfig,
    FineTuneResult,
    ImageClassifier,
    ImagePreprocessing,
    LabelledImages,
    Progress,
    ShouldStop,
    fine_tune,
    load_voc_crops,
)

#: Bump when the medical training recipe changes.
RECIPE_VERSION = "medical-finetune-1"
BACKBONE = "tf_efficientnet_lite0"
GRADCAM_LAYER = "bn2"
MIN_PER_CLASS = 4
STORED_SIDE = 512


@dataclass
class LabelledScans:
    """Windowed scans with labels, in the shared :class:`lucid.imaging.classifier.LabelledImages` form, plus
    the patient (or source image) each comes from and the split derived from them.

    Attributes:
        data: the images, labels and (patient-level) split.
        groups: one patient key (hashed) or source name per image.
        group_kind: ``"patient"``, ``"source image"`` or ``"file"`` (no grouping information).
        modality: the single modality of the set (``CT``, ``MR``, ``photo``, ...).
        window: how the images were windowed.
    """

    data: LabelledImages
    groups: list[str]
    group_kind: str
    modality: str
    window: str

    def counts(self) -> dict[str, int]:
        return self.data.class_counts()


def render_for_model(scan: Scan, window: str = "file") -> np.ndarray:
    """The 2-D image of a one-slice scan windowed as in the viewer, H x W x 3 uint8.

    Args:
        scan: a loaded scan with exactly one slice.
        window: ``file`` (the file's own window, else automatic), ``auto`` (1st-99th percentile),
            or a CT preset name (needs Hounsfield units).

    Raises:
        InvalidInputError: the scan is a volume, or the window does not fit the data.
    """
    if scan.kind == "nifti" or scan.volume.shape[0] != 1:
        n = scan.volume.shape[0] if scan.kind != "nifti" else int(np.prod(scan.volume.shape[:3]))
        raise InvalidInputError(
            f"Expected a single 2-D image but got a volume ({n:,} slices/voxels); export one slice per file."
        )
    pixels = scan.slice(0)
    if window in WINDOW_PRESETS:
        if scan.units != "HU":
            raise InvalidInputError(f"The '{window}' preset needs CT data in Hounsfield units.")
        center, width = WINDOW_PRESETS[window]
    elif window == "file" and scan.file_windows:
        center, width = scan.file_windows[0]
    elif window in ("file", "auto"):
        center, width = auto_window(pixels)
    else:
        raise InvalidInputError(f"Unknown window '{window}'. Use file, auto or {', '.join(WINDOW_PRESETS)}.")
    return render_slice(scan, pixels, center, width)


def _shrink(image: np.ndarray, side: int = STORED_SIDE) -> Image.Image:
    pil = Image.fromarray(image)
    if max(pil.size) > side:
        scale = side / max(pil.size)
        pil = pil.resize(
            (max(1, round(pil.width * scale)), max(1, round(pil.height * scale))), Image.BILINEAR
        )
    return pil


def labelled_scans_from_zip(data: bytes, *, window: str = "file", seed: int = 0) -> LabelledScans:
    """Read a zip of class folders (``tumour/001.dcm``, ``normal/a.png``) into windowed images.

    Raises:
        InvalidInputError: no class folders, a file that is not a readable scan (named), a volume
            where one slice is expected, a mix of modalities, fewer than two classes or too few
            images per class.
    """
    contents = read_zip(data)
    images, labels, names, modalities, keys = [], [], [], [], []
    for member in contents.members:
        if len(member.parts) < 2:
            continue
        try:
            scan = load_scan(member.data, member.name)
            image = render_for_model(scan, window)
        except InvalidInputError as exc:
            raise InvalidInputError(f"In '{member.path}': {exc}") from exc
        images.append(_shrink(image))
        labels.append(member.parts[-2])
        names.append(member.path)
        modalities.append(scan.modality)
        keys.append(scan.patient_key)
    if not images:
        raise InvalidInputError("The archive has no images inside class folders (e.g. 'tumour/scan1.dcm').")
    kinds = Counter(modalities)
    if len(kinds) > 1:
        listed = ", ".join(f"{k}: {v}" for k, v in sorted(kinds.items()))
        raise InvalidInputError(f"The archive mixes modalities ({listed}); train one model per modality.")
    counts = Counter(labels)
    if len(counts) < 2:
        raise InvalidInputError("Training needs at least two class folders.")
    small = sorted(c for c, n in counts.items() if n < MIN_PER_CLASS)
    if small:
        raise InvalidInputError(
            f"Each class needs at least {MIN_PER_CLASS} images; too few in: {', '.join(small)}."
        )
    if all(keys):
        groups, group_kind = [str(k) for k in keys], "patient"
    else:
        groups, group_kind = list(names), "file"
    labelled = LabelledImages(images=images, labels=labels, names=names)
    labelled.split = group_split(labels, groups, seed=seed)
    return LabelledScans(labelled, groups, group_kind, modalities[0], window)


def bccd_cell_crops(
    root: str | Path, *, per_class: dict[str, int] | None = None, margin: float = 0.1, seed: int = 0
) -> LabelledScans:
    """BCCD blood-cell crops (via :func:`lucid.imaging.classifier.load_voc_crops`) with BCCD's own image-level
    train/val/test lists, grouped by source smear so no smear straddles two splits.

    Args:
        root: the ``bccd`` folder (holding ``BCCD/Annotations`` ...) or the VOC root itself.
        per_class: at most this many crops per class in each split, e.g. ``{"train": 60, "test": 40}``.
    """
    root = Path(root)
    voc = root / "BCCD" if (root / "BCCD").is_dir() else root
    merged = LabelledImages(split=[])
    for split in ("train", "val", "test"):
        cap = (per_class or {}).get(split)
        part = load_voc_crops(voc, split, max_per_class=cap, margin=margin, seed=seed)
        merged.images += part.images
        merged.labels += part.labels
        merged.names += part.names
        merged.split += [split] * len(part)
    groups = [name.split(":", 1)[0] for name in merged.names]
    return LabelledScans(merged, groups, "source image", "photo", "none (colour photographs)")


def group_split(
    labels: list[str], groups: list[str], *, test_size: float = 0.2, val_size: float = 0.15, seed: int = 0
) -> list[str]:
    """``train``/``val``/``test`` per item, stratified by label, with every group in one split only."""
    y = np.unique(np.asarray(labels), return_inverse=True)[1]
    codes = np.unique(np.asarray(groups), return_inverse=True)[1]
    result = np.array(["train"] * len(y), dtype=object)

    def carve(mask: np.ndarray, fraction: float, tag: str) -> None:
        idx = np.flatnonzero(mask)
        n_groups = len(np.unique(codes[idx]))
        if n_groups < 2:
            return
        folds = max(2, min(int(round(1 / fraction)), n_groups, min(Counter(y[idx].tolist()).values())))
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        _, held = next(splitter.split(idx, y[idx], codes[idx]))
        result[idx[held]] = tag

    carve(np.ones(len(y), dtype=bool), test_size, "test")
    carve(result == "train", val_size / (1 - test_size), "val")
    return [str(s) for s in result]


class TemperatureScaled(nn.Module):
    """A classifier whose logits are divided by a temperature fitted on held-out data."""

    def __init__(self, model: nn.Module, temperature: float) -> None:
        super().__init__()
        self.model = model
        self.temperature = float(temperature)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x) / self.temperature


def fit_temperature(logits: np.ndarray, labels: np.ndarray, low: float = 0.25, high: float = 10.0) -> float:
    """The temperature in [low, high] minimising the negative log-likelihood of held-out logits.

    A bounded log-spaced grid is searched: with a perfectly separated validation split the
    likelihood keeps improving as the temperature falls, and the bound keeps a small validation set
    from producing extreme over-confidence.
    """
    if len(labels) < 2:
        return 1.0
    x = torch.as_tensor(logits, dtype=torch.float64)
    y = torch.as_tensor(labels, dtype=torch.long)
    grid = torch.logspace(math.log10(low), math.log10(high), 241, dtype=torch.float64)
    log_probs = torch.log_softmax(x[None] / grid[:, None, None], dim=-1)
    losses = -log_probs[:, torch.arange(len(y)), y].mean(dim=1)
    return float(grid[int(torch.argmin(losses))])


def medical_metrics(
    probs: np.ndarray,
    labels: np.ndarray,
    classes: list[str],
    *,
    threshold: float = 0.5,
    positive_class: str | None = None,
    bins: int = 10,
) -> dict[str, Any]:
    """Held-out metrics: accuracy, majority baseline, AUC per class (one-vs-rest), sensitivity and
    specificity per class at ``threshold``, confusion matrix and expected calibration error (ECE)."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    k = len(classes)
    pred = probs.argmax(axis=1)
    if k == 2:
        pos = classes.index(positive_class) if positive_class in classes else 1
        pred = np.where(probs[:, pos] >= threshold, pos, 1 - pos)
    per_class = {}
    for i, name in enumerate(classes):
        truth = labels == i
        called = probs[:, i] >= threshold
        auc = float(roc_auc_score(truth, probs[:, i])) if 0 < truth.sum() < len(truth) else float("nan")
        per_class[name] = {
            "auc": auc,
            "sensitivity": float((called & truth).sum() / max(truth.sum(), 1)),
            "specificity": float((~called & ~truth).sum() / max((~truth).sum(), 1)),
            "support": int(truth.sum()),
        }
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0, 1, bins + 1)
    ece, reliability = 0.0, []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        inside = (confidence > lo) & (confidence <= hi)
        if inside.any():
            ece += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
            reliability.append(
                {
                    "bin": f"{lo:.1f}-{hi:.1f}",
                    "mean_confidence": float(confidence[inside].mean()),
                    "accuracy": float(correct[inside].mean()),
                    "count": int(inside.sum()),
                }
            )
    aucs = [v["auc"] for v in per_class.values() if not math.isnan(v["auc"])]
    majority = Counter(labels.tolist()).most_common(1)[0][1] / len(labels) if len(labels) else float("nan")
    return {
        "accuracy": float((pred == labels).mean()) if len(labels) else float("nan"),
        "majority_baseline_accuracy": float(majority),
        "macro_auc": float(np.mean(aucs)) if aucs else float("nan"),
        "per_class": per_class,
        "confusion_matrix": confusion_matrix(labels, pred, labels=list(range(k))).tolist(),
        "ece": float(ece),
        "reliability": reliability,
        "threshold": float(threshold),
        "n_test": int(len(labels)),
    }


@dataclass
class ScanTrainConfig:
    """Settings: the shared fine-tuning recipe plus the medical decision threshold.

    Attributes:
        epochs, mode, image_size, batch_size, learning_rate, seed: passed to
            :class:`lucid.imaging.classifier.FineTuneConfig` (``mode`` ``"head"`` trains only a new
            classifier on the frozen backbone; ``"full"`` trains every layer).
        threshold: the probability at which a class is called, for sensitivity/specificity.
        positive_class: for two classes, the one called at ``threshold`` (default the second).
    """

    epochs: int = 5
    mode: str = "full"
    image_size: int = 224
    batch_size: int = 32
    learning_rate: float | None = None
    threshold: float = 0.5
    positive_class: str | None = None
    seed: int = 0

    def fine_tune_config(self) -> FineTuneConfig:
        return FineTuneConfig(
            mode=self.mode,  # type: ignore[arg-type]
            epochs=int(self.epochs),
            batch_size=int(self.batch_size),
            learning_rate=self.learning_rate,
            image_size=int(self.image_size),
            seed=int(self.seed),
        )


@dataclass
class ScanTrainResult:
    """The fine-tuned model (raw logits; divide by ``temperature`` to calibrate), its preprocessing and
    medical metrics."""

    model: nn.Module
    class_names: list[str]
    preprocessing: ImagePreprocessing
    metrics: dict[str, Any]
    shared: FineTuneResult
    temperature: float
    calibrated: bool
    split_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)


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
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
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
        progress=(lambda f, m: progress(0.9 * f, m)) if progress else None,
        should_stop=should_stop,
    )
    classes = shared.class_names
    index = {c: i for i, c in enumerate(classes)}
    y = np.array([index[c] for c in labelled.data.labels])
    if progress:
        progress(0.92, "Calibrating on the validation split and measuring on the test split")
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
    if progress:
        progress(1.0, f"Test accuracy {metrics['accuracy']:.3f} on {len(y_test)} held-out images")
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
    )
