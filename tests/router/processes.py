"""Real router and fake-backend processes on free ports, for the router's end-to-end tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.integration.conftest import free_port


@dataclass
class Proc:
    """A started process with its URL and log."""

    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def metric(self, name: str, **labels: str) -> float:
        """One sample from /metrics (0 when absent)."""
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in text.splitlines():
            head, _, value = line.rpartition(" ")
            name_part, _, label_part = head.partition("{")
            got = ",".join(sorted(label_part.rstrip("}").split(","))) if label_part else ""
            if name_part == name and got == want:
                return float(value)
        return 0.0


def _wait(proc: Proc, path: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.proc.poll() is not None:
            raise RuntimeError(f"process exited {proc.proc.returncode}:\n{proc.log()}")
        try:
            if httpx.get(f"{proc.url}{path}", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{proc.url}{path} not ready after {timeout_s}s:\n{proc.log()}")


@contextmanager
def fake_backend(tmp: Path, model: str, mode: str = "ok", **opts: Any) -> Iterator[Proc]:
    """A fault-injecting fake model service (``polyllm.bench.fake_backend``)."""
    port = free_port()
    extra = [f"--{k.replace('_', '-')}={v}" for k, v in opts.items()]
    cmd = [sys.executable, "-m", "polyllm.bench.fake_backend", "--port", str(port),
           "--model", model, "--mode", mode, *extra]  # fmt: skip
    log_path = tmp / f"fake-{model}-{port}.log"
    with log_path.open("wb") as out:
        proc = Proc(
            subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT),
            f"http://127.0.0.1:{port}",
            log_path,
        )
    try:
        _wait(proc, "/counters")
        yield proc
    finally:
        proc.stop()


def registry_entry(
    url: str, tier: int, backend: str = "cpu", host: str = "cpu-node-1"
) -> dict[str, Any]:
    return {"url": url, "backend": backend, "host": host, "tier": tier, "cost": float(tier)}


@contextmanager
def router(
    tmp: Path, registry: dict[str, dict[str, Any]], redis_url: str, **settings: Any
) -> Iterator[Proc]:
    """``polyllm serve-router`` with this registry and settings (as env vars). The policy is the
    heuristic unless ``policy=`` says otherwise: tests of the cascade need choices they can
    predict; the learned policy's own tests ask for it."""
    settings = {"policy": "heuristic", **settings}
    port = free_port()
    env = {
        **os.environ,
        "POLYLLM_REGISTRY": json.dumps(registry),
        "REDIS_URL": redis_url,
        "HEALTH_INTERVAL_S": "0.2",
        **{
            k.upper(): str(v).lower() if isinstance(v, bool) else str(v)
            for k, v in settings.items()
        },
    }
    log_path = tmp / f"router-{port}.log"
    cmd = [sys.executable, "-m", "polyllm", "serve-router", "--port", str(port)]
    with log_path.open("wb") as out:
        proc = Proc(
            subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env),
            f"http://127.0.0.1:{port}",
            log_path,
        )
    try:
        _wait(proc, "/models")
        yield proc
    finally:
        proc.stop()
        if os.environ.get("POLYLLM_SHOW_LOGS"):
            sys.stderr.write(proc.log())
