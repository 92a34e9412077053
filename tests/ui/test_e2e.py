"""The UI end to end: Playwright (playwright-core) drives Debian's Chromium against a real stack
started here on free ports: redis-server, the real m1 model service, and the router serving a
build of the current UI sources. The browser steps live in ui/e2e/ui.e2e.ts; screenshots are
saved under ui/test-results/e2e/ (git-ignored)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests.integration.conftest import free_port, running_m1
from tests.redis_server import RedisServer
from tests.router.processes import registry_entry, router
from tests.ui.node import ARTIFACTS, CHROMIUM, UI, run, tool

pytestmark = pytest.mark.integration


def test_the_ui_in_a_real_browser_against_a_real_stack(tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip(
            f"no browser at {CHROMIUM}: scripts/bootstrap.sh installs Debian's chromium when run "
            "as root (make test does); without one the UI's browser tests cannot run"
        )
    vite = tool("vite")
    dist = tmp_path / "dist"
    run([vite, "build", "--outDir", dist, "--emptyOutDir", "--logLevel", "warn"], timeout_s=300)
    shutil.rmtree(ARTIFACTS / "e2e", ignore_errors=True)

    with (
        RedisServer(tmp_path / "redis") as redis,
        # 2048 tokens of context: the Stop step asks for a long answer. One thread: on a busy
        # 2-core machine two llama.cpp threads wait on each other far more than they gain.
        running_m1(tmp_path, "--n-ctx", "2048", "--n-threads", "1") as m1,
        router(
            tmp_path,
            {"m1": registry_entry(m1.url, 1)},
            redis.url,
            policy="learned",  # the default: its rationale is what the page shows
            ui_dir=dist,
            prometheus_url=f"http://127.0.0.1:{free_port()}",  # nobody: the UI must say so
        ) as proc,
    ):
        result = run(
            [tool("vitest"), "run", "--config", "vitest.e2e.config.ts"],
            timeout_s=600,
            env={
                "POLYLLM_E2E_URL": proc.url,
                "POLYLLM_E2E_M1_URL": m1.url,
                "POLYLLM_E2E_ARTIFACTS": str(ARTIFACTS / "e2e"),
                "CHROMIUM": str(CHROMIUM),
            },
        )
    counted = re.search(r"Tests\s+(\d+) passed", result.stdout)
    assert counted and int(counted.group(1)) >= 6, result.stdout
    shots = sorted(p.name for p in (ARTIFACTS / "e2e").glob("*.png"))
    assert shots[:2] == ["01-streaming.png", "02-done.png"], shots
    assert (UI / "e2e/ui.e2e.ts").is_file()
