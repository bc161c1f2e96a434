"""Command-line entry for batch work, using the same services as the pages.

    python -m services <domain> train DATA --target COL --name NAME
    python -m services <domain> score DATA --out FILE [--model NAME] [--explain]
                                      [--engine local|dask] [--workers N] [--partition-rows N]
                                      [--scheduler tcp://host:8786]
    python -m services <domain> evaluate DATA --target COL [--model NAME]

``train`` and ``evaluate`` print their metrics as one JSON object on the last line of stdout.

A domain joins by existing: ``services/<domain>.py`` for a domain in :data:`KNOWN_DOMAINS` provides
``cli_add_arguments(command, parser)`` for its own options and ``cli_run(command, args) -> dict``.
For ``score``, a domain that also provides ``score_input(args) -> DataFrame`` (the rows to score)
and a module-level ``score_partition(frame, *, model, explain, options) -> DataFrame`` is run
partition by partition through :mod:`services.distributed`, here or on a Dask cluster, with the
same code either way. ``options`` holds the domain's own ``score`` options. Optional hooks:

- ``score_output(frame, scored, args, stats) -> (table, summary)``: the table written to ``--out``
  and the domain's keys of the printed summary, from the input rows and the partitions' output
  (e.g. to drop and count files that could not be decoded). Without it ``scored`` is written.
- ``DEFAULT_PARTITION_ROWS``: the domain's default ``--partition-rows`` (rows that are expensive to
  score, such as images, make smaller partitions so a cluster's workers share the work).
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from services.errors import InvalidInputError, LucidError

KNOWN_DOMAINS = ("nlp", "vision", "medical", "finance", "recommend")

#: domain name -> module implementing ``cli_add_arguments`` and ``cli_run`` (those present in this build).
DOMAIN_MODULES: dict[str, str] = {
    d: f"services.{d}" for d in KNOWN_DOMAINS if (Path(__file__).parent / f"{d}.py").is_file()
}

COMMANDS = ("train", "score", "evaluate")
ENGINE_OPTIONS = ("engine", "workers", "partition_rows", "scheduler")
DEFAULT_PARTITION_ROWS = 2_000


def read_input(path: str) -> tuple[bytes, str]:
    """Bytes and file name of a CLI input file."""
    p = Path(path)
    if not p.is_file():
        raise InvalidInputError(f"No such file: {path}")
    return p.read_bytes(), p.name


def supports_partitions(module: object) -> bool:
    """Whether a domain's scoring can run partition by partition (and so on a cluster)."""
    return hasattr(module, "score_input") and hasattr(module, "score_partition")


def build_parser(domain: str, module: object) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m services {domain}")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        p = sub.add_parser(command)
        p.add_argument("data", help="input file (CSV, Excel, Parquet, zip, ... as the domain accepts)")
        p.add_argument("--model", default=None, help="registered or saved model name")
        if command in ("train", "evaluate"):
            p.add_argument("--target", default=None, help="label column")
        if command == "train":
            p.add_argument("--name", required=True, help="name to save the trained model under")
        if command == "score":
            p.add_argument("--out", required=True, help="output file (.csv)")
            p.add_argument("--explain", action="store_true", help="add SHAP explanations to the output")
            if supports_partitions(module):
                p.add_argument("--engine", choices=("local", "dask"), default="local", help="where to run")
                p.add_argument("--workers", type=int, default=2, help="local Dask worker processes")
                p.add_argument(
                    "--partition-rows",
                    type=int,
                    default=getattr(module, "DEFAULT_PARTITION_ROWS", DEFAULT_PARTITION_ROWS),
                    help="rows per partition",
                )
                p.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler")
        module.cli_add_arguments(command, p)  # type: ignore[attr-defined]
    return parser


def run_partitioned_score(module: object, args: argparse.Namespace) -> dict:
    """``score`` through :func:`services.distributed.run_partitioned`; writes ``args.out``."""
    from services.data import to_safe_csv
    from services.distributed import run_partitioned

    frame = module.score_input(args)  # type: ignore[attr-defined]
    options = {k: v for k, v in vars(args).items() if k not in {"command", "data", "model", "explain", "out"}}
    options = {k: v for k, v in options.items() if k not in ENGINE_OPTIONS}
    fn = functools.partial(
        module.score_partition,  # type: ignore[attr-defined]
        model=args.model,
        explain=args.explain,
        options=options,
    )

    def report(fraction: float, message: str) -> None:
        print(f"{fraction:4.0%} {message}", file=sys.stderr, flush=True)

    scored, stats = run_partitioned(
        fn,
        frame,
        engine=args.engine,
        workers=args.workers,
        partition_rows=args.partition_rows,
        address=args.scheduler,
        progress=report,
    )
    summary: dict = {}
    if hasattr(module, "score_output"):
        scored, summary = module.score_output(frame, scored, args, stats)  # type: ignore[attr-defined]
    Path(args.out).write_bytes(to_safe_csv(scored))
    return {
        **summary,
        "rows": len(scored),
        "out": str(args.out),
        "engine": stats.engine,
        "workers": stats.workers,
        "partitions": stats.partitions,
        "seconds": round(stats.seconds, 3),
    }


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    valid = ", ".join(sorted(DOMAIN_MODULES)) or "(none)"
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        print(f"Domains: {valid}")
        return 0 if argv else 2
    domain = argv[0]
    if domain not in DOMAIN_MODULES:
        print(f"error: unknown domain '{domain}'. Valid domains: {valid}.", file=sys.stderr)
        return 2
    module = importlib.import_module(DOMAIN_MODULES[domain])
    args = build_parser(domain, module).parse_args(argv[1:])
    try:
        if args.command == "score" and supports_partitions(module):
            result = run_partitioned_score(module, args)
        else:
            result = module.cli_run(args.command, args)  # type: ignore[attr-defined]
    except LucidError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - never a traceback for a user; exit code 3 marks a defect
        logging.getLogger("lucid.cli").debug("unexpected error", exc_info=True)
        name = type(exc).__name__
        print(f"error: the {args.command} command failed unexpectedly ({name}).", file=sys.stderr)
        return 3
    print(json.dumps(result, default=_json_default))
    return 0


def _json_default(value: object) -> object:
    if hasattr(value, "item"):
        return value.item()  # type: ignore[union-attr]
    if hasattr(value, "tolist"):
        return value.tolist()  # type: ignore[union-attr]
    return str(value)
