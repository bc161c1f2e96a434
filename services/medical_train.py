"""Training a classifier on your own labelled scans, and measuring it on held-out data.

A labelled set is a zip of class folders (``glioma/scan1.dcm``, ``normal/img7.png``, ...). Every
file is read and windowed exactly as the viewer shows it, then an ImageNet-pretrained timm backbone
(EfficientNet-Lite0, packaged weights) is fine-tuned. When the DICOM files carry patient IDs, the
split keeps each patient wholly in train, validation or test (no leakage). A temperature fitted on
the validation split calibrates the probabilities; the test split gives accuracy, per-class AUC,
sensitivity/specificity at the chosen threshold, the confusion matrix and calibration error.

Example:
    >>> labelled = labelled_images_from_zip(zip_bytes)
    >>> result = fine_tune(labelled, TrainConfig(epochs=3), progress=print)
    >>> result.metrics["accuracy"]
"""

from __future__ import annotations

import math
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.metrics import confusion_matrix, roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold

from services.data import read_zip
from services.device import resolve_device
from services.errors import InvalidInputError, TrainingCancelled, TrainingError
from services.medical_explain import ImageClassifier
from services.medical_io import WINDOW_PRESETS, auto_window, load_scan, render_slice

Progress = Callable[[float, str], None] | None
ShouldStop = Callable[[], bool] | None

#: Bump when the training recipe changes (default models built by an older recipe are rebuilt).
RECIPE_VERSION = 1
BACKBONE = "tf_efficientnet_lite0"
MIN_PER_CLASS = 4
STORED_SIDE = 256


@dataclass
class LabelledImages:
    """Windowed images with labels and the groups (patients) they come from.

    Attributes:
        images: H x W x 3 uint8 images, as the viewer renders them.
        labels: class index per image.
        classes: class names (sorted folder names).
        groups: the patient (or source image) of each image; images of one group share a split.
        group_kind: what a group is ("patient", "source image" or "file").
        modality: the one modality of the set.
        split: optional fixed split per image ("train", "val", "test").
    """

    images: list[np.ndarray]
    labels: np.ndarray
    classes: list[str]
    groups: list[str]
    group_kind: str
    modality: str
    split: list[str] | None = None
    window: str = "file"

    def counts(self) -> dict[str, int]:
        tally = Counter(int(v) for v in self.labels)
        return {name: tally.get(i, 0) for i, name in enumerate(self.classes)}


def _fit(image: np.ndarray, side: int = STORED_SIDE) -> np.ndarray:
    """Shrink large images so a training set stays small in memory (aspect kept)."""
    h, w = image.shape[:2]
    if max(h, w) <= side:
        return image
    scale = side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))


def render_for_model(scan, window: str = "file") -> np.ndarray:
    """The 2-D image of a one-slice scan, windowed as in the viewer: ``file`` (the file's own window,
    else automatic), ``auto``, or a CT preset name. Refuses volumes (more than one slice)."""
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


def labelled_images_from_zip(data: bytes, *, window: str = "file") -> LabelledImages:
    """Read a zip of class folders of DICOM or PNG/JPEG/TIFF images into a :class:`LabelledImages`.

    Raises:
        InvalidInputError: no class folders, fewer than two classes or too few images per class,
            a file that cannot be read (named), a volume where a 2-D image is expected, or
            a mix of modalities.
    """
    contents = read_zip(data)
    images, groups, modalities, patient_keys = [], [], [], []
    names: list[str] = []
    for member in contents.members:
        if len(member.parts) < 2:
            continue
        label = member.parts[-2]
        try:
            scan = load_scan(member.data, member.name)
            image = render_for_model(scan, window)
        except InvalidInputError as exc:
            raise InvalidInputError(f"In '{member.path}': {exc}") from exc
        images.append(_fit(image))
        names.append(label)
        modalities.append(scan.modality)
        patient_keys.append(scan.patient_key)
        groups.append(member.path)
    if not images:
        raise InvalidInputError("The archive has no images inside class folders (e.g. 'tumour/scan1.dcm').")
    kinds = Counter(modalities)
    if len(kinds) > 1:
        listed = ", ".join(f"{k}: {v}" for k, v in sorted(kinds.items()))
        raise InvalidInputError(f"The archive mixes modalities ({listed}); train one model per modality.")
    classes = sorted(set(names))
    if len(classes) < 2:
        raise InvalidInputError("Training needs at least two class folders.")
    counts = Counter(names)
    small = [c for c in classes if counts[c] < MIN_PER_CLASS]
    if small:
        raise InvalidInputError(
            f"Each class needs at least {MIN_PER_CLASS} images; too few in: {', '.join(small)}."
        )
    group_kind = "file"
    if all(patient_keys):
        groups, group_kind = [str(k) for k in patient_keys], "patient"
    index = {c: i for i, c in enumerate(classes)}
    return LabelledImages(
        images=images,
        labels=np.array([index[n] for n in names], dtype=np.int64),
        classes=classes,
        groups=groups,
        group_kind=group_kind,
        modality=modalities[0],
        window=window,
    )


