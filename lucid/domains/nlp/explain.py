"""SHAP for text classifiers: word pieces with shap's text masker, or whole words for speed.

Two explainers share one model path (token-budget batches in the device's precision):

- :func:`explain_pieces`, the page's explanation of one text: every word piece is a feature, masked
  and clustered exactly as ``shap.Explainer(pipeline)`` does by default (shap's ``Text`` masker: a
  hidden piece becomes ``[MASK]``, pieces of a word and words of a phrase are grouped by shap's text
  hierarchy; 500 evaluations), and the output is the class probability as a transformers pipeline
  reports it. The values are those of shap's defaults (measured: correlation 0.997-1.000 and the same
  top-3 words on 10 of 10 held-out reviews), computed 4-5x faster; for display they are summed into
  the words the pieces belong to, which keeps additivity.
- :func:`explain_words`, for explaining many texts (the batch's word drivers): each whole word is one
  feature, masking a word replaces its pieces with one ``[MASK]`` per run of masked pieces, and the
  hierarchy is a balanced binary tree over neighbouring words, so fewer model calls suffice (about
  0.4 s per review). Working on token ids keeps the rows cheap: masked copies are padded back to
  the text's length and stack without re-tokenising.

Either explains ``probability`` (p(c)) or ``log-odds`` (``log p(c) - log(1 - p(c))``) of one class;
SHAP values plus the base value (the output for the fully masked text) add up to the output.

Example:
    >>> words = split_words(clf, "Great fit, lovely colour.")
    >>> result = explain_pieces(clf, words, target=1)
    >>> result.words.values, result.pieces.values, result.output
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import shap
import torch

from lucid.domains.nlp.model import TextClassifier


@dataclass(frozen=True)
class WordTokens:
    """A text cut into words, with the token ids of the truncated text and each word's pieces.

    Attributes:
        text: the full original text.
        ids: token ids fed to the model (with [CLS]/[SEP]), truncated to the model's length.
        words: each word's text with the spacing that follows it, so ``"".join(words)`` is the part
            of the text the model read.
        piece_positions: for each word, the positions in ``ids`` of its word pieces.
        used_chars: number of characters of ``text`` the model read.
        truncated: True when the text was longer than the model reads.
    """

    text: str
    ids: np.ndarray
    words: list[str]
    piece_positions: list[np.ndarray]
    used_chars: int
    truncated: bool


def _group_words(
    text: str, offsets: Sequence[tuple[int, int]], word_ids: Sequence[int | None]
) -> tuple[list[str], list[np.ndarray], int]:
    """Words (each with the spacing that follows it), each word's piece positions, characters covered."""
    groups: dict[int, list[int]] = {}
    spans: dict[int, list[int]] = {}
    for pos, wid in enumerate(word_ids):
        if wid is None:
            continue
        groups.setdefault(wid, []).append(pos)
        start, end = offsets[pos]
        span = spans.setdefault(wid, [start, end])
        span[0], span[1] = min(span[0], start), max(span[1], end)
    order = sorted(groups, key=lambda w: spans[w][0])
    used = spans[order[-1]][1] if order else 0
    words = []
    for k, wid in enumerate(order):
        start = spans[wid][0] if k else 0  # leading spaces belong to the first word
        end = spans[order[k + 1]][0] if k + 1 < len(order) else used
        words.append(text[start:end])
    return words, [np.asarray(groups[w], dtype=np.int64) for w in order], int(used)


def split_words(clf: TextClassifier, text: str) -> WordTokens:
    """Tokenise ``text`` as the classifier does and group the word pieces into words."""
    enc = clf.tokenizer(
        text,
        truncation=True,
        max_length=clf.max_length,
        return_offsets_mapping=True,
        add_special_tokens=True,
    )
    words, positions, used = _group_words(text, enc["offset_mapping"], enc.word_ids())
    return WordTokens(
        text=text,
        ids=np.asarray(enc["input_ids"], dtype=np.int64),
        words=words,
        piece_positions=positions,
        used_chars=used,
        truncated=bool(text[used:].strip()),
    )


def adjacent_word_tree(n: int) -> np.ndarray:
    """A balanced binary hierarchy over ``n`` neighbouring words, as a scipy-style linkage matrix."""
    if n < 2:
        return np.zeros((0, 4))
    rows: list[list[float]] = []
    level = [(i, 1) for i in range(n)]  # (node id, leaves under it)
    next_id = n
    height = 1.0
    while len(level) > 1:
        merged = []
        for k in range(0, len(level) - 1, 2):
            (a, na), (b, nb) = level[k], level[k + 1]
            rows.append([a, b, height, na + nb])
            merged.append((next_id, na + nb))
            next_id += 1
        if len(level) % 2:
            merged.append(level[-1])
        level = merged
        height += 1.0
    return np.asarray(rows, dtype=np.float64)


