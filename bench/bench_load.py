"""Many users at once: concurrent headless-Chromium sessions through every page of the real app.

Reports errors, p50/p95 time to each page's key result and the server's peak memory, and, as the
baseline in the same run, the same scenarios for a single user (no contention).

    python -m bench.bench_load [--sessions 20] [--seconds 120]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=120)
    args = parser.parse_args()
    from tests.live_app import start_app
    from tests.load.harness import run_load
    from tests.load.test_load import scenarios_ready

    scenarios = scenarios_ready()
    proc, url = start_app()
    try:
        run_load(url, proc.pid, scenarios, sessions=1, seconds=0, min_runs=len(scenarios))  # warm-up
        single = run_load(url, proc.pid, scenarios, sessions=1, seconds=0, min_runs=len(scenarios))
        many = run_load(url, proc.pid, scenarios, sessions=args.sessions, seconds=args.seconds)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    one, loaded = single.summary(), many.summary()
    print(
        f"{args.sessions} concurrent sessions for {many.seconds:.0f} s; errors: {len(many.errors)}; "
        f"peak server RSS {many.peak_rss_mb:,.0f} MB (single user: {single.peak_rss_mb:,.0f} MB)"
    )
    print(f"{'page':12s} {'runs':>5s} {'p50 s':>8s} {'p95 s':>8s} {'1 user s':>9s} {'p50 ratio':>10s}")
    for name, stats in loaded.items():
        base = one.get(name, {}).get("p50_s", float("nan"))
        print(
            f"{name:12s} {stats['runs']:5d} {stats['p50_s']:8.2f} {stats['p95_s']:8.2f} {base:9.2f} "
            f"{stats['p50_s'] / base:10.2f}"
        )
    for error in many.errors[:20]:
        print("error:", error)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "load.json").write_text(
        json.dumps(
            {
                "sessions": args.sessions,
                "seconds": many.seconds,
                "errors": many.errors,
                "peak_rss_mb": many.peak_rss_mb,
                "pages": loaded,
                "single_user": one,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
