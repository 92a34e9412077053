"""The router as a real process, with real Redis, the real m1 model, and fault-injecting fakes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from polyllm.common.schemas import RouteEvent, RouterStats
from polyllm.common.sse import iter_frames
from tests.integration.conftest import Service, running_m1
from tests.redis_server import RedisServer
from tests.router.processes import Proc, fake_backend, registry_entry, router
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def m1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with running_m1(tmp_path_factory.mktemp("m1"), "--n-ctx", "1024") as service:
        yield service


@pytest.fixture
def real_router(tmp_path: Path, m1: Service, redis_server: RedisServer) -> Iterator[Proc]:
    """m1 real; m4 a well-behaved fake (the fallback target)."""
    with (
        fake_backend(tmp_path, "m4") as m4,
        router(
            tmp_path,
            {"m1": registry_entry(m1.url, 1), "m4": registry_entry(m4.url, 4)},
            redis_server.url,
        ) as proc,
    ):
        yield proc


def stream(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
    """POST a streaming request; the parsed events by kind, in order."""

    async def run() -> dict[str, Any]:
        out: dict[str, Any] = {"events": [], "tokens": [], "status": None, "headers": {}}
        async with (
            httpx.AsyncClient(timeout=120) as client,
            client.stream("POST", f"{url}/generate", json=body, headers=headers) as resp,
        ):
            out["status"], out["headers"] = resp.status_code, dict(resp.headers)
            if resp.status_code != 200:
                out["body"] = json.loads(await resp.aread())
                return out
            async for event, data in iter_frames(resp.aiter_lines()):
                out["events"].append(event)
                if event == "route":
                    out["route"] = RouteEvent.model_validate_json(data)
                elif event == "token":
                    out["tokens"].append(json.loads(data)["text"])
                elif event == "done":
                    out["done"] = RouterStats.model_validate_json(data)
                elif event == "error":
                    out["error"] = json.loads(data)
        return out

    return asyncio.run(run())


def test_stream_names_the_route_first_then_tokens_then_stats(real_router: Proc) -> None:
    result = stream(
        real_router.url, {"prompt": "Say hi.", "max_tokens": 12, "temp": 0, "model": "m1"}
    )
    assert result["events"][0] == "route"
    assert result["events"][-1] == "done"
    assert set(result["events"][1:-1]) == {"token"}
    route, done = result["route"], result["done"]
    assert (route.model, route.backend, route.host) == ("m1", "cpu", "cpu-node-1")
    assert route.forced and route.confidence == 1.0
    assert done.request_id == result["headers"]["x-request-id"]
    assert not done.cache_hit and done.fallbacks == []
    assert 1 <= done.completion_tokens <= 12
    assert 0 < done.ttft_s <= done.latency_s


def test_policy_choice_carries_confidence_probabilities_and_rationale(real_router: Proc) -> None:
    result = stream(
        real_router.url, {"prompt": "What is the capital of Peru?", "max_tokens": 8, "temp": 0}
    )
    route = result["route"]
    assert route.policy == "heuristic"
    assert set(route.probabilities) == {"m1", "m4"}
    assert abs(sum(route.probabilities.values()) - 1) < 1e-3
    assert route.rationale
    assert route.model in ("m1", "m4")


def test_deterministic_answer_is_cached_and_replayed_identically(real_router: Proc) -> None:
    body = {"prompt": "Name a fruit.", "max_tokens": 16, "temp": 0, "model": "m1"}
    first = stream(real_router.url, body)
    second = stream(real_router.url, body)
    assert not first["done"].cache_hit and second["done"].cache_hit
    assert second["route"].cache_hit
    assert "".join(second["tokens"]) == "".join(first["tokens"])
    assert second["events"] == ["route", "token", "done"]
    assert real_router.metric("polyllm_router_cache_hits_total") == 1
    assert real_router.metric("polyllm_router_cache_misses_total") == 1


def test_sampling_without_seed_is_never_cached(real_router: Proc) -> None:
    body = {"prompt": "Name a fruit.", "max_tokens": 8, "temp": 0.8, "model": "m1"}
    assert not stream(real_router.url, body)["done"].cache_hit
    assert not stream(real_router.url, body)["done"].cache_hit
    assert real_router.metric("polyllm_router_cache_misses_total") == 0


def test_cache_false_bypasses(real_router: Proc) -> None:
    body = {"prompt": "Name a colour.", "max_tokens": 8, "temp": 0, "model": "m1", "cache": False}
    stream(real_router.url, body)
    assert not stream(real_router.url, body)["done"].cache_hit


def test_openai_client_through_the_router(real_router: Proc) -> None:
    client = openai.OpenAI(base_url=f"{real_router.url}/v1", api_key="unused", max_retries=0)
    assert [m.id for m in client.models.list()] == ["auto", "m1", "m4"]
    reply = client.chat.completions.create(
        model="m1", messages=[{"role": "user", "content": "Say hi."}], max_tokens=8, temperature=0
    )
    assert reply.model == "m1"
    assert reply.choices[0].message.content
    pieces = [
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(
            model="m1",
            messages=[{"role": "user", "content": "Say hi."}],
            max_tokens=8,
            temperature=0,
            stream=True,
        )
        if c.choices
    ]
    assert "".join(pieces) == reply.choices[0].message.content


def test_last_request_stats_describe_the_callers_last_answer(real_router: Proc) -> None:
    body = {"prompt": "Say hi.", "max_tokens": 6, "temp": 0, "model": "m1", "cache": False}
    result = stream(real_router.url, body)
    stats = httpx.get(f"{real_router.url}/last_request_stats").json()
    assert stats["request_id"] == result["done"].request_id
    assert stats["model_id"] == "m1" and stats["backend"] == "cpu"
    assert stats["cache_hit"] is False
    assert stats["latency_s"] > 0 and stats["ttft_s"] > 0


def test_request_id_reaches_the_backend(real_router: Proc, m1: Service) -> None:
    body = {"prompt": "Say hi.", "max_tokens": 4, "model": "m1", "cache": False}
    stream(real_router.url, body, headers={"X-Request-ID": "route-me-7"})
    time.sleep(0.2)
    assert '"request_id": "route-me-7"' in m1.log()


def cancelled(service: Service) -> float:
    return service.metric("polyllm_model_requests_total", model="m1", status="cancelled")


def test_client_disconnect_stops_the_backend(real_router: Proc, m1: Service) -> None:
    before = cancelled(m1)

    async def leave_early() -> None:
        body = {"prompt": "Write a long story.", "max_tokens": 900, "model": "m1", "cache": False}
        async with (
            httpx.AsyncClient(timeout=60) as client,
            client.stream("POST", f"{real_router.url}/generate", json=body) as resp,
        ):
            seen = 0
            async for line in resp.aiter_lines():
                seen += line.startswith("event: token")
                if seen == 3:
                    return

    asyncio.run(leave_early())
    wait_until(lambda: cancelled(m1) > before, "the backend kept generating")


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"max_tokens": 5}, 422, "prompt"),
        ({"prompt": "hi", "temp": 3}, 422, "temp"),
        ({"prompt": "hi", "prefer_backend": "tpu"}, 422, "prefer_backend"),
        ({"prompt": "hi", "max_tokens": 5000}, 400, "max_tokens"),
        ({"prompt": "hi", "model": "m9"}, 404, "model"),
        ({"prompt": "hi", "model": "m1", "max_tokens": 1020}, 400, "max_tokens"),  # m1's n_ctx
    ],
)
def test_bad_input_is_a_4xx_naming_the_field(
    real_router: Proc, body: dict[str, Any], status: int, param: str
) -> None:
    resp = httpx.post(f"{real_router.url}/generate", json=body, timeout=30)
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["param"] == param


def test_oversized_body_is_413(real_router: Proc) -> None:
    resp = httpx.post(f"{real_router.url}/generate", json={"prompt": "x" * 300_000}, timeout=30)
    assert resp.status_code == 413
    assert "bytes" in resp.json()["error"]["message"]


def test_health_and_models_show_live_backends(real_router: Proc) -> None:
    health = httpx.get(f"{real_router.url}/health").json()
    assert health["status"] == "ok" and health["redis"] == "up"
    assert health["backends"] == {"m1": "up", "m4": "up"}
    models = httpx.get(f"{real_router.url}/models").json()["models"]
    assert [m["model"] for m in models] == ["m1", "m4"]


def test_non_streaming_client_disconnect_stops_the_backend(real_router: Proc, m1: Service) -> None:
    before = cancelled(m1)
    body = {
        "prompt": "Write a long story.",
        "max_tokens": 900,
        "model": "m1",
        "stream": False,
        "ignore_eos": True,
    }  # cannot end on its own before the disconnect is seen
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{real_router.url}/generate", json={**body, "cache": False}, timeout=1.0)
    wait_until(lambda: cancelled(m1) > before, "the backend kept generating")
    assert real_router.metric("polyllm_router_requests_total", status="cancelled") >= 1