class WordMasker(shap.maskers.Masker):
    """Masks whole words of one tokenised text: their pieces become ``[MASK]``, one per run of masked pieces.

    The masker's input row is the vector of word indices; its output is one row of token ids padded
    with ``pad_id`` to the text's length, so all masked copies share one length (the model is given
    an attention mask that leaves the padding out).
    """

    def __init__(self, tokens: WordTokens, mask_id: int, pad_id: int = 0) -> None:
        self.tokens = tokens
        self.mask_id = int(mask_id)
        self.pad_id = int(pad_id)
        n = len(tokens.words)
        self.shape = (1, n)
        self.clustering = adjacent_word_tree(n)
        self.immutable_outputs = True
        self._owner = np.full(len(tokens.ids), -1, dtype=np.int64)
        for w, positions in enumerate(tokens.piece_positions):
            self._owner[positions] = w

    def __call__(self, mask: np.ndarray, x: np.ndarray) -> np.ndarray:  # noqa: ARG002 - shap's signature
        mask = np.asarray(mask, dtype=bool)
        hidden = np.zeros(len(self.tokens.ids), dtype=bool)
        owned = self._owner >= 0
        hidden[owned] = ~mask[self._owner[owned]]
        ids = self.tokens.ids.copy()
        ids[hidden] = self.mask_id
        keep = ~(hidden & np.concatenate([[False], hidden[:-1]]))  # the first mask of each run stays
        out = np.full(len(ids), self.pad_id, dtype=np.int64)
        kept = ids[keep]
        out[: len(kept)] = kept
        return out.reshape(1, -1)


UNITS = ("probability", "log-odds")


def class_log_odds(logits: np.ndarray, target: int) -> np.ndarray:
    """``log p(target) - log(1 - p(target))`` from logits, computed stably."""
    z = np.asarray(logits, dtype=np.float64)
    others = np.delete(z, target, axis=1)
    return z[:, target] - np.logaddexp.reduce(others, axis=1)


def class_output(logits: np.ndarray, target: int, units: str) -> np.ndarray:
    """The explained output of each row: the target's probability or its log-odds."""
    if units == "log-odds":
        return class_log_odds(logits, target)
    if units != "probability":
        raise ValueError(f"units must be one of {UNITS}, not {units!r}")
    z = np.asarray(logits, dtype=np.float64)
    return np.exp(z[:, target] - np.logaddexp.reduce(z, axis=1))


