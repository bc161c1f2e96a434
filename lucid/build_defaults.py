"""Build every domain's default models into the model store (those not built yet).

    python -m lucid.build_defaults [domain ...]

Each domain's :meth:`~lucid.domains.base.Domain.ensure_defaults` builds what is missing or stale:
models trained by Lucid's own recipes (credit risk, review sentiment, recommendations) are trained
once and then reused; packaged weights are converted or checked.
"""

from __future__ import annotations

import sys
import time

from lucid.domains import DOMAINS


def main(argv: list[str] | None = None) -> int:
    names = (argv if argv is not None else sys.argv[1:]) or list(DOMAINS)
    unknown = [d for d in names if d not in DOMAINS]
    if unknown:
        print(f"Unknown domain(s): {', '.join(unknown)}. Valid: {', '.join(DOMAINS)}.", file=sys.stderr)
        return 2
    for name in names:
        start = time.perf_counter()
        last = [-1]

        def report(fraction: float, message: str, name: str = name, last: list[int] = last) -> None:
            step = int(fraction * 10)
            if step != last[0]:
                last[0] = step
                print(f"[{name}] {fraction:4.0%} {message}", flush=True)

        built = DOMAINS[name].ensure_defaults(progress=report)
        listed = ", ".join(built) if built else "defaults"
        print(f"[{name}] ready: {listed} ({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
