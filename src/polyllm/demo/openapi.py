"""The router's OpenAPI document as the UI needs it, for ``openapi-typescript``.

FastAPI's document covers the request and response bodies; the UI also reads what only travels
inside the SSE stream (``route``, ``token``, ``error`` events) and ``/last_request_stats``. Their
pydantic models are added to ``components.schemas``, so every type the UI uses is generated from
the models the router itself uses.

    python -m polyllm.demo.openapi ui/openapi.json      # then: cd ui && npm run gen:types
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from polyllm.common.schemas import ErrorEvent, RouteEvent, RouterStats, TokenEvent
from polyllm.router.api.ui import LastRequestStats
from polyllm.router.app import create_app
from polyllm.router.settings import RouterSettings

STREAM_MODELS: tuple[type[BaseModel], ...] = (
    RouteEvent,
    TokenEvent,
    RouterStats,
    ErrorEvent,
    LastRequestStats,
)
REF = "#/components/schemas/{model}"


def ui_openapi() -> dict[str, Any]:
    """The router's OpenAPI document plus the stream-event and last-stats schemas."""
    # Settings decide what the app connects to, never its routes or schemas; the heuristic
    # policy needs no trained files.
    document: dict[str, Any] = create_app(RouterSettings(policy="heuristic")).openapi()
    schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
    _, extra = models_json_schema([(m, "serialization") for m in STREAM_MODELS], ref_template=REF)
    for name, schema in extra.get("$defs", {}).items():
        schemas.setdefault(name, schema)
    return document


def render() -> str:
    """The document as committed: sorted keys, two-space indent, final newline."""
    return json.dumps(ui_openapi(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    """Write the document to ``argv[0]`` (or stdout)."""
    text = render()
    if argv:
        Path(argv[0]).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