def bccd_cell_crops(
    root: str | Path,
    *,
    per_class: dict[str, int] | None = None,
    side: int = 64,
    seed: int = 0,
) -> LabelledImages:
    """Cell crops from the BCCD blood-smear set (Pascal VOC boxes), with BCCD's own image-level split.

    Every box becomes a square crop (with a 10 % margin) resized to ``side``; groups are the
    source images, so cells of one smear never straddle train and test. ``per_class`` caps the
    number of crops per class and split (e.g. ``{"train": 60, "val": 20, "test": 40}``) so the
    abundant red cells do not swamp the rest.
    """
    root = Path(root)
    base = root / "BCCD" if (root / "BCCD").is_dir() else root
    if not (base / "Annotations").is_dir():
        raise InvalidInputError(f"No BCCD annotations found under {root}.")
    rng = np.random.default_rng(seed)
    split_of: dict[str, str] = {}
    for split in ("train", "val", "test"):
        listing = base / "ImageSets" / "Main" / f"{split}.txt"
        for line in listing.read_text().split():
            split_of[line.strip()] = split
    classes = ["Platelets", "RBC", "WBC"]
    boxes: dict[tuple[str, str], list[tuple[str, tuple[int, int, int, int]]]] = {}
    for image_id, split in sorted(split_of.items()):
        xml_path = base / "Annotations" / f"{image_id}.xml"
        if not xml_path.is_file():
            continue
        for obj in ET.parse(xml_path).getroot().iter("object"):
            name = (obj.findtext("name") or "").strip()
            box = obj.find("bndbox")
            if name not in classes or box is None:
                continue
            coords = tuple(int(float(box.findtext(k) or 0)) for k in ("xmin", "ymin", "xmax", "ymax"))
            boxes.setdefault((split, name), []).append((image_id, coords))
    images, labels, groups, splits = [], [], [], []
    cache: dict[str, Image.Image] = {}
    for (split, name), items in sorted(boxes.items()):
        cap = (per_class or {}).get(split)
        chosen = rng.permutation(len(items))[:cap] if cap else range(len(items))
        for i in sorted(int(j) for j in chosen):
            image_id, (x0, y0, x1, y1) = items[i]
            if image_id not in cache:
                cache[image_id] = Image.open(base / "JPEGImages" / f"{image_id}.jpg").convert("RGB")
            photo = cache[image_id]
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            half = max(x1 - x0, y1 - y0, 8) * 0.55
            crop = photo.crop((int(cx - half), int(cy - half), int(cx + half), int(cy + half)))
            images.append(np.asarray(crop.resize((side, side), Image.Resampling.BILINEAR)))
            labels.append(classes.index(name))
            groups.append(image_id)
            splits.append(split)
    return LabelledImages(
        images=images,
        labels=np.array(labels, dtype=np.int64),
        classes=classes,
        groups=groups,
        group_kind="source image",
        modality="photo",
        split=splits,
        window="none (colour photographs)",
    )


def group_split(
    labels: np.ndarray, groups: list[str], *, test_size: float = 0.2, val_size: float = 0.15, seed: int = 0
) -> list[str]:
    """Assign "train"/"val"/"test" so no group appears in two splits, stratified by label."""
    labels = np.asarray(labels)
    n = len(labels)
    result = np.array(["train"] * n, dtype=object)
    codes = np.unique(np.asarray(groups), return_inverse=True)[1]

    def carve(mask: np.ndarray, fraction: float, tag: str) -> None:
        idx = np.flatnonzero(mask)
        n_groups = len(np.unique(codes[idx]))
        folds = max(2, min(int(round(1 / fraction)), n_groups))
        min_class = min(Counter(labels[idx].tolist()).values())
        if n_groups < 2:
            return
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        if min_class < folds:
            splitter = StratifiedGroupKFold(
                n_splits=max(2, min(folds, min_class)), shuffle=True, random_state=seed
            )
        _, held = next(splitter.split(idx, labels[idx], codes[idx]))
        result[idx[held]] = tag

    carve(np.ones(n, dtype=bool), test_size, "test")
    carve(result == "train", val_size / (1 - test_size), "val")
    return result.tolist()


@dataclass
class TrainConfig:
    """Fine-tuning settings. ``image_size`` is the model's square input side."""

    epochs: int = 3
    batch_size: int = 32
    learning_rate: float = 1e-3
    image_size: int = 224
    threshold: float = 0.5
    positive_class: str | None = None
    seed: int = 0
    augment: bool = True


