"""`polyllm up / status / down` as a user runs them: real processes, a temp config, free ports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.integration.conftest import MODELS_DIR
from tests.redis_server import free_port
from tests.waiting import wait_until

pytestmark = pytest.mark.integration
ONLY = "redis,m1,router"


@dataclass
class Stack:
    """A temp stack config and what `polyllm up` recorded for it."""

    config: Path
    run_dir: Path
    ports: dict[str, int]
    up: subprocess.CompletedProcess[str]

    def pids(self) -> dict[str, int]:
        return {p.stem: int(p.read_text()) for p in self.run_dir.glob("*.pid")}


def polyllm(*args: str, timeout_s: float = 180) -> subprocess.CompletedProcess[str]:
    """Run ``python -m polyllm …`` and capture what it prints."""
    env = {k: v for k, v in os.environ.items() if k != "POLYLLM_STACK"}
    return subprocess.run(
        [sys.executable, "-m", "polyllm", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=env,
        check=False,
    )


def write_config(path: Path, run_dir: Path, ports: dict[str, int]) -> Path:
    raw = {
        "run_dir": str(run_dir),
        "models_dir": str(MODELS_DIR),
        "redis": {"port": ports["redis"]},
        "router": {"port": ports["router"], "settings": {"RATE_CAPACITY": 100}},
        "models": {
            "m1": {"port": ports["m1"], "tier": 1, "cost": 1, "threads": 2},
            "m2": {"port": ports["m2"], "tier": 2, "cost": 2},  # configured, not started
        },
        "prometheus": {"enabled": False},
        "node_exporter": {"enabled": False},
    }
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not (MODELS_DIR / "m1.gguf").is_file():
        pytest.fail(f"{MODELS_DIR / 'm1.gguf'} is missing: run `make test-models`")
    tmp = tmp_path_factory.mktemp("stack")
    ports = {name: free_port() for name in ("redis", "router", "m1", "m2")}
    config = write_config(tmp / "polyllm.yaml", tmp / "run", ports)
    result = polyllm("up", "--config", str(config), "--only", ONLY, "--timeout", "120")
    stack = Stack(config, tmp / "run", ports, result)
    try:
        yield stack
    finally:
        polyllm("down", "--config", str(config))
        if os.environ.get("POLYLLM_SHOW_LOGS"):
            for log in sorted((tmp / "run").glob("*.log")):
                sys.stderr.write(f"--- {log.name}\n{log.read_text(errors='replace')}")


def test_up_starts_the_selection_and_prints_urls(stack: Stack) -> None:
    assert stack.up.returncode == 0, stack.up.stdout + stack.up.stderr
    assert sorted(stack.pids()) == ["m1", "redis", "router"]
    for name in ("router", "m1"):
        assert f"http://127.0.0.1:{stack.ports[name]}" in stack.up.stdout
    assert f"redis://127.0.0.1:{stack.ports['redis']}/0" in stack.up.stdout
    assert "warm-up m1: " in stack.up.stdout
    for name in ("router", "m1"):
        assert httpx.get(f"http://127.0.0.1:{stack.ports[name]}/health").status_code == 200


def test_router_streams_an_answer_from_m1(stack: Stack) -> None:
    body = {"prompt": "Say hi.", "max_tokens": 8, "temp": 0, "model": "m1", "cache": False}
    events: list[tuple[str, dict[str, Any]]] = []
    url = f"http://127.0.0.1:{stack.ports['router']}/generate"
    with httpx.stream("POST", url, json=body, timeout=60) as reply:
        assert reply.status_code == 200
        name = ""
        for line in reply.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((name, json.loads(line.removeprefix("data: "))))
    kinds = [k for k, _ in events]
    assert kinds[0] == "route" and events[0][1]["model"] == "m1"
    assert kinds[-1] == "done" and set(kinds[1:-1]) == {"token"}


def test_status_json_lists_pids_and_health(stack: Stack) -> None:
    result = polyllm("status", "--config", str(stack.config), "--json")
    assert result.returncode == 0, result.stderr
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    pids = stack.pids()
    for name in ("redis", "m1", "router"):
        assert rows[name]["health"] == "ok"
        assert rows[name]["pid"] == pids[name]
        assert rows[name]["port"] == stack.ports[name]
        assert rows[name]["rss_bytes"] > 0
    assert rows["m2"]["health"] == "stopped" and rows["m2"]["pid"] is None


def test_up_again_is_harmless(stack: Stack) -> None:
    before = stack.pids()
    again = polyllm("up", "--config", str(stack.config), "--only", ONLY)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "already running" in again.stdout
    assert stack.pids() == before


def test_taken_port_is_a_clear_error_before_anything_starts(stack: Stack, tmp_path: Path) -> None:
    ports = {**stack.ports, "m1": free_port(), "router": free_port(), "m2": free_port()}
    other = write_config(tmp_path / "other.yaml", tmp_path / "run", ports)  # redis port clashes
    result = polyllm("up", "--config", str(other), "--only", ONLY)
    assert result.returncode == 1
    assert f"port {stack.ports['redis']} (for redis)" in result.stderr
    assert "nothing was started" in result.stderr
    assert not list((tmp_path / "run").glob("*.pid"))


def test_down_stops_every_process_it_started(stack: Stack) -> None:
    pids = stack.pids()
    result = polyllm("down", "--config", str(stack.config))
    assert result.returncode == 0, result.stderr
    for name, pid in pids.items():
        assert f"pid {pid}" in result.stdout and name in result.stdout

    def gone(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    # init reaps the orphans a moment after they exit
    wait_until(lambda: all(gone(p) for p in pids.values()), f"still alive: {pids}", 10)
    assert not list(stack.run_dir.glob("*.pid")) and not list(stack.run_dir.glob("*.port"))
    again = polyllm("down", "--config", str(stack.config))
    assert again.returncode == 0 and "nothing to stop" in again.stdout
