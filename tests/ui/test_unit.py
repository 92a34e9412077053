"""The UI's own checks: TypeScript (strict) and the Vitest unit/component tests (SSE reader,
stats panel, error states, result panel)."""

from __future__ import annotations

import re

from tests.ui.node import run, tool


def test_typescript_typechecks() -> None:
    run([tool("tsc"), "--noEmit"], timeout_s=300)


def test_vitest_unit_and_component_tests_pass() -> None:
    result = run([tool("vitest"), "run"], timeout_s=300)
    counted = re.search(r"Tests\s+(\d+) passed", result.stdout)
    assert counted and int(counted.group(1)) >= 20, result.stdout