@dataclass
class TrainResult:
    """A fine-tuned classifier with its held-out metrics and history."""

    classifier: ImageClassifier
    metrics: dict
    history: list[dict] = field(default_factory=list)
    split_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    seconds: float = 0.0
    epoch_seconds: float = 0.0


def build_backbone(num_classes: int, pretrained: bool = True) -> torch.nn.Module:
    """EfficientNet-Lite0 with the packaged ImageNet weights and a fresh head of ``num_classes``."""
    import timm

    if pretrained:
        from models.vision import load_efficientnet_lite0

        model = load_efficientnet_lite0()
        model.reset_classifier(num_classes)
        return model
    return timm.create_model(BACKBONE, pretrained=False, num_classes=num_classes)


def classifier_for(model: torch.nn.Module, classes: list[str], image_size: int) -> ImageClassifier:
    """Wrap a timm model with its own data config (mean/std) and Grad-CAM layer."""
    from timm.data import resolve_model_data_config

    cfg = resolve_model_data_config(model)
    target = getattr(model, "bn2", None) or getattr(model, "conv_head", None)
    return ImageClassifier(
        model=model,
        classes=list(classes),
        input_size=image_size,
        mean=tuple(float(v) for v in cfg["mean"]),
        std=tuple(float(v) for v in cfg["std"]),
        target_layer=target,
    )


def _stack(images: list[np.ndarray], size: int) -> np.ndarray:
    out = np.empty((len(images), size, size, 3), dtype=np.uint8)
    for i, image in enumerate(images):
        if image.shape[:2] != (size, size):
            image = np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR))
        out[i] = image
    return out


def fit_temperature(logits: np.ndarray, labels: np.ndarray, low: float = 0.25, high: float = 10.0) -> float:
    """The temperature in [low, high] minimising the negative log-likelihood of held-out logits.

    A log-spaced grid is searched rather than a gradient method: with a perfectly separated
    validation split the likelihood keeps improving as the temperature falls, and the bound stops
    the fit from turning a small validation set into extreme over-confidence.
    """
    if len(labels) < 2:
        return 1.0
    x = torch.as_tensor(logits, dtype=torch.float64)
    y = torch.as_tensor(labels, dtype=torch.long)
    grid = torch.logspace(math.log10(low), math.log10(high), 241, dtype=torch.float64)
    log_probs = torch.log_softmax(x[None] / grid[:, None, None], dim=-1)
    losses = -log_probs[:, torch.arange(len(y)), y].mean(dim=1)
    return float(grid[int(torch.argmin(losses))])


