"""Command-line entry for batch work, using the same services as the pages.

    python -m services <domain> train DATA --target COL --name NAME
    python -m services <domain> score DATA --out FILE [--model NAME] [--explain]
    python -m services <domain> evaluate DATA --target COL [--model NAME]

``train`` and ``evaluate`` print their metrics as one JSON object on the last line of stdout.
A domain joins by existing: ``services/<domain>.py`` for a domain in :data:`KNOWN_DOMAINS` provides
``cli_add_arguments(command, parser)`` for its own options and ``cli_run(command, args) -> dict``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from services.errors import LucidError

KNOWN_DOMAINS = ("nlp", "vision", "medical", "finance", "recommend")

#: domain name -> module implementing ``cli_add_arguments`` and ``cli_run`` (those present in this build).
DOMAIN_MODULES: dict[str, str] = {
    d: f"services.{d}" for d in KNOWN_DOMAINS if (Path(__file__).parent / f"{d}.py").is_file()
}

COMMANDS = ("train", "score", "evaluate")


def read_input(path: str) -> tuple[bytes, str]:
    """Bytes and file name of a CLI input file."""
    p = Path(path)
    if not p.is_file():
        raise LucidError(f"No such file: {path}")
    return p.read_bytes(), p.name


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
        module.cli_add_arguments(command, p)  # type: ignore[attr-defined]
    return parser


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
        result = module.cli_run(args.command, args)  # type: ignore[attr-defined]
    except LucidError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, default=_json_default))
    return 0


def _json_default(value: object) -> object:
    if hasattr(value, "item"):
        return value.item()  # type: ignore[union-attr]
    if hasattr(value, "tolist"):
        return value.tolist()  # type: ignore[union-attr]
    return str(value)
