"""Benchmark of the review-sentiment path against plain transformers/SHAP usage, side by side in one run.

Scoring: held-out reviews scored by a transformers ``pipeline`` (float32) one text at a time and with
its own ``batch_size=32``, against our token-budget batches sorted by length in the device's precision
(bfloat16 on CPUs with AVX-512 BF16), the same in float32, and the int8 option; median of warmed runs, with
accuracy and agreement on the same texts.

Explaining: reviews of about 40 word pieces explained by ``shap.Explainer(pipeline)`` with default
settings (float32 pipeline), against the page's explanation (the same masker, hierarchy and budget on
our batched model function) and the whole-word explainer of the batch drivers: seconds, top-3 words,
agreement of the values, and how much masking each method's top-3 words lowers the class's log-odds.

Run: ``.venv/bin/python -m bench.bench_nlp [--texts 256] [--runs 5]`` (needs the built default
model: ``make models`` or the page builds it). Writes ``bench/results/nlp.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent

import numpy as np  # noqa: E402
import shap  # noqa: E402
import torch  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from bench.timing import median_time  # noqa: E402
from lucid.core.device import precision_name  # noqa: E402
from lucid.domains.nlp.data import load_reviews, normalise_word, stratified_sample, stratified_split  # noqa: E402
from lucid.domains.nlp.explain import explain_pieces, explain_words, masked_word_log_odds, split_words  # noqa: E402
from lucid.domains.nlp.model import DEFAULT_MODEL, TextClassifier  # noqa: E402
from lucid.domains.nlp.service import NLPService  # noqa: E402


def top_words(words: list[str], values: np.ndarray, k: int = 3) -> list[str]:
    """The k words with the largest values (after normalising; merged if repeated)."""
    totals: dict[str, float] = {}
    for word, value in zip(words, values, strict=True):
        key = normalise_word(word)
        if key:
            totals[key] = totals.get(key, 0.0) + float(value)
    return [w for w, _ in sorted(totals.items(), key=lambda kv: -kv[1])[:k]]


def deletion_drop(clf, tokens, words: list[str], target: int, full: float) -> float:
    """How far the target's log-odds fall when every occurrence of ``words`` is masked."""
    keys = set(words)
    hide = [i for i, w in enumerate(tokens.words) if normalise_word(w) in keys]
    return full - masked_word_log_odds(clf, tokens, hide, target) if hide else 0.0


