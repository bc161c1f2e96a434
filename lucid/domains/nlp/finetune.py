"""Fine-tuning a text classifier: the training loop shared by the default model and "train your own".

:func:`fine_tune` trains the whole classifier (encoder and head) in place, on length-bucketed batches,
in the device's mixed precision, polling a stop hook every step.

Example:
    >>> clf = TextClassifier.from_encoder(encoder_dir(), ["negative", "positive"])
    >>> history = fine_tune(clf, texts, labels, TrainConfig(epochs=1), progress=print)
    >>> history.losses[-1], history.seconds
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from lucid.core.device import autocast, needs_grad_scaler, training_dtype
from lucid.core.errors import TrainingError
from lucid.core.progress import Progress, ShouldStop, check_stop
from lucid.domains.nlp.model import TextClassifier, TrainConfig, pad_batch


@dataclass
class TrainingHistory:
    """What happened during fine-tuning: loss per step, validation results per epoch, time taken."""

    losses: list[float] = field(default_factory=list)
    validation: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    steps: int = 0


def length_bucketed_batches(
    lengths: Sequence[int], batch_size: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Training batches of similar length (little padding) in random order.

    Rows are sorted by length with a little noise, cut into batches, and the batches shuffled.
    """
    sizes = np.asarray(lengths, dtype=np.float64)
    noisy = sizes + rng.uniform(0, 8, size=len(sizes))
    order = np.argsort(noisy, kind="stable")
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def fine_tune(
    clf: TextClassifier,
    texts: Sequence[str],
    labels: Sequence[int],
    config: TrainConfig,
    *,
    val_texts: Sequence[str] | None = None,
    val_labels: Sequence[int] | None = None,
    progress: Progress = None,
    should_stop: ShouldStop = None,
) -> TrainingHistory:
    """Fine-tune the whole classifier (encoder and head) with AdamW and a linear warm-up/decay schedule.

    Batches are length-bucketed; the forward pass runs in mixed precision where the device has it
    (:func:`lucid.core.device.training_dtype`: float16 with a GradScaler on CUDA, bfloat16 on CPUs with
    AVX-512 BF16); the weights and optimiser state stay float32.

    Args:
        clf: the classifier to train in place.
        texts: training texts.
        labels: class indices (0..k-1) into ``clf.labels``.
        config: the recipe.
        val_texts: optional validation texts, scored after every epoch (accuracy and loss).
        val_labels: their class indices.
        progress: called with (fraction done, message) after every step.
        should_stop: polled every step; when it returns True, :class:`TrainingCancelled` is raised.

    Raises:
        TrainingCancelled: stopped on request.
        TrainingError: the loss became NaN.
    """
    from transformers import get_linear_schedule_with_warmup

    labels_arr = np.asarray(labels, dtype=np.int64)
    if len(texts) != len(labels_arr) or not len(texts):
        raise TrainingError("Training needs texts with one label each.")
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    device = clf.device
    encoded = clf.encode(texts)
    lengths = [len(s) for s in encoded]
    steps_per_epoch = math.ceil(len(encoded) / config.batch_size)
    total = steps_per_epoch * config.epochs
    no_decay = ("bias", "LayerNorm.weight", "layer_norm", "norm.weight")
    params = [
        {
            "params": [p for n, p in clf.model.named_parameters() if not any(k in n for k in no_decay)],
            "weight_decay": config.weight_decay,
        },
        {
            "params": [p for n, p in clf.model.named_parameters() if any(k in n for k in no_decay)],
            "weight_decay": 0.0,
        },
    ]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_fraction * total), total)
    dtype = training_dtype(device, clf.precision)
    scaler = torch.amp.GradScaler(device.type, enabled=needs_grad_scaler(dtype))
    history = TrainingHistory()
    start = time.perf_counter()
    step = 0
    with clf.lock:
        try:
            for epoch in range(config.epochs):
                clf.model.train()
                for batch in length_bucketed_batches(lengths, config.batch_size, rng):
                    check_stop(should_stop, "Training was stopped; nothing was saved.")
                    ids, mask = pad_batch([encoded[i] for i in batch], clf.pad_id)
                    target = torch.as_tensor(labels_arr[batch], device=device)
                    with autocast(device, dtype):
                        logits = clf.model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
                        loss = torch.nn.functional.cross_entropy(logits.float(), target)
                    if not torch.isfinite(loss):
                        raise TrainingError("The training loss became NaN; try a smaller learning rate.")
                    optimizer.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(clf.model.parameters(), 1.0)
                    scaler.step(optimizer)
                    scaler.update()
                    scheduler.step()
                    step += 1
                    history.losses.append(float(loss.detach()))
                    if progress is not None:
                        recent = float(np.mean(history.losses[-20:]))
                        progress(
                            step / total,
                            f"Epoch {epoch + 1}/{config.epochs}, step {step}/{total}, loss {recent:.3f}",
                        )
                clf.model.eval()
                if val_texts is not None and val_labels is not None and len(val_texts):
                    history.validation.append(_validate(clf, val_texts, val_labels, epoch + 1))
        finally:
            clf.model.eval()
    history.seconds = time.perf_counter() - start
    history.steps = step
    return history


def _validate(
    clf: TextClassifier, texts: Sequence[str], labels: Sequence[int], epoch: int
) -> dict[str, float]:
    logits = clf.predict_logits(texts)
    y = np.asarray(labels, dtype=np.int64)
    log_probs = torch.log_softmax(torch.as_tensor(logits, dtype=torch.float64), dim=-1).numpy()
    return {
        "epoch": float(epoch),
        "accuracy": float((logits.argmax(axis=1) == y).mean()),
        "loss": float(-log_probs[np.arange(len(y)), y].mean()),
    }
