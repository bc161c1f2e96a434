"""Fine-tuning a pretrained timm classifier on labelled images held in memory.

Example:
    >>> data = labelled_images_from_zip(zip_bytes)
    >>> result = fine_tune(model, prep, data, FineTuneConfig(mode="head", epochs=3),
    ...                    progress=lambda f, msg: print(f, msg))
    >>> result.metrics["accuracy"], result.metrics["confusion_matrix"]
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from torch import nn

from lucid.core.device import autocast, needs_grad_scaler, resolve_device, training_dtype
from lucid.core.errors import InvalidInputError, TrainingError
from lucid.core.progress import Progress, ShouldStop, check_stop
from lucid.imaging.datasets import MIN_IMAGES_PER_CLASS, LabelledImages, check_trainable, stratified_split
from lucid.imaging.metrics import classification_metrics
from lucid.imaging.preprocess import ImagePreprocessing

#: Version of the fine-tuning recipe; stored with every model it produces.
RECIPE_VERSION = "imaging-finetune-1"


@dataclass(frozen=True)
class FineTuneConfig:
    """The fine-tuning recipe.

    Attributes:
        mode: ``"head"`` trains only a new classifier on the frozen backbone (fast, few images);
            ``"full"`` trains every layer (slower, better with more images).
        epochs: passes over the training images; the epoch with the best validation accuracy is kept.
        batch_size: images per step at most (small sets use smaller batches: at least 4 steps an epoch).
        learning_rate: default 2e-3 for the head, 3e-4 for full fine-tuning (AdamW, cosine decay).
        weight_decay: AdamW weight decay.
        augment: random resized crops, flips and colour jitter on the training images.
        vflip: also flip vertically (for images with no "up", e.g. microscopy).
        image_size: train and predict at this square size instead of the model's default.
        label_smoothing: of the cross-entropy loss.
        val_fraction, test_fraction: shares held out when the data has no split of its own.
        seed: for the split, the shuffling and the augmentation.
    """

    mode: Literal["head", "full"] = "head"
    epochs: int = 5
    batch_size: int = 32
    learning_rate: float | None = None
    weight_decay: float = 1e-4
    augment: bool = True
    vflip: bool = False
    image_size: int | None = None
    label_smoothing: float = 0.1
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 0

    def lr(self) -> float:
        return float(self.learning_rate or (2e-3 if self.mode == "head" else 3e-4))

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__} | {"learning_rate": self.lr()}


@dataclass
class FineTuneResult:
    """What :func:`fine_tune` produced: the trained model (eval mode, CPU), its classes and test metrics."""

    model: nn.Module
    class_names: list[str]
    preprocessing: ImagePreprocessing
    metrics: dict[str, Any]
    history: list[dict[str, float]]
    split_sizes: dict[str, int]
    config: FineTuneConfig
    data_hash: str
    seconds: float


def _stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack(tensors).contiguous()


def one_cycle_schedule(
    optimizer: torch.optim.Optimizer, max_lr: float, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """One-cycle learning rate (10% warm-up, cosine decay) that is safe for very short runs.

    torch's OneCycleLR divides by zero when its warm-up phase is a single step, so the warm-up
    is at least two steps; runs of fewer than four steps keep a constant rate.
    """
    if total_steps < 4:
        for group in optimizer.param_groups:
            group["lr"] = max_lr
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _step: 1.0)
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=max_lr,
        total_steps=total_steps,
        pct_start=max(0.1, 2.0 / total_steps),
        anneal_strategy="cos",
    )


def fine_tune(
    model: nn.Module,
    preprocessing: ImagePreprocessing,
    data: LabelledImages,
    config: FineTuneConfig = FineTuneConfig(),
    *,
    device: torch.device | str | None = None,
    progress: Progress = None,
    should_stop: ShouldStop = None,
) -> FineTuneResult:
    """Fine-tune a pretrained timm classifier on labelled images.

    The data is split stratified into train/validation/test (or the split it came with is used
    when every class appears in train and test); the classifier head is replaced for the new
    classes (``model.reset_classifier``); training uses AdamW with cosine decay, standard
    augmentation, and mixed precision where the device has it (float16 autocast + GradScaler on
    CUDA, bfloat16 autocast on CPUs with AVX-512 BF16; weights stay float32). After each epoch the
    validation accuracy is measured and the best epoch's weights are kept; the test metrics are
    measured once, at the end, on images never used for training or model selection.

    Args:
        model: a timm model with pretrained weights (modified in place and returned).
        preprocessing: the model's preprocessing (``config.image_size`` overrides its size).
        data: the labelled images.
        config: the recipe.
        device: default :func:`lucid.core.device.resolve_device`.
        progress: called with (fraction done, message) after every step and epoch.
        should_stop: polled every step; returning true cancels (raises :class:`TrainingCancelled`).

    Raises:
        TrainingError: one class only, a class with too few images, or a model without a timm head.
        TrainingCancelled: ``should_stop`` returned true.
    """
    started = time.perf_counter()
    check_trainable(data.labels)
    if not hasattr(model, "reset_classifier"):
        raise TrainingError("This model cannot be fine-tuned here: it has no replaceable classifier head.")
    class_names = sorted(set(data.labels))
    index = {c: i for i, c in enumerate(class_names)}
    y = np.asarray([index[x] for x in data.labels], dtype=np.int64)
    split = _choose_split(data, config)
    parts = {name: np.flatnonzero(split == name) for name in ("train", "val", "test")}
    if config.image_size:
        s = int(config.image_size)
        preprocessing = ImagePreprocessing.from_config(preprocessing.data_config | {"input_size": (3, s, s)})
    device = device if isinstance(device, torch.device) else resolve_device(device)
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)

    # timm's head methods (reset_classifier, get_classifier, forward_features, forward_head) are not
    # declared on nn.Module; their presence was checked above.
    timm_model: Any = model
    timm_model.reset_classifier(len(class_names))
    model.to(device)
    head: nn.Module = timm_model.get_classifier()
    if config.mode == "head":
        for p in model.parameters():
            p.requires_grad_(False)
        for p in head.parameters():
            p.requires_grad_(True)
    elif config.mode == "full":
        for p in model.parameters():
            p.requires_grad_(True)
    else:
        raise InvalidInputError(f"Unknown fine-tuning mode '{config.mode}'; use 'head' or 'full'.")
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.lr(), weight_decay=config.weight_decay)
    # Small sets get smaller batches so every epoch still takes several optimiser steps.
    batch_size = int(max(4, min(config.batch_size, len(parts["train"]) // 4)))
    steps_per_epoch = max(1, math.ceil(len(parts["train"]) / batch_size))
    total_steps = steps_per_epoch * max(1, config.epochs)
    scheduler = one_cycle_schedule(optimizer, config.lr(), total_steps)
    dtype = training_dtype(device)
    scaler = torch.amp.GradScaler(device.type, enabled=needs_grad_scaler(dtype))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    train_tf = (
        preprocessing.train_transform(vflip=0.5 if config.vflip else 0.0)
        if config.augment
        else preprocessing.eval_transform()
    )
    eval_views = {
        name: np.stack([preprocessing.view(data.images[i]) for i in parts[name]])
        for name in ("val", "test")
        if len(parts[name])
    }

    def forward(x: torch.Tensor) -> torch.Tensor:
        if config.mode == "head":
            with torch.no_grad():
                features = timm_model.forward_head(timm_model.forward_features(x), pre_logits=True)
            return head(features.detach())
        return model(x)

    def predict(views: np.ndarray) -> np.ndarray:
        model.eval()
        out = []
        with torch.inference_mode(), autocast(device, dtype):
            for start in range(0, len(views), 64):
                x = preprocessing.to_tensor(views[start : start + 64]).to(device)
                out.append(model(x).float().argmax(dim=1).cpu().numpy())
        return np.concatenate(out)

    history: list[dict[str, float]] = []
    best_state: dict[str, torch.Tensor] | None = None
    best_val = -1.0
    step = 0
    for epoch in range(config.epochs):
        epoch_start = time.perf_counter()
        if config.mode == "full":
            model.train()
        else:
            model.eval()  # frozen BatchNorm statistics
        order = rng.permutation(parts["train"])
        total_loss, correct, seen = 0.0, 0, 0
        for start in range(0, len(order), batch_size):
            check_stop(should_stop, "Training was cancelled; nothing was saved.")
            batch_idx = order[start : start + batch_size]
            x = _stack([_train_tensor(train_tf, data.images[i], generator) for i in batch_idx]).to(device)
            target = torch.as_tensor(y[batch_idx], device=device)
            optimizer.zero_grad(set_to_none=True)
            with autocast(device, dtype):
                logits = forward(x)
                loss = loss_fn(logits.float(), target)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            total_loss += float(loss.detach()) * len(batch_idx)
            correct += int((logits.detach().argmax(dim=1) == target).sum())
            seen += len(batch_idx)
            step += 1
            if progress is not None:
                progress(step / total_steps * 0.95, f"Epoch {epoch + 1}/{config.epochs}: step {step}")
        val_acc = (
            float((predict(eval_views["val"]) == y[parts["val"]]).mean())
            if "val" in eval_views
            else float("nan")
        )
        record = {
            "epoch": epoch + 1,
            "train_loss": total_loss / max(seen, 1),
            "train_accuracy": correct / max(seen, 1),
            "val_accuracy": val_acc,
            "seconds": time.perf_counter() - epoch_start,
        }
        history.append(record)
        if not (val_acc <= best_val) or best_state is None:  # NaN (no val set) keeps the last epoch
            best_val = val_acc if not math.isnan(val_acc) else best_val
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        if progress is not None:
            progress(
                (epoch + 1) / config.epochs * 0.95,
                f"Epoch {epoch + 1}/{config.epochs}: loss {record['train_loss']:.3f}, "
                f"train accuracy {record['train_accuracy']:.3f}, validation accuracy {val_acc:.3f} "
                f"({record['seconds']:.0f} s)",
            )
    if best_state is not None:
        model.load_state_dict(best_state)
    for p in model.parameters():
        p.requires_grad_(False)
    model.eval()
    test_pred = predict(eval_views["test"])
    metrics = classification_metrics(y[parts["test"]], test_pred, class_names, train_labels=y[parts["train"]])
    metrics["val_accuracy"] = best_val
    if progress is not None:
        progress(1.0, f"Test accuracy {metrics['accuracy']:.3f} on {len(parts['test'])} held-out images")
    model.to("cpu")
    return FineTuneResult(
        model=model,
        class_names=class_names,
        preprocessing=preprocessing,
        metrics=metrics,
        history=history,
        split_sizes={k: int(len(v)) for k, v in parts.items()},
        config=config,
        data_hash=data.fingerprint(),
        seconds=time.perf_counter() - started,
    )


def _train_tensor(transform: Callable, image: Image.Image, generator: torch.Generator) -> torch.Tensor:
    # torchvision's random transforms draw from torch's global generator; seed it per image from ours.
    torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
    return transform(image)


def _choose_split(data: LabelledImages, config: FineTuneConfig) -> np.ndarray:
    if data.split is not None:
        split = np.asarray(data.split, dtype=str)
        labels = np.asarray(data.labels)
        classes = set(data.labels)
        if set(labels[split == "train"]) == classes and set(labels[split == "test"]) == classes:
            if not (split == "val").any():  # carve a validation set out of train
                train_idx = np.flatnonzero(split == "train")
                inner = (
                    stratified_split(
                        labels[train_idx].tolist(),
                        val_fraction=config.val_fraction,
                        test_fraction=0.0,
                        seed=config.seed,
                    )
                    if min(Counter(labels[train_idx]).values()) >= MIN_IMAGES_PER_CLASS
                    else None
                )
                if inner is not None:
                    inner = np.where(inner == "test", "train", inner)
                    split = split.copy()
                    split[train_idx] = inner
            return split
    return stratified_split(
        data.labels, val_fraction=config.val_fraction, test_fraction=config.test_fraction, seed=config.seed
    )
