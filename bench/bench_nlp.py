"""Benchmark of the review-sentiment path against plain transformers/SHAP usage, side by side in one run.

Scoring: held-out reviews scored by a transformers ``pipeline`` (float32) one text at a time and with
its own ``batch_size=32``, against our token-budget batches sorted by length in the device's precision
(bfloat16 on CPUs with AVX-512 BF16), the same in float32, and the int8 option; median of warmed runs, with
accuracy and agreement on the same texts.

Explaining: one review of about 40 word pieces explained by ``shap.Explainer(pipeline)`` with default
settings, against our word-level Partition explainer; both are compared with a 2,000-evaluation
reference of our explainer (top-3 words and Spearman rank correlation).

Run: ``.venv/bin/python bench/bench_nlp.py [--texts 256] [--runs 5]`` (needs the built default
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
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import shap  # noqa: E402
import torch  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from bench.timing import median_time  # noqa: E402
from models.nlp import (  # noqa: E402
    DEFAULT_MODEL,
    TextClassifier,
    load_reviews,
    stratified_sample,
    stratified_split,
)
from services.device import precision_name  # noqa: E402
from services.nlp import NLPService, normalise_word  # noqa: E402
from services.nlp_explain import explain_words, masked_word_log_odds, split_words  # noqa: E402


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
    if not service.default_ready():
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
    lengths = np.array(n_tokens)
    review = texts[int(np.argmin(np.abs(lengths - 40)))]
    tokens = split_words(clf, review)
    target = int(clf.predict_logits([review]).argmax(1)[0])

    start = time.perf_counter()
    reference, _ = explain_words(clf, tokens, target, max_evals=2000)
    ref_seconds = time.perf_counter() - start
    analysis_times = []
    for _ in range(3):
        start = time.perf_counter()
        ours_expl, _ = explain_words(clf, tokens, target)
        analysis_times.append(time.perf_counter() - start)
    ours_seconds = statistics.median(analysis_times)

    pipe_shap = pipeline(
        "text-classification", model=clf.model, tokenizer=clf.tokenizer, device=-1, top_k=None
    )
    explainer = shap.Explainer(pipe_shap)
    start = time.perf_counter()
    default_expl = explainer([review])[0]
    default_seconds = time.perf_counter() - start
    label_names = list(default_expl.output_names)
    d_words, d_values = pipeline_word_values(default_expl, label_names.index(clf.labels[target]))

    ref_top = top_words(tokens.words, reference.values)
    ours_top = top_words(tokens.words, ours_expl.values)
    default_top = top_words(d_words, d_values)
    rho_ours = float(spearmanr(ours_expl.values, reference.values).statistic)
    print(
        f"\nExplaining one review of {len(tokens.ids)} word pieces / {len(tokens.words)} words "
        f"for class '{clf.labels[target]}'"
    )
    print(f"{'path':46} {'seconds':>8} {'speed-up':>9}  top-3 words")
    print(f"{'shap.Explainer(pipeline), defaults':46} {default_seconds:8.2f} {1.0:9.2f}  {default_top}")
    print(
        f"{'Lucid: word-level Partition (default evals)':46} {ours_seconds:8.2f} "
        f"{default_seconds / ours_seconds:9.2f}  {ours_top}  (Spearman vs reference {rho_ours:.2f})"
    )
    print(
        f"{'Lucid: reference, 2,000 evaluations':46} {ref_seconds:8.2f} "
        f"{default_seconds / ref_seconds:9.2f}  {ref_top}"
    )
    # ---- top-3 words over several reviews: agreement, and which top-3 matters more to the model -----
    rows_top3 = []
    candidates = np.argsort(np.abs(lengths - 40))[: args.explain_reviews]
    for k in candidates:
        text = texts[int(k)]
        toks = split_words(clf, text)
        tgt = int(clf.predict_logits([text]).argmax(1)[0])
        ours_k, full_k = explain_words(clf, toks, tgt)
        d_expl = explainer([text])[0]
        dw, dv = pipeline_word_values(d_expl, list(d_expl.output_names).index(clf.labels[tgt]))
        mine, theirs = top_words(toks.words, ours_k.values), top_words(dw, dv)
        rows_top3.append(
            {
                "shared": len(set(mine) & set(theirs)),
                "drop_ours": deletion_drop(clf, toks, mine, tgt, full_k),
                "drop_defaults": deletion_drop(clf, toks, theirs, tgt, full_k),
            }
        )
    shared = [r["shared"] for r in rows_top3]
    drop_ours = float(np.mean([r["drop_ours"] for r in rows_top3]))
    drop_defaults = float(np.mean([r["drop_defaults"] for r in rows_top3]))
    print(
        f"\nTop-3 words on {len(rows_top3)} reviews of about 40 word pieces: same 3 words in "
        f"{sum(x == 3 for x in shared)}, 2 of 3 in {sum(x == 2 for x in shared)}, fewer in "
        f"{sum(x < 2 for x in shared)}."
    )
    print(
        "Masking a method's top-3 words lowers the predicted class's log-odds by (mean): "
        f"Lucid {drop_ours:.2f}, shap defaults {drop_defaults:.2f} (larger: the words matter more)"
    )
    result = {
        "top3_over_reviews": {
            "reviews": len(rows_top3),
            "shared_counts": shared,
            "mean_log_odds_drop_masking_ours_top3": drop_ours,
            "mean_log_odds_drop_masking_defaults_top3": drop_defaults,
        },
        "texts": len(texts),
        "median_word_pieces": int(np.median(n_tokens)),
        "runs": args.runs,
        "threads": args.threads,
        "scoring": scoring,
        "explain": {
            "review_word_pieces": int(len(tokens.ids)),
            "review_words": len(tokens.words),
            "shap_pipeline_default_seconds": default_seconds,
            "ours_seconds": ours_seconds,
            "speedup": default_seconds / ours_seconds,
            "reference_seconds": ref_seconds,
            "top3_reference": ref_top,
            "top3_ours": ours_top,
            "top3_shap_pipeline_default": default_top,
            "top3_ours_equals_reference": sorted(ours_top) == sorted(ref_top),
            "top3_default_equals_reference": sorted(default_top) == sorted(ref_top),
            "spearman_ours_vs_reference": rho_ours,
        },
    }
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "nlp.json").write_text(json.dumps(result, indent=2))
    print(f"\nWrote {out / 'nlp.json'}")


if __name__ == "__main__":
    main()