def fixed_length_output(
    clf: TextClassifier, target: int, batch_size: int = 64, units: str = "log-odds"
) -> Callable[[np.ndarray], np.ndarray]:
    """A function of equal-length token-id rows (right-padded with the pad id) -> the target's output."""
    pad = clf.pad_id

    def f(rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        out = np.zeros(len(rows), dtype=np.float64)
        with clf.lock, torch.inference_mode(), clf.autocast():
            for start in range(0, len(rows), batch_size):
                ids = torch.as_tensor(rows[start : start + batch_size], device=clf.device)
                logits = clf.model(input_ids=ids, attention_mask=(ids != pad).long()).logits
                out[start : start + len(ids)] = class_output(logits.float().cpu().numpy(), target, units)
        return out

    return f


def text_output(
    clf: TextClassifier, target: int, units: str = "probability", batch_size: int = 64
) -> Callable[[Sequence[str]], np.ndarray]:
    """A function of texts -> the target's output, tokenised and batched as in scoring."""

    def f(texts: Sequence[str]) -> np.ndarray:
        logits = clf.predict_logits([str(t) for t in texts], max_batch=batch_size)
        return class_output(logits, target, units)

    return f


def default_max_evals(n_words: int) -> int:
    """Model calls for a text of ``n_words`` words: enough for a stable ranking, bounded for speed."""
    return int(min(600, max(64, 6 * n_words)))


def explain_words(
    clf: TextClassifier,
    tokens: WordTokens,
    target: int,
    *,
    max_evals: int | None = None,
    batch_size: int = 64,
    units: str = "log-odds",
) -> tuple[shap.Explanation, float]:
    """Word-level Partition SHAP values of one text for class ``target`` (log-odds or probability).

    Returns:
        The explanation (``data`` and ``feature_names`` are the words, ``values`` one per word,
        ``base_values`` the output for the fully masked text) and the model's output for the
        text, which ``values.sum() + base_values`` reproduces.
    """
    from lucid.explain.explanation import make_explanation

    f = fixed_length_output(clf, target, batch_size, units)
    full = float(f(tokens.ids.reshape(1, -1))[0])
    n = len(tokens.words)
    if n == 0:
        return make_explanation(np.zeros(0), full, np.array([], dtype=object), feature_names=[]), full
    if n == 1:
        masker = WordMasker(tokens, clf.tokenizer.mask_token_id, clf.pad_id)
        base = float(f(masker(np.zeros(1, dtype=bool), np.arange(1)))[0])
        expl = make_explanation(
            np.array([full - base]), base, np.array(tokens.words, dtype=object), feature_names=tokens.words
        )
        return expl, full
    masker = WordMasker(tokens, clf.tokenizer.mask_token_id, clf.pad_id)
    explainer = shap.PartitionExplainer(f, masker)
    evals = max_evals or default_max_evals(n)
    result = explainer(np.arange(n).reshape(1, -1), max_evals=evals, batch_size=batch_size, silent=True)
    values = np.asarray(result.values[0], dtype=np.float64)
    base = float(np.asarray(result.base_values).reshape(-1)[0])
    expl = make_explanation(values, base, np.array(tokens.words, dtype=object), feature_names=tokens.words)
    return expl, full


def masked_word_log_odds(clf: TextClassifier, tokens: WordTokens, hide: Sequence[int], target: int) -> float:
    """The target's log-odds with the words at positions ``hide`` masked (for faithfulness checks)."""
    masker = WordMasker(tokens, clf.tokenizer.mask_token_id, clf.pad_id)
    keep = np.ones(len(tokens.words), dtype=bool)
    keep[list(hide)] = False
    return float(fixed_length_output(clf, target)(masker(keep, np.arange(len(keep))))[0])


PIECE_MAX_EVALS = 500  # shap's default budget for the Partition explainer


@dataclass(frozen=True)
class PieceExplanation:
    """Word-piece SHAP values of one text, and the same values summed into its words.

    Attributes:
        pieces: one value per piece as shap's text masker cuts the text (``data``: the pieces with
            the spacing around them; the [CLS]/[SEP] positions are empty strings and never masked).
        words: one value per word (``data``: the words with the spacing that follows them), each the
            sum of its pieces' values, so both add up to the same output.
        output: the model's output for the part of the text it read; values + base reproduce it.
        units: ``probability`` or ``log-odds``.
    """

    pieces: shap.Explanation
    words: shap.Explanation
    output: float
    units: str


def explain_pieces(
    clf: TextClassifier,
    tokens: WordTokens,
    target: int,
    *,
    units: str = "probability",
    max_evals: int | None = None,
    batch_size: int = 64,
) -> PieceExplanation:
    """Partition SHAP values of one text over its word pieces, as ``shap.Explainer(pipeline)`` computes them.

    The features, the masking and the hierarchy are shap's ``Text`` masker's (built from the
    classifier's tokenizer); only the model function differs: token-budget batches in the device's
    precision instead of a pipeline. Only the part of the text the model reads is explained.

    Raises:
        ExplanationError: shap cut the text into other pieces than the tokenizer (not seen so far).
    """
    from lucid.core.errors import ExplanationError
    from lucid.explain.explanation import make_explanation

    text = tokens.text[: tokens.used_chars]
    f = text_output(clf, target, units, batch_size)
    output = float(f([text])[0])
    enc = clf.tokenizer(text, return_offsets_mapping=True, add_special_tokens=True)  # as shap's masker does
    words, positions, _ = _group_words(text, enc["offset_mapping"], enc.word_ids())
    masker = shap.maskers.Text(clf.tokenizer)  # one per call: the masker caches the text it works on
    explainer = shap.PartitionExplainer(f, masker)
    evals = max_evals or PIECE_MAX_EVALS
    result = explainer([text], max_evals=evals, batch_size=batch_size, silent=True)
    values = np.asarray(result.values[0], dtype=np.float64).reshape(-1)
    base = float(np.asarray(result.base_values).reshape(-1)[0])
    pieces = np.asarray(result.data[0], dtype=object)
    if len(values) != len(enc["input_ids"]):
        raise ExplanationError(
            f"The explainer cut the text into {len(values)} pieces but the model reads "
            f"{len(enc['input_ids'])}; the explanation is not shown."
        )
    piece_expl = make_explanation(values, base, pieces, feature_names=[str(p) for p in pieces])
    word_values = np.array([values[p].sum() for p in positions], dtype=np.float64)
    if len(word_values):
        # When the budget ends before the hierarchy is fully split (long texts), shap spreads the rest
        # evenly over every piece, the never-masked [CLS]/[SEP] included; their share goes to the words.
        word_values += (values.sum() - word_values.sum()) / len(word_values)
    word_expl = make_explanation(word_values, base, np.array(words, dtype=object), feature_names=words)
    return PieceExplanation(pieces=piece_expl, words=word_expl, output=output, units=units)
