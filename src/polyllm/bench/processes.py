"""Processes a benchmark runs for itself: Redis, a model service, the router, each on a free
port, each waited on until healthy and ended when the ``with`` block ends (errors and Ctrl-C
included). A process that dies or never gets healthy raises RuntimeError naming its log."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

HOST = "127.0.0.1"
POLL_S = 0.2


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def stop(proc: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    """SIGTERM, then SIGKILL if the process has not ended after ``timeout_s``."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@contextmanager
def _launched(
    name: str, cmd: list[str], log_path: Path, env: Mapping[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=dict(env) if env else None
        )
    try:
        yield proc
    finally:
        stop(proc)


def _wait_http(
    proc: subprocess.Popen[bytes], name: str, url: str, log_path: Path, timeout_s: float
) -> None:
    """Poll ``url`` until it answers 200; raise if the process exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with code {proc.returncode}: see {log_path}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} not healthy after {timeout_s:g} s: see {log_path}")
        time.sleep(POLL_S)


def _ping(port: int) -> bool:
    """Whether a Redis on ``port`` answers PING with PONG (not LOADING or an error)."""
    try:
        with socket.create_connection((HOST, port), timeout=0.5) as conn:
            conn.sendall(b"*1\r\n$4\r\nPING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@contextmanager
def redis_server(workdir: Path, timeout_s: float = 10) -> Iterator[str]:
    """A ``redis-server`` from PATH on a free port, working in ``workdir``, saving nothing;
    yields its ``redis://`` URL once it answers PING."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not on PATH: run scripts/bootstrap.sh")
    port = free_port()
    cmd = [
        binary, "--port", str(port), "--bind", HOST, "--dir", str(workdir),
        "--save", "", "--appendonly", "no", "--daemonize", "no",
    ]  # fmt: skip
    log_path = workdir / "redis.log"
    with _launched("redis-server", cmd, log_path) as proc:
        deadline = time.monotonic() + timeout_s
        while not _ping(port):
            if proc.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with code {proc.returncode}: see {log_path}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not answer PING in {timeout_s:g} s")
            time.sleep(0.01)
        yield f"redis://{HOST}:{port}/0"


@contextmanager
def llama_server(
    binary: Path,
    model_path: Path,
    log_path: Path,
    *,
    n_threads: int,
    n_parallel: int,
    n_ctx: int,
    timeout_s: float = 300,
) -> Iterator[str]:
    """llama.cpp's own ``llama-server`` (scripts/build-llama-server.sh) on a free port with its
    defaults otherwise; yields its base URL once ``/health`` is 200 (the model is loaded)."""
    port = free_port()
    cmd = [
        str(binary), "--model", str(model_path), "--host", HOST, "--port", str(port),
        "--threads", str(n_threads), "--threads-batch", str(n_threads),
        "--parallel", str(n_parallel), "--ctx-size", str(n_ctx), "--n-gpu-layers", "0",
    ]  # fmt: skip
    url = f"http://{HOST}:{port}"
    with _launched("llama-server", cmd, log_path) as proc:
        _wait_http(proc, "llama-server", f"{url}/health", log_path, timeout_s)
        yield url


@contextmanager
def model_service(
    model_id: str,
    log_path: Path,
    *,
    models_dir: Path,
    n_threads: int,
    n_ctx: int | None = None,
    log_level: str | None = None,
    timeout_s: float = 300,
    extra: tuple[str, ...] = (),
) -> Iterator[str]:
    """``polyllm serve-model`` for one model (more flags in ``extra``); yields its base URL
    once ``/health`` is 200."""
    port = free_port()
    cmd = [
        sys.executable, "-m", "polyllm", "serve-model", "--model", model_id, "--port", str(port),
        "--models-dir", str(models_dir), "--n-threads", str(n_threads),
    ]  # fmt: skip
    if n_ctx is not None:
        cmd += ["--n-ctx", str(n_ctx)]
    if log_level is not None:
        cmd += ["--log-level", log_level]
    cmd += extra
    url = f"http://{HOST}:{port}"
    with _launched(f"{model_id} service", cmd, log_path) as proc:
        _wait_http(proc, f"{model_id} service", f"{url}/health", log_path, timeout_s)
        yield url


@contextmanager
def router_service(
    registry: Mapping[str, Mapping[str, Any]],
    redis_url: str,
    log_path: Path,
    *,
    settings: Mapping[str, str] | None = None,
    timeout_s: float = 60,
) -> Iterator[str]:
    """``polyllm serve-router`` over ``registry`` and ``redis_url``, other settings as env vars
    (``{"RATE_CAPACITY": "1000"}``); yields its base URL once ``/health`` is 200 (a backend is
    up)."""
    port = free_port()
    env = {
        **os.environ,
        "POLYLLM_REGISTRY": json.dumps(registry),
        "REDIS_URL": redis_url,
        **(settings or {}),
    }
    cmd = [sys.executable, "-m", "polyllm", "serve-router", "--port", str(port)]
    url = f"http://{HOST}:{port}"
    with _launched("router", cmd, log_path, env) as proc:
        _wait_http(proc, "router", f"{url}/health", log_path, timeout_s)
        yield url


@contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """Within the block, SIGTERM raises SystemExit (like Ctrl-C raises KeyboardInterrupt), so
    ``finally`` clauses still stop the processes; the previous handler comes back after."""

    def _exit(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, _exit)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
