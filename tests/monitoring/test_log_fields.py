"""Issue 6: the router's "request" line and the model's "generation" line for one request carry
its id, prompt hash, model, latency, TTFT and tokens (real m1, real router, real Redis)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from polyllm.common.logging import prompt_hash
from tests.integration.conftest import running_m1
from tests.redis_server import RedisServer
from tests.router.processes import registry_entry, router

pytestmark = pytest.mark.integration

COMMON = {"request_id", "prompt_hash", "model_id", "latency_s", "ttft_s", "completion_tokens"}
ROUTER_ONLY = {"cache_hit", "confidence", "fallbacks", "status"}
PROMPT = "Say hello to the log checker."
REQUEST_ID = "log-fields-check-1"


def lines(log: str, msg: str, request_id: str) -> list[dict[str, Any]]:
    """The JSON lines with this ``msg`` and request id (other output, e.g. llama.cpp's, skipped)."""
    found = []
    for line in log.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        is_dict = isinstance(entry, dict)
        if is_dict and entry.get("msg") == msg and entry.get("request_id") == request_id:
            found.append(entry)
    return found


def test_request_and_generation_lines_carry_the_request_fields(tmp_path: Path) -> None:
    with (
        RedisServer(tmp_path / "redis") as redis,
        running_m1(tmp_path, "--n-ctx", "512", "--n-threads", "2") as m1,
        router(tmp_path, {"m1": registry_entry(m1.url, 1)}, redis.url) as proc,
    ):
        body = {"prompt": PROMPT, "max_tokens": 4, "temp": 0, "stream": False, "cache": False}
        reply = httpx.post(
            f"{proc.url}/generate", json=body, headers={"X-Request-ID": REQUEST_ID}, timeout=60
        )
        assert reply.status_code == 200, reply.text
        assert reply.headers["x-request-id"] == REQUEST_ID
    # Both processes are stopped: their logs are complete.
    [request] = lines(proc.log(), "request", REQUEST_ID)
    [generation] = lines(m1.log(), "generation", REQUEST_ID)

    assert request.keys() >= COMMON | ROUTER_ONLY, sorted(COMMON | ROUTER_ONLY - request.keys())
    assert generation.keys() >= COMMON, sorted(COMMON - generation.keys())
    for entry in (request, generation):
        assert entry["prompt_hash"] == prompt_hash(PROMPT)
        assert entry["model_id"] == "m1"
        assert entry["completion_tokens"] > 0
        assert 0 < entry["ttft_s"] <= entry["latency_s"]
    assert request["status"] == "ok"
    assert request["cache_hit"] is False and request["fallbacks"] == []
    assert 0 <= request["confidence"] <= 1
    # The router's view includes the model's, plus the hop to it.
    assert request["latency_s"] >= generation["latency_s"]
