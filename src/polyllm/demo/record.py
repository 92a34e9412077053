"""``polyllm demo record``: the demo script, played in Chromium and recorded.

The browser side is ``ui/scripts/demo-record.mjs`` (playwright-core from the UI's node packages,
Debian's Chromium, ffmpeg for the video); this command checks what it needs, then runs it against
a router that serves the UI.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx

DEFAULT_PROMPT = "Write a Python function that checks whether a string is a palindrome."
SCRIPT = Path("scripts/demo-record.mjs")


class DemoError(RuntimeError):
    """Something the recording needs is missing; the message says what to do."""


@dataclass(frozen=True)
class DemoConfig:
    """Where the UI is, where the outputs go, and what to ask."""

    url: str
    out: Path
    router_log: Path
    ui_dir: Path
    chromium: Path
    prompt: str = DEFAULT_PROMPT


def check(config: DemoConfig) -> None:
    """Raise :class:`DemoError` naming the first thing the recording lacks."""
    if shutil.which("node") is None:
        raise DemoError(
            "node is not installed: run scripts/bootstrap.sh (as root) or install nodejs"
        )
    if not (config.ui_dir / "node_modules/playwright-core").is_dir():
        raise DemoError(f"{config.ui_dir}/node_modules is missing: run `make ui-deps`")
    if shutil.which("ffmpeg") is None:
        raise DemoError("ffmpeg is not installed (it encodes the video): apt-get install ffmpeg")
    if not config.chromium.exists():
        raise DemoError(f"no browser at {config.chromium}: apt-get install chromium")
    if not config.router_log.is_file():
        raise DemoError(f"no router log at {config.router_log} (make up writes .run/router.log)")
    try:
        page = httpx.get(config.url, timeout=5)
    except httpx.HTTPError as exc:
        raise DemoError(f"the router at {config.url} is not reachable: {exc}") from exc
    if page.status_code != 200:
        raise DemoError(f"{config.url} answered {page.status_code}: is the UI built (`make ui`)?")


def record(config: DemoConfig) -> list[Path]:
    """Play and record the demo; returns the files written (video first)."""
    check(config)
    env = {
        **os.environ,
        "DEMO_URL": config.url,
        "DEMO_OUT": str(config.out.resolve()),
        "DEMO_ROUTER_LOG": str(config.router_log.resolve()),
        "DEMO_PROMPT": config.prompt,
        "CHROMIUM": str(config.chromium),
    }
    result = subprocess.run(
        ["node", str(SCRIPT)], cwd=config.ui_dir, env=env, timeout=900, check=False
    )
    if result.returncode != 0:
        raise DemoError(f"the recording failed (node {SCRIPT} exited {result.returncode})")
    return [config.out / "demo.webm", *sorted(config.out.glob("0*.png"))]
