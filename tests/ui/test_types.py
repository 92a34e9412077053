"""The UI's types come from the router's OpenAPI document: the committed copies must be what the
code produces now (regenerate: `make ui-types`)."""

from __future__ import annotations

from pathlib import Path

from polyllm.demo.openapi import render
from tests.ui.node import UI, run, tool

OPENAPI = UI / "openapi.json"
SCHEMA_TS = UI / "src/api/schema.ts"
FIX = "the router's contract changed: run `make ui-types` and commit ui/openapi.json and "


def test_committed_openapi_document_is_current() -> None:
    assert OPENAPI.read_text() == render(), FIX + "ui/src/api/schema.ts"


def test_committed_typescript_types_are_generated_from_it(tmp_path: Path) -> None:
    out = tmp_path / "schema.ts"
    run(
        [tool("openapi-typescript"), OPENAPI, "--default-non-nullable", "false", "--output", out],
        timeout_s=120,
    )
    assert SCHEMA_TS.read_text() == out.read_text(), FIX + "ui/src/api/schema.ts"


def test_the_ui_reads_the_router_stream_events_from_the_generated_types() -> None:
    types = (UI / "src/api/types.ts").read_text()
    for name in ("RouteEvent", "TokenEvent", "RouterStats", "ErrorEvent", "LastRequestStats"):
        assert f'Schemas["{name}"]' in types, name
