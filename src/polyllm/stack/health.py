"""Is a service healthy? HTTP probes, a Redis PING, and the warm-up prompt through a model."""

from __future__ import annotations

import socket
from dataclasses import dataclass

import httpx

from polyllm.stack.services import ServiceSpec, StackError

WARM_UP_PROMPT = "Say hello."


def probe_host(host: str) -> str:
    """Where to reach a service that listens on ``host`` (a wildcard means loopback)."""
    return {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)


def _http_base(host: str, port: int) -> str:
    target = probe_host(host)
    return f"http://[{target}]:{port}" if ":" in target else f"http://{target}:{port}"


def redis_ping(host: str, port: int, timeout_s: float = 1.0) -> bool:
    """Whether a Redis on ``host:port`` answers PING with PONG (not LOADING or an error)."""
    try:
        with socket.create_connection((probe_host(host), port), timeout=timeout_s) as conn:
            conn.sendall(b"*1\r\n$4\r\nPING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def healthy(spec: ServiceSpec, client: httpx.Client) -> bool:
    """One health probe of ``spec`` (HTTP 200 on its probe path, or Redis PONG)."""
    if spec.probe_path is None:
        return redis_ping(spec.host, spec.port)
    try:
        reply = client.get(f"{_http_base(spec.host, spec.port)}{spec.probe_path}")
    except httpx.HTTPError:
        return False
    return reply.status_code == 200


@dataclass(frozen=True)
class WarmUp:
    """One warm-up answer: how many tokens and how long it took."""

    model: str
    completion_tokens: int
    latency_s: float


def warm_up(spec: ServiceSpec, client: httpx.Client, timeout_s: float = 120.0) -> WarmUp:
    """Generate 8 greedy tokens on a model service; raise :class:`StackError` when it cannot."""
    body = {"prompt": WARM_UP_PROMPT, "max_tokens": 8, "temp": 0, "stream": False}
    url = f"{_http_base(spec.host, spec.port)}/generate"
    try:
        reply = client.post(url, json=body, timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise StackError(f"warm-up of {spec.name} failed: {exc!r}") from exc
    if reply.status_code != 200:
        raise StackError(
            f"warm-up of {spec.name} failed: HTTP {reply.status_code} {reply.text[:300]}"
        )
    data = reply.json()
    return WarmUp(spec.name, int(data["completion_tokens"]), float(data["latency_s"]))
