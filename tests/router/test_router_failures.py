"""Failure paths of the router: fault-injecting fake backends, real Redis (killed on purpose)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from tests.redis_server import RedisServer
from tests.router.processes import fake_backend, registry_entry, router
from tests.router.test_router_e2e import stream

pytestmark = pytest.mark.integration

EASY = {"prompt": "hi", "max_tokens": 4, "temp": 0}


def test_failing_backend_falls_back_to_a_bigger_model(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    with (
        fake_backend(tmp_path, "m1", "error_500") as m1,
        fake_backend(tmp_path, "m2") as m2,
        router(tmp_path, {"m1": registry_entry(m1.url, 1), "m2": registry_entry(m2.url, 2)},
               redis_server.url, confidence_threshold=0) as proc,
    ):  # fmt: skip
        result = stream(proc.url, {**EASY, "cache": False})
        done = result["done"]
        assert done.model == "m2"
        assert [f.model_dump() for f in done.fallbacks] == [
            {"from_model": "m1", "to_model": "m2", "reason": "http_500"}
        ]
        assert (
            proc.metric(
                "polyllm_router_fallbacks_total", from_model="m1", to_model="m2", reason="http_500"
            )
            == 1
        )


def test_slow_first_token_times_out_and_falls_back(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    with (
        fake_backend(tmp_path, "m1", "slow_first_token", delay_s=10) as m1,
        fake_backend(tmp_path, "m2") as m2,
        router(tmp_path, {"m1": registry_entry(m1.url, 1), "m2": registry_entry(m2.url, 2)},
               redis_server.url, first_token_timeout_s=0.5, confidence_threshold=0) as proc,
    ):  # fmt: skip
        started = time.monotonic()
        done = stream(proc.url, {**EASY, "cache": False})["done"]
        assert time.monotonic() - started < 5
        assert done.model == "m2"
        assert done.fallbacks[0].reason == "first_token_timeout"


def test_mid_stream_death_ends_with_an_error_event_and_is_not_cached(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    with (
        fake_backend(tmp_path, "m1", "die_mid_stream") as m1,
        router(tmp_path, {"m1": registry_entry(m1.url, 1)}, redis_server.url) as proc,
    ):
        first = stream(proc.url, EASY)
        assert first["events"][0] == "route"
        assert first["events"][-1] == "error"
        assert "done" not in first and first["tokens"]
        assert first["error"]["code"] == "mid_stream"
        second = stream(proc.url, EASY)
        assert second["events"][-1] == "error"  # not replayed from the cache as if complete
        assert proc.metric("polyllm_router_cache_hits_total") == 0


def test_no_backend_up_is_503_naming_it(tmp_path: Path, redis_server: RedisServer) -> None:
    with (
        fake_backend(tmp_path, "m1", "unhealthy") as m1,
        router(tmp_path, {"m1": registry_entry(m1.url, 1)}, redis_server.url) as proc,
    ):
        resp = httpx.post(f"{proc.url}/generate", json=EASY)
        assert resp.status_code == 503
        assert resp.json()["error"]["code"] == "no_healthy_backend"
        health = httpx.get(f"{proc.url}/health")
        assert health.status_code == 503
        assert health.json()["backends"] == {"m1": "down"}


def test_prefer_backend_restricts_and_falls_back_honestly(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    with (
        fake_backend(tmp_path, "m1") as cpu,
        fake_backend(tmp_path, "m4") as gpu,
        router(tmp_path, {"m1": registry_entry(cpu.url, 1),
                          "m4": registry_entry(gpu.url, 4, backend="gpu", host="gpu-node-1")},
               redis_server.url) as proc,
    ):  # fmt: skip
        on_gpu = stream(proc.url, {**EASY, "prefer_backend": "gpu"})["done"]
        assert (on_gpu.model, on_gpu.backend, on_gpu.host) == ("m4", "gpu", "gpu-node-1")
        assert not on_gpu.backend_fallback
        httpx.post(f"{gpu.url}/mode/unhealthy")
        deadline = time.monotonic() + 10
        while httpx.get(f"{proc.url}/health").json()["backends"]["m4"] == "up":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        fell_back = stream(proc.url, {**EASY, "prefer_backend": "gpu", "cache": False})["done"]
        assert fell_back.backend == "cpu" and fell_back.backend_fallback


def test_rate_limit_admits_exactly_capacity_under_concurrency(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    with (
        fake_backend(tmp_path, "m1", tokens=1) as m1,
        router(tmp_path, {"m1": registry_entry(m1.url, 1)}, redis_server.url,
               rate_capacity=20, rate_refill_per_s=0) as proc,
    ):  # fmt: skip

        async def burst() -> list[httpx.Response]:
            limits = httpx.Limits(max_connections=250)
            async with httpx.AsyncClient(timeout=60, limits=limits) as client:
                body = {**EASY, "stream": False, "cache": False}
                calls = [client.post(f"{proc.url}/generate", json=body) for _ in range(220)]
                return await asyncio.gather(*calls)

        responses = asyncio.run(burst())
        codes = [r.status_code for r in responses]
        assert codes.count(200) == 20
        assert codes.count(429) == 200
        refused = next(r for r in responses if r.status_code == 429)
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.headers["x-ratelimit-limit"] == "20"
        assert refused.headers["x-ratelimit-remaining"] == "0"
        assert refused.json()["error"]["code"] == "rate_limited"
        allowed = next(r for r in responses if r.status_code == 200)
        assert int(allowed.headers["x-ratelimit-remaining"]) < 20
        assert proc.metric("polyllm_router_rate_limited_total") == 200
        assert proc.metric("polyllm_router_redis_errors_total", op="rate_limit") == 0


def test_redis_down_fails_open_and_recovers(tmp_path: Path, redis_server: RedisServer) -> None:
    with (
        fake_backend(tmp_path, "m1") as m1,
        router(tmp_path, {"m1": registry_entry(m1.url, 1)}, redis_server.url) as proc,
    ):
        body = {**EASY, "prompt": "cache me"}
        assert not stream(proc.url, body)["done"].cache_hit
        assert stream(proc.url, body)["done"].cache_hit
        redis_server.kill()
        during = stream(proc.url, body)
        assert during["status"] == 200 and not during["done"].cache_hit
        assert proc.metric("polyllm_router_redis_errors_total", op="rate_limit") >= 1
        health = httpx.get(f"{proc.url}/health").json()
        assert health["status"] == "ok" and health["redis"] == "down"
        redis_server.start()
        after = {**body, "prompt": "after the restart"}
        deadline = time.monotonic() + 10
        while True:
            stream(proc.url, after)  # stores, once Redis answers again
            if stream(proc.url, after)["done"].cache_hit:
                break
            assert time.monotonic() < deadline, "caching did not resume"
            time.sleep(0.2)


def test_redis_down_fail_closed_is_503(tmp_path: Path, redis_server: RedisServer) -> None:
    with (
        fake_backend(tmp_path, "m1") as m1,
        router(
            tmp_path, {"m1": registry_entry(m1.url, 1)}, redis_server.url, fail_open=False
        ) as proc,
    ):
        redis_server.kill()
        resp = httpx.post(f"{proc.url}/generate", json=EASY)
        assert resp.status_code == 503
        assert resp.json()["error"]["code"] == "rate_limiter_unavailable"


def test_api_keys_are_required_when_configured(tmp_path: Path, redis_server: RedisServer) -> None:
    with (
        fake_backend(tmp_path, "m1") as m1,
        router(tmp_path, {"m1": registry_entry(m1.url, 1)}, redis_server.url,
               polyllm_api_keys="alpha-key,beta-key") as proc,
    ):  # fmt: skip
        assert httpx.post(f"{proc.url}/generate", json=EASY).status_code == 401
        wrong = httpx.post(f"{proc.url}/generate", json=EASY, headers={"X-API-Key": "nope"})
        assert wrong.status_code == 401
        ok = httpx.post(f"{proc.url}/generate", json={**EASY, "stream": False},
                        headers={"Authorization": "Bearer beta-key"})  # fmt: skip
        assert ok.status_code == 200
        mine = httpx.get(f"{proc.url}/last_request_stats", headers={"X-API-Key": "beta-key"})
        assert mine.json()["request_id"] == ok.headers["x-request-id"]
        other = httpx.get(f"{proc.url}/last_request_stats", headers={"X-API-Key": "alpha-key"})
        assert other.status_code == 404
        assert "alpha-key" not in proc.log() and "beta-key" not in proc.log()
