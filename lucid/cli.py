"""Lucid's command line, for batch work with the same services as the pages.

    lucid <domain> train DATA --target COL --name NAME
    lucid <domain> score DATA --out FILE [--model NAME] [--explain]
                              [--engine local|dask] [--workers N] [--partition-rows N]
                              [--scheduler tcp://host:8786]
    lucid <domain> evaluate DATA --target COL [--model NAME]
    lucid <domain> models [--rename OLD NEW | --delete NAME]

(also ``python -m lucid``, and ``python -m services`` as before). ``train`` and ``evaluate`` print
their metrics as one JSON object on the last line of stdout; ``score`` prints its summary the same
way. ``train`` measures the new model against its baseline and chance on held-out data (the quality
gate: ``beats_baseline``, ``saved`` and ``quality_gate`` in its JSON) and saves a model that does not
pass only with ``--save-anyway``. ``models`` lists the saved models (date, data, held-out result) and
renames or deletes one. Table domains read CSV, TSV, Excel or Parquet and find their usual columns by
name when none is given; image domains read a file, a folder or a zip.

The domains and their own options come from :data:`lucid.domains.DOMAINS`; ``score`` runs the
domain's :class:`~lucid.domains.base.BatchJob` partition by partition through
:mod:`lucid.batch.engine`, here or on a Dask cluster, with the same code either way.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lucid.core.data import to_safe_csv
from lucid.core.errors import LucidError
from lucid.domains import DOMAINS
from lucid.domains.base import COMMANDS, Domain, Request

ENGINE_OPTIONS = ("engine", "workers", "partition_rows", "scheduler")
_COMMON = {"command", "data", "model", "target", "name", "explain", "out", "save_anyway", *ENGINE_OPTIONS}


def build_parser(domain: Domain) -> argparse.ArgumentParser:
    """The parser of ``lucid <domain>``: the shared arguments and the domain's own options."""
    parser = argparse.ArgumentParser(prog=f"lucid {domain.name}", description=domain.title)
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        p = sub.add_parser(command)
        what = "a file, a folder or a zip" if domain.input_kind == "images" else "CSV, TSV, Excel or Parquet"
        p.add_argument("data", help=f"input ({what})")
        p.add_argument(
            "--model", default=None, help=f"registered or saved model name (default {domain.default_model})"
        )
        if command in ("train", "evaluate"):
            p.add_argument("--target", default=None, help="label column")
        if command == "train":
            p.add_argument("--name", required=True, help="name to save the trained model under")
            p.add_argument(
                "--save-anyway",
                action="store_true",
                help="save the model even if it is no better than its baseline or chance on held-out data",
            )
        if command == "score":
            p.add_argument("--out", required=True, help="output file (.csv)")
            p.add_argument("--explain", action="store_true", help="add explanations to the output")
            p.add_argument("--engine", choices=("local", "dask"), default="local", help="where to run")
            p.add_argument("--workers", type=int, default=2, help="local Dask worker processes")
            p.add_argument(
                "--partition-rows", type=int, default=domain.batch.partition_rows, help="rows per partition"
            )
            p.add_argument("--scheduler", default=None, help="address of an existing Dask scheduler")
        for option in domain.options_for(command):
            if option.flag_only:
                p.add_argument(option.flag, action="store_true", help=option.help)
            else:
                typed: dict[str, Any] = {"type": option.type} if option.type is not None else {}
                p.add_argument(
                    option.flag, default=option.default, choices=option.choices, help=option.help, **typed
                )
    manage = sub.add_parser("models", help="list the saved models; rename or delete one")
    action = manage.add_mutually_exclusive_group()
    action.add_argument("--rename", nargs=2, metavar=("OLD", "NEW"), help="give a saved model another name")
    action.add_argument("--delete", metavar="NAME", help="delete a saved model")
    return parser


def run_models(domain: Domain, args: argparse.Namespace) -> dict[str, Any]:
    """``models``: the domain's models (built-in and saved) after an optional rename or delete."""
    service = domain.service()
    done: dict[str, Any] = {}
    if args.rename:
        stored = service.rename(*args.rename)
        done = {"renamed": {"from": args.rename[0], "to": stored.name}}
    elif args.delete:
        service.delete(args.delete)
        done = {"deleted": args.delete}
    saved = service.saved_models_table()
    return {
        **done,
        "built_in": service.registry.names(),
        "saved": saved.to_dict("records"),
    }


def request_from(args: argparse.Namespace) -> Request:
    """The plain request of parsed arguments (no argparse below the CLI)."""
    values = vars(args)
    if args.command == "models":
        raise ValueError("models takes no request")
    return Request(
        command=args.command,
        data=args.data,
        model=args.model,
        target=values.get("target"),
        name=values.get("name"),
        explain=bool(values.get("explain", False)),
        save_anyway=bool(values.get("save_anyway", False)),
        options={k: v for k, v in values.items() if k not in _COMMON},
    )


def run_score(domain: Domain, request: Request, args: argparse.Namespace) -> dict[str, Any]:
    """``score`` through :func:`lucid.batch.engine.run_partitioned`; writes ``args.out``."""
    from lucid.batch.engine import run_partitioned

    job = domain.batch
    frame = job.rows(request)
    fn = functools.partial(
        job.score_partition, model=request.model, explain=request.explain, options=dict(request.options)
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
    table, summary = job.finish(frame, scored, model=request.model, options=request.options, stats=stats)
    Path(args.out).write_bytes(to_safe_csv(table))
    return {
        **summary,
        "rows": len(table),
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
    valid = ", ".join(sorted(DOMAINS)) or "(none)"
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        print(f"Domains: {valid}")
        return 0 if argv else 2
    name = argv[0]
    if name not in DOMAINS:
        print(f"error: unknown domain '{name}'. Valid domains: {valid}.", file=sys.stderr)
        return 2
    domain = DOMAINS[name]
    args = build_parser(domain).parse_args(argv[1:])
    try:
        if args.command == "models":
            result = run_models(domain, args)
        elif args.command == "score":
            result = run_score(domain, request_from(args), args)
        else:
            result = domain.run(request_from(args))
    except LucidError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - never a traceback for a user; exit code 3 marks a defect
        logging.getLogger("lucid.cli").debug("unexpected error", exc_info=True)
        print(
            f"error: the {args.command} command failed unexpectedly ({type(exc).__name__}).", file=sys.stderr
        )
        return 3
    print(json.dumps(result, default=_json_default))
    return 0


def _json_default(value: object) -> object:
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        return tolist()
    return str(value)
