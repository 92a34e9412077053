"""The response cache key knows whether the backend batches (its greedy text depends on load)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import httpx

from polyllm.common.schemas import RouterGenerateRequest
from polyllm.router.backends import DEFAULT_REGISTRY
from polyllm.router.metrics import RouterMetrics
from polyllm.router.registry import Registry
from polyllm.router.service import RouterService
from polyllm.router.settings import RouterSettings


def checked_registry(health: dict[str, Any]) -> Registry:
    """A registry of m1 whose one health check answered ``health``."""

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"status": "ok", "model": "m1", **health})

    async def check() -> Registry:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
            registry = Registry({"m1": DEFAULT_REGISTRY["m1"]}, client)
            await registry.check_now()
            return registry

    return asyncio.run(check())


def key(registry: Registry) -> str | None:
    service = RouterService(
        RouterSettings(), registry, SimpleNamespace(version="p1"),  # type: ignore[arg-type]
        SimpleNamespace(), None, RouterMetrics(), None,  # type: ignore[arg-type]
    )  # fmt: skip
    return service._key(RouterGenerateRequest(prompt="hi", temp=0), "m1")


def test_the_registry_records_what_health_says_about_batching() -> None:
    assert checked_registry({"n_parallel": 4}).state("m1").n_parallel == 4
    assert checked_registry({}).state("m1").n_parallel == 1  # a service from before batching


def test_a_nonsense_n_parallel_makes_the_backend_unhealthy() -> None:
    state = checked_registry({"n_parallel": 0}).state("m1")
    assert not state.up
    assert state.last_error is not None and "n_parallel" in state.last_error


def test_batching_and_one_at_a_time_backends_never_share_cache_entries() -> None:
    serial, batching = key(checked_registry({})), key(checked_registry({"n_parallel": 4}))
    assert serial is not None and batching is not None
    assert serial != batching
    assert key(checked_registry({"n_parallel": 1})) == serial