def classification_metrics(
    probs: np.ndarray,
    labels: np.ndarray,
    classes: list[str],
    *,
    threshold: float = 0.5,
    positive_class: str | None = None,
    bins: int = 10,
) -> dict:
    """Held-out metrics: accuracy, majority baseline, AUC per class (one-vs-rest), sensitivity and
    specificity per class at ``threshold``, confusion matrix and expected calibration error."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    k = len(classes)
    pred = probs.argmax(axis=1)
    if k == 2:
        pos = classes.index(positive_class) if positive_class in classes else 1
        pred = np.where(probs[:, pos] >= threshold, pos, 1 - pos)
    majority = Counter(labels.tolist()).most_common(1)[0][1] / len(labels)
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
            gap = abs(correct[inside].mean() - confidence[inside].mean())
            ece += inside.mean() * gap
            reliability.append(
                {
                    "bin": f"{lo:.1f}-{hi:.1f}",
                    "mean_confidence": float(confidence[inside].mean()),
                    "accuracy": float(correct[inside].mean()),
                    "count": int(inside.sum()),
                }
            )
    aucs = [v["auc"] for v in per_class.values() if not math.isnan(v["auc"])]
    return {
        "accuracy": float((pred == labels).mean()),
        "majority_baseline_accuracy": float(majority),
        "macro_auc": float(np.mean(aucs)) if aucs else float("nan"),
        "per_class": per_class,
        "confusion_matrix": confusion_matrix(labels, pred, labels=list(range(k))).tolist(),
        "ece": float(ece),
        "reliability": reliability,
        "threshold": threshold,
        "n_test": int(len(labels)),
    }


def _logits(classifier: ImageClassifier, batch: np.ndarray, batch_size: int = 64) -> np.ndarray:
    out = []
    with torch.inference_mode():
        for start in range(0, len(batch), batch_size):
            out.append(
                classifier.model(classifier.to_tensor(batch[start : start + batch_size])).float().cpu()
            )
    return torch.cat(out).numpy() if out else np.zeros((0, len(classifier.classes)), dtype=np.float32)


def fine_tune(
    labelled: LabelledImages,
    config: TrainConfig | None = None,
    *,
    progress: Progress = None,
    should_stop: ShouldStop = None,
    pretrained: bool = True,
    device: torch.device | None = None,
) -> TrainResult:
    """Fine-tune the backbone on the train split, calibrate on validation, measure on test.

    Raises:
        TrainingError: a split ends up without data or with one class only.
        TrainingCancelled: ``should_stop`` returned True; nothing is returned or saved.
    """
    config = config or TrainConfig()
    device = device or resolve_device()
    started = time.perf_counter()
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    split = labelled.split or group_split(labelled.labels, labelled.groups, seed=config.seed)
    split = np.asarray(split)
    labels = labelled.labels
    train_idx, val_idx, test_idx = (np.flatnonzero(split == s) for s in ("train", "val", "test"))
    if len(test_idx) == 0 or len(np.unique(labels[train_idx])) < len(labelled.classes):
        raise TrainingError(
            "After the patient-level split, some class has no training images or there is no test data; "
            "add more images (or more patients) per class."
        )
    size = config.image_size
    images = _stack(labelled.images, size)
    model = build_backbone(len(labelled.classes), pretrained=pretrained).to(device)
    classifier = classifier_for(model, labelled.classes, size)
    classifier.device = device
    counts = np.bincount(labels[train_idx], minlength=len(labelled.classes)).astype(np.float64)
    weights = torch.tensor(
        counts.sum() / np.maximum(counts, 1) / len(counts), dtype=torch.float32, device=device
    )
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=1e-4)
    steps_per_epoch = max(1, math.ceil(len(train_idx) / config.batch_size))
    total_steps = steps_per_epoch * config.epochs
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=config.learning_rate, total_steps=total_steps, pct_start=0.2
    )
    use_amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    history, step, epoch_times = [], 0, []
    for epoch in range(config.epochs):
        model.train()
        epoch_start = time.perf_counter()
        order = rng.permutation(train_idx)
        losses = []
        for start in range(0, len(order), config.batch_size):
            if should_stop is not None and should_stop():
                raise TrainingCancelled("Training was stopped; nothing was saved.")
            batch_idx = order[start : start + config.batch_size]
            batch = images[batch_idx]
            if config.augment:
                flip = rng.random(len(batch)) < 0.5
                batch = np.where(flip[:, None, None, None], batch[:, :, ::-1], batch)
            x = classifier.to_tensor(batch)
            y = torch.as_tensor(labels[batch_idx], device=device)
            with torch.autocast(device_type=device.type, enabled=use_amp):
                loss = F.cross_entropy(model(x), y, weight=weights)
            optimiser.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimiser)
            scaler.update()
            scheduler.step()
            losses.append(float(loss.detach()))
            step += 1
            if progress:
                progress(
                    0.05 + 0.85 * step / total_steps,
                    f"Epoch {epoch + 1}/{config.epochs}, loss {losses[-1]:.3f}",
                )
        epoch_times.append(time.perf_counter() - epoch_start)
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "seconds": epoch_times[-1]})
    model.eval()
    if progress:
        progress(0.92, "Calibrating on the validation split and measuring on the test split")
    if len(val_idx) >= 2 and len(np.unique(labels[val_idx])) >= 2:
        classifier.temperature = fit_temperature(_logits(classifier, images[val_idx]), labels[val_idx])
        classifier.calibrated = True
    test_logits = _logits(classifier, images[test_idx])
    probs = torch.softmax(torch.as_tensor(test_logits) / classifier.temperature, dim=1).numpy()
    metrics = classification_metrics(
        probs,
        labels[test_idx],
        labelled.classes,
        threshold=config.threshold,
        positive_class=config.positive_class,
    )
    raw = torch.softmax(torch.as_tensor(test_logits), dim=1).numpy()
    metrics["ece_uncalibrated"] = classification_metrics(raw, labels[test_idx], labelled.classes)["ece"]
    metrics["temperature"] = classifier.temperature
    metrics["calibrated"] = classifier.calibrated
    split_counts = {
        s: {c: int(((split == s) & (labels == i)).sum()) for i, c in enumerate(labelled.classes)}
        for s in ("train", "val", "test")
    }
    groups = np.asarray(labelled.groups)
    leaks = set(groups[train_idx]) & set(groups[test_idx])
    metrics["group_kind"] = labelled.group_kind
    metrics["groups_in_train_and_test"] = len(leaks)
    if progress:
        progress(1.0, "Done")
    return TrainResult(
        classifier=classifier,
        metrics=metrics,
        history=history,
        split_counts=split_counts,
        config=asdict(config),
        seconds=time.perf_counter() - started,
        epoch_seconds=float(np.mean(epoch_times)) if epoch_times else 0.0,
    )
