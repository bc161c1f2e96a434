"""One user's long training does not freeze the others: how long a second user waits meanwhile.

Starts the real app on loopback with its own model store (only the German credit default prebuilt),
then in headless Chromium measures a second user's time to result on cheap flows (Home rendered; the
credit page's demo applicants scored) with the server idle, and again while a first user, in its own
browser session, runs a long training job on the credit page:

- ``train-your-own``: "Train your own" on the uploaded 150,000-row Give Me Some Credit table;
- ``default-build``: the first use of the Give Me Some Credit default, built from its packaged table.

Prints idle and during-training times with their ratio and writes bench/results/training_wait.json.

    python -m bench.bench_training_wait [--jobs train-your-own default-build] [--idle-rounds 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    from tests.load.training import JOBS, OBSERVED, gmsc_upload, measure_training_wait

    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", nargs="+", choices=list(JOBS), default=list(JOBS))
    parser.add_argument("--idle-rounds", type=int, default=3, help="idle passes of each observed flow")
    parser.add_argument("--rows", type=int, default=150_000, help="rows of the train-your-own upload")
    parser.add_argument("--train-timeout", type=float, default=900, help="seconds allowed for each job")
    args = parser.parse_args()
    from lucid.core.store import ModelStore
    from lucid.domains.finance.service import FinanceService
    from tests.live_app import start_app
    from tests.load.harness import CHROMIUM

    if CHROMIUM is None:
        sys.exit("Debian's chromium is not installed (make browser-deps installs it)")
    results = {}
    store = Path(tempfile.mkdtemp(prefix="lucid-training-wait-"))
    try:
        FinanceService(ModelStore(store)).load("german_credit")  # serving is measured, not a first build
        data = gmsc_upload(args.rows)
        proc, url = start_app({"LUCID_MODEL_DIR": str(store)})
        try:
            for job in args.jobs:
                results[job] = measure_training_wait(
                    url,
                    proc.pid,
                    data,
                    job=job,
                    idle_rounds=args.idle_rounds,
                    train_timeout_s=args.train_timeout,
                )
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except Exception:  # noqa: BLE001
                proc.kill()
                proc.wait(timeout=10)
    finally:
        shutil.rmtree(store, ignore_errors=True)

    report = {}
    for job, result in results.items():
        summary = result.summary()
        print(
            f"\n{job}: credit model on {result.rows:,} rows trained in {result.training_seconds:.1f} s in "
            f"one browser session; peak server RSS {result.peak_rss_mb:,.0f} MB"
        )
        print(
            f"{'page':10s} {'idle p50 s':>11s} {'runs':>5s} {'training p50 s':>15s} {'max s':>7s} "
            f"{'runs':>5s} {'ratio':>6s}"
        )
        for page in OBSERVED:
            s = summary[page]
            print(
                f"{page:10s} {s['idle_p50_s']:11.2f} {s['idle_runs']:5d} {s['during_p50_s']:15.2f} "
                f"{s['during_max_s']:7.2f} {s['during_runs']:5d} {s['ratio_p50']:6.2f}"
            )
        for error in result.errors()[:20]:
            print("error:", error)
        report[job] = {
            "rows": result.rows,
            "training_seconds": result.training_seconds,
            "pages": summary,
            "runs": {
                "idle": [vars(r) for r in result.idle],
                "during_training": [vars(r) for r in result.during],
            },
            "errors": result.errors(),
            "peak_rss_mb": result.peak_rss_mb,
        }
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "training_wait.json").write_text(
        json.dumps({"observed": list(OBSERVED), "jobs": report}, indent=2)
    )


if __name__ == "__main__":
    main()