def pipeline_word_values(explanation: shap.Explanation, class_index: int) -> tuple[list[str], np.ndarray]:
    """Merge shap's token segments into words (a segment without a leading space continues a word)."""
    tokens = [str(t) for t in explanation.data]
    values = np.asarray(explanation.values)[:, class_index]
    words: list[str] = []
    merged: list[float] = []
    for token, value in zip(tokens, values, strict=True):
        if not token.strip():
            continue
        if words and not token.startswith(" ") and words[-1][-1:].isalnum() and token[:1].isalnum():
            words[-1] += token
            merged[-1] += float(value)
        else:
            words.append(token)
            merged.append(float(value))
    return words, np.asarray(merged)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--texts", type=int, default=256)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--explain-reviews", type=int, default=10, help="reviews for the top-3 comparison")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    service = NLPService(device="cpu")
    if not service.is_built(DEFAULT_MODEL):
        sys.exit("The default model is not built yet: run `make models` or open the page once.")
    clf = service.load(DEFAULT_MODEL)
    int8 = service.load(DEFAULT_MODEL, int8=True)

    df = load_reviews()
    _, test_idx = stratified_split(df["label"].to_numpy(), 0.2, 42)
    test = df.iloc[test_idx].reset_index(drop=True)
    pick = stratified_sample(test["label"].to_numpy(), args.texts, 0)
    texts = test["text"].iloc[pick].tolist()
    truth = np.array([clf.labels.index(v) for v in test["label"].iloc[pick]])
    n_tokens = [len(s) for s in clf.encode(texts)]

    from transformers import pipeline

    pipe = pipeline("text-classification", model=clf.model, tokenizer=clf.tokenizer, device=-1, top_k=None)
    pipe_kwargs = {"truncation": True, "max_length": clf.max_length}

    def pipe_labels(outputs) -> np.ndarray:
        return np.array([clf.labels.index(max(o, key=lambda d: d["score"])["label"]) for o in outputs])

    rows = []
    one_at_a_time = median_time(lambda: [pipe(t, **pipe_kwargs) for t in texts], args.runs)
    pipe_out = [pipe(t, **pipe_kwargs) for t in texts]
    pipe_out = [o[0] if o and isinstance(o[0], list) else o for o in pipe_out]
    pipe_pred = pipe_labels(pipe_out)
    rows.append(("transformers pipeline, one text at a time", one_at_a_time, pipe_pred))
    batched_pipe = median_time(lambda: pipe(texts, batch_size=32, **pipe_kwargs), args.runs)
    rows.append(("transformers pipeline, batch_size=32", batched_pipe, pipe_pred))
    precision = precision_name(clf.compute_dtype)
    ours = median_time(lambda: clf.predict_logits(texts), args.runs)
    our_pred = clf.predict_logits(texts).argmax(1)
    rows.append((f"Lucid: token-budget batches, {precision}", ours, our_pred))
    if clf.compute_dtype != torch.float32:
        fp32 = TextClassifier(
            clf.model,
            clf.tokenizer,
            clf.labels,
            max_length=clf.max_length,
            device=clf.device,
            precision="fp32",
        )
        ours_fp32 = median_time(lambda: fp32.predict_logits(texts), args.runs)
        rows.append(("Lucid: same batches, float32", ours_fp32, fp32.predict_logits(texts).argmax(1)))
    ours_int8 = median_time(lambda: int8.predict_logits(texts), args.runs)
    int8_pred = int8.predict_logits(texts).argmax(1)
    rows.append(("Lucid: same, int8 dynamic quantisation", ours_int8, int8_pred))

    print(
        f"\nScoring {len(texts)} held-out reviews (median {int(np.median(n_tokens))} word pieces), "
        f"median of {args.runs} warmed runs, {args.threads} threads"
    )
    print(f"{'path':46} {'texts/s':>8} {'x pipeline':>10} {'accuracy':>9} {'agree':>6}")
    scoring = []
    for label, seconds, pred in rows:
        rate = len(texts) / seconds
        ratio = one_at_a_time / seconds
        acc = float((pred == truth).mean())
        agree = float((pred == our_pred).mean())
        print(f"{label:46} {rate:8.1f} {ratio:10.2f} {acc:9.3f} {agree:6.3f}")
        scoring.append(
            {
                "path": label,
                "texts_per_s": rate,
                "ratio_vs_pipeline": ratio,
                "accuracy": acc,
                "agreement_with_ours_default": agree,
            }
        )

    # ---- explaining one review ------------------------------------------------------------
    # shap.Explainer(pipeline) with default settings: shap's Text masker (every word piece a feature,
    # [MASK] per hidden piece, shap's text hierarchy), Partition explainer, 500 evaluations, probabilities.
    pipe_shap = pipeline(
        "text-classification", model=clf.model, tokenizer=clf.tokenizer, device=-1, top_k=None
    )
    explainer = shap.Explainer(pipe_shap)
    lengths = np.array(n_tokens)
    candidates = [int(k) for k in np.argsort(np.abs(lengths - 40))[: args.explain_reviews]]
    rows_explain = []
    for k in candidates:
        text = texts[k]
        toks = split_words(clf, text)
        tgt = int(clf.predict_logits([text]).argmax(1)[0])
        explain_pieces(clf, toks, tgt)  # warm the shapes of this text once, as the defaults' run below is
        start = time.perf_counter()
        ours_k = explain_pieces(clf, toks, tgt)
        ours_s = time.perf_counter() - start
        start = time.perf_counter()
        words_k, full_k = explain_words(clf, toks, tgt)
        words_s = time.perf_counter() - start
        start = time.perf_counter()
        d_expl = explainer([text])[0]
        default_s = time.perf_counter() - start
        d_index = list(d_expl.output_names).index(clf.labels[tgt])
        dw, dv = pipeline_word_values(d_expl, d_index)
        d_pieces = np.asarray(d_expl.values)[:, d_index]
        default_top = top_words(dw, dv)
        ours_top = top_words(list(ours_k.words.data), ours_k.words.values)
        words_top = top_words(toks.words, words_k.values)
        rows_explain.append(
            {
                "word_pieces": int(len(toks.ids)),
                "words": len(toks.words),
                "class": clf.labels[tgt],
                "shap_pipeline_default_seconds": default_s,
                "ours_seconds": ours_s,
                "speedup": default_s / ours_s,
                "top3_shap_pipeline_default": default_top,
                "top3_ours": ours_top,
                "same_top3": sorted(ours_top) == sorted(default_top),
                "pearson_pieces_vs_default": float(np.corrcoef(ours_k.pieces.values, d_pieces)[0, 1]),
                "spearman_pieces_vs_default": float(spearmanr(ours_k.pieces.values, d_pieces).statistic),
                "max_abs_difference_pieces": float(np.abs(ours_k.pieces.values - d_pieces).max()),
                "word_level_seconds": words_s,
                "word_level_top3_shared_with_default": len(set(words_top) & set(default_top)),
                "drop_ours": deletion_drop(clf, toks, ours_top, tgt, full_k),
                "drop_word_level": deletion_drop(clf, toks, words_top, tgt, full_k),
                "drop_defaults": deletion_drop(clf, toks, default_top, tgt, full_k),
            }
        )
    first = rows_explain[0]
    print(
        f"\nExplaining one review of {first['word_pieces']} word pieces / {first['words']} words "
        f"for class '{first['class']}'"
    )
    print(f"{'path':52} {'seconds':>8} {'speed-up':>9}  top-3 words")
    print(
        f"{'shap.Explainer(pipeline), defaults':52} {first['shap_pipeline_default_seconds']:8.2f} "
        f"{1.0:9.2f}  {first['top3_shap_pipeline_default']}"
    )
    print(
        f"{'Lucid page: word pieces, shap Text masker, ' + precision:52} {first['ours_seconds']:8.2f} "
        f"{first['speedup']:9.2f}  {first['top3_ours']}"
    )
    print(
        f"{'Lucid batch drivers: whole words (log-odds)':52} {first['word_level_seconds']:8.2f} "
        f"{first['shap_pipeline_default_seconds'] / first['word_level_seconds']:9.2f}"
    )

    def span(key: str, digits: int = 2) -> str:
        values = [r[key] for r in rows_explain]
        low, high, mid = min(values), max(values), statistics.median(values)
        return f"{low:.{digits}f}-{high:.{digits}f} (median {mid:.{digits}f})"

    n = len(rows_explain)
    print(f"\nOver {n} held-out reviews of about 40 word pieces:")
    print(f"  seconds: shap defaults {span('shap_pipeline_default_seconds')}, Lucid {span('ours_seconds')}")
    print(f"  speed-up {span('speedup')}")
    print(
        f"  same top-3 words as the defaults: {sum(r['same_top3'] for r in rows_explain)} of {n}; "
        f"piece values vs the defaults: Pearson {span('pearson_pieces_vs_default', 4)}, "
        f"largest difference {span('max_abs_difference_pieces', 4)}"
    )
    shared = [r["word_level_top3_shared_with_default"] for r in rows_explain]
    print(
        f"  whole-word explainer (batch drivers): {span('word_level_seconds')} s; same top-3 as the "
        f"defaults in {sum(x == 3 for x in shared)}, 2 of 3 in {sum(x == 2 for x in shared)}"
    )
    print(
        "  masking a method's top-3 words lowers the class's log-odds by (mean): Lucid page "
        f"{np.mean([r['drop_ours'] for r in rows_explain]):.2f}, whole words "
        f"{np.mean([r['drop_word_level'] for r in rows_explain]):.2f}, shap defaults "
        f"{np.mean([r['drop_defaults'] for r in rows_explain]):.2f}"
    )
    result = {
        "texts": len(texts),
        "median_word_pieces": int(np.median(n_tokens)),
        "runs": args.runs,
        "threads": args.threads,
        "precision": precision,
        "scoring": scoring,
        "explain": rows_explain,
    }
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "nlp.json").write_text(json.dumps(result, indent=2))
    print(f"\nWrote {out / 'nlp.json'}")


if __name__ == "__main__":
    main()
