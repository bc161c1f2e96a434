"""Structured logging: one JSON object per line on stderr, with no user data in the messages."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
from pathlib import Path


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and record.exc_info[0] is not None:
            entry["error_type"] = record.exc_info[0].__name__
            frames = traceback.extract_tb(record.exc_info[2])
            if frames:  # where in the code, never the values involved
                entry["where"] = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}"
        return json.dumps(entry)


def configure_logging(level: str | None = None) -> None:
    """Send the ``lucid`` loggers to stderr as JSON lines (idempotent)."""
    logger = logging.getLogger("lucid")
    if any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(level or os.environ.get("LUCID_LOG_LEVEL", "INFO"))
    logger.propagate = False
