"""JSON log lines: one object per line, with the request's fields merged in.

Log with ``log.info("request", extra={"fields": {...}})``; the formatter puts those fields at the
top level next to ``ts``, ``level``, ``logger`` and ``msg``. Prompts are never logged, only
:func:`prompt_hash`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from typing import Any


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str = "INFO") -> None:
    """Send every logger (ours, uvicorn's) to stderr as JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # One line per request comes from our own middleware; uvicorn's access log would repeat it.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


def prompt_hash(prompt: str) -> str:
    """A short, stable, non-reversible id of a prompt (sha256 prefix)."""
    return hashlib.sha256(prompt.encode()).hexdigest()[:16]
