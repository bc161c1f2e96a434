"""Build every domain's default models into the model store (those not built yet).

    python -m models.build_defaults [domain ...]

Each domain service provides ``ensure_default_models(progress=None)``; models trained by Lucid's
own recipes (credit risk, review sentiment, recommendations) are trained once and then reused.
"""

from __future__ import annotations

import importlib
import sys
import time

from services.cli import DOMAIN_MODULES


def main(argv: list[str] | None = None) -> int:
    domains = (argv if argv is not None else sys.argv[1:]) or list(DOMAIN_MODULES)
    unknown = [d for d in domains if d not in DOMAIN_MODULES]
    if unknown:
        print(
            f"Unknown domain(s): {', '.join(unknown)}. Valid: {', '.join(DOMAIN_MODULES)}.", file=sys.stderr
        )
        return 2
    for domain in domains:
        module = importlib.import_module(DOMAIN_MODULES[domain])
        ensure = getattr(module, "ensure_default_models", None)
        if ensure is None:
            continue
        start = time.perf_counter()
        last = [-1]

        def report(fraction: float, message: str, domain: str = domain, last: list[int] = last) -> None:
            step = int(fraction * 10)
            if step != last[0]:
                last[0] = step
                print(f"[{domain}] {fraction:4.0%} {message}", flush=True)

        names = ensure(progress=report)
        listed = ", ".join(names) if names else "defaults"
        print(f"[{domain}] ready: {listed} ({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
