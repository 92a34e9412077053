"""Running the UI's node tools (ui/node_modules/.bin) from pytest, with their output on failure."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UI = REPO / "ui"
ARTIFACTS = UI / "test-results"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))


def tool(name: str) -> Path:
    """``ui/node_modules/.bin/<name>``; fails (never skips) when the node deps are missing."""
    if shutil.which("node") is None:
        pytest.fail("node is not installed: run scripts/bootstrap.sh (make test does it)")
    path = UI / "node_modules/.bin" / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make ui-deps` (make test does) or `cd ui && npm ci`")
    return path


def run(
    args: list[str | Path], *, timeout_s: float, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a node tool in ui/; fail the test with its output when it fails."""
    result = subprocess.run(
        [str(a) for a in args],
        cwd=UI,
        env={**os.environ, "CI": "1", "NO_COLOR": "1", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if result.returncode != 0:
        pytest.fail(
            f"{' '.join(map(str, args))} exited {result.returncode}:\n"
            f"{result.stdout[-20_000:]}\n{result.stderr[-5_000:]}"
        )
    return result
