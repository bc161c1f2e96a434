"""Benchmark of the recommender on MovieLens 100k, against the popularity baseline, in one run.

Measures, on the same per-user temporal split: training time of the full recipe (generator three
times, ranker once, evaluation); top-10 for every user (943) with the full model against the
popularity baseline's time; reasons for 10 items (exact TreeSHAP via XGBoost ``pred_contribs`` plus
the plain-language reasons) against ``shap.TreeExplainer`` on the same ranker; and NDCG@10 and the
other held-out metrics of popularity, the candidate generator and the full model.

Run: ``.venv/bin/python -m bench.bench_recommend [--runs 5]``. Writes ``bench/results/recommend.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import shap
import xgboost as xgb

from bench.timing import median_time
from lucid.domains.recommend.movielens import movielens_interaction_data
from lucid.domains.recommend.ranking import K, popularity_top
from lucid.domains.recommend.training import train_recommender

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    data = movielens_interaction_data()
    start = time.perf_counter()
    model = train_recommender(data)
    train_seconds = time.perf_counter() - start

    users = np.arange(model.index.n_users)
    t_full = median_time(lambda: model.recommend_all(K, reasons=False), args.runs)
    t_pop = median_time(lambda: popularity_top(model.index, users, K), args.runs)

    # Reasons for 10 items of one user: our path (recommend + pred_contribs + reasons) ...
    user = model.user_ids[0]
    t_reasons = median_time(lambda: model.recommend(user, n=10), args.runs)
    recs = model.recommend(user, n=10)
    # ... against a plain shap.TreeExplainer on the same ranker and the same 10 rows.
    rows = np.asarray(recs.explanation.data, dtype=np.float32)
    explainer = shap.TreeExplainer(model.booster)
    t_tree_explainer = median_time(lambda: explainer.shap_values(rows), args.runs)
    plain = explainer.shap_values(rows)
    agreement = float(np.max(np.abs(np.asarray(plain) - np.asarray(recs.explanation.values))))
    t_contribs = median_time(
        lambda: model.booster.predict(
            xgb.DMatrix(rows, feature_names=model.feature_names), pred_contribs=True
        ),
        args.runs,
    )

    metrics = model.metrics
    ndcg_ratio = metrics["full model"]["ndcg@10"] / metrics["popularity"]["ndcg@10"]
    timing = [
        ("top-10 for all 943 users, full model", t_full),
        ("top-10 for all 943 users, popularity", t_pop),
        ("reasons for 10 items (recommend + SHAP + text)", t_reasons),
        ("SHAP for 10 items, XGBoost pred_contribs", t_contribs),
        ("SHAP for 10 items, shap.TreeExplainer", t_tree_explainer),
    ]
    print(f"\nMovieLens 100k, {model.info['split']}; training {train_seconds:.1f} s")
    print(f"{'task':50s} {'seconds':>10s}")
    for label, seconds in timing:
        print(f"{label:50s} {seconds:10.4f}")
    print(f"ratio full model / popularity (top-10 for all): {t_full / t_pop:.2f}x")
    print(f"ratio TreeExplainer / pred_contribs: {t_tree_explainer / t_contribs:.2f}x")
    print(f"max |difference| between the two SHAP computations: {agreement:.2e}")
    names = [m for m in metrics["full model"] if m != "users"]
    print(f"\n{'metric':14s} " + " ".join(f"{s:>20s}" for s in metrics))
    for name in names:
        print(f"{name:14s} " + " ".join(f"{metrics[s][name]:20.4f}" for s in metrics))
    print(f"NDCG@10 full model / popularity: {ndcg_ratio:.2f}x (target >= 1.5x)")

    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    result = {
        "train_seconds": train_seconds,
        "timing_seconds": dict(timing),
        "ratio_full_vs_popularity_time": t_full / t_pop,
        "ratio_treeexplainer_vs_pred_contribs": t_tree_explainer / t_contribs,
        "shap_max_abs_difference": agreement,
        "metrics": metrics,
        "ndcg_ratio_full_vs_popularity": ndcg_ratio,
        "info": model.info,
    }
    (out / "recommend.json").write_text(json.dumps(result, indent=2, default=float))


if __name__ == "__main__":
    main()
