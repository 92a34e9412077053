"""Launch real model services on free ports, wait for health, show their logs on failure."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
MODELS_DIR = Path(os.environ.get("POLYLLM_MODELS_DIR", REPO / "models"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Service:
    """A model service process under test."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    health_codes: list[int] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def metric(self, name: str, **labels: str) -> float:
        """Current value of one sample from /metrics (0 when absent)."""
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        want = ",".join(f'{k}="{v}"' for k, v in labels.items())
        for line in text.splitlines():
            head, _, value = line.rpartition(" ")
            if head == name or head == f"{name}{{{want}}}":
                return float(value)
        return 0.0


def launch(model: str, log_path: Path, *args: str, env: dict[str, str] | None = None) -> Service:
    """Start ``polyllm serve-model`` as a real process (does not wait for health)."""
    port = free_port()
    cmd = [sys.executable, "-m", "polyllm", "serve-model", "--model", model, "--port", str(port)]
    full_env = {**os.environ, "POLYLLM_MODELS_DIR": str(MODELS_DIR), **(env or {})}
    with log_path.open("wb") as out:
        proc = subprocess.Popen([*cmd, *args], stdout=out, stderr=subprocess.STDOUT, env=full_env)
    return Service(proc, port, log_path)


def wait_healthy(service: Service, timeout_s: float = 120) -> None:
    """Poll /health every 20 ms until 200, recording every status seen."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if service.proc.poll() is not None:
            pytest.fail(f"service exited with {service.proc.returncode}:\n{service.log()}")
        try:
            code = httpx.get(f"{service.url}/health", timeout=2).status_code
        except httpx.TransportError:
            time.sleep(0.02)
            continue
        service.health_codes.append(code)
        if code == 200:
            return
        time.sleep(0.02)
    pytest.fail(f"service not healthy after {timeout_s}s:\n{service.log()}")


def stop(service: Service) -> None:
    service.proc.terminate()
    try:
        service.proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        service.proc.kill()


@contextmanager
def running_m1(log_dir: Path, *args: str) -> Iterator[Service]:
    """The real m1 service (extra ``serve-model`` flags in ``args``), healthy, stopped after."""
    if not (MODELS_DIR / "m1.gguf").is_file():
        pytest.fail("models/m1.gguf is missing: run `make test-models` (make test does it)")
    service = launch("m1", log_dir / "m1.log", *args)
    try:
        wait_healthy(service)
        yield service
    finally:
        stop(service)
        if os.environ.get("POLYLLM_SHOW_LOGS"):
            sys.stderr.write(service.log())


@pytest.fixture(scope="session")
def m1_path() -> Path:
    path = MODELS_DIR / "m1.gguf"
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `make models` (make test does it)")
    return path


@pytest.fixture(scope="module")
def m1(m1_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """A real m1 service with a tiny queue (1 running + 1 waiting) and a 1024-token context."""
    args = ("--queue-max", "1", "--n-ctx", "1024", "--n-threads", "2")
    with running_m1(tmp_path_factory.mktemp("m1"), *args) as service:
        yield service
