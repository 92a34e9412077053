"""Health, the registry, the caller's last request, metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from redis.exceptions import RedisError

from polyllm.common.openai_api import ModelCard, ModelList
from polyllm.router.deps import CallerDep, ServiceDep

router = APIRouter()


async def _redis_ok(request: Request) -> bool:
    redis = request.app.state.redis
    try:
        await redis.ping()
    except (RedisError, OSError):
        return False
    return True


@router.get("/health")
async def health(request: Request, service: ServiceDep) -> JSONResponse:
    """200 when the router can serve (some backend up, Redis up or fail-open); 503 naming what
    is down otherwise."""
    backends = {s["model"]: "up" if s["available"] else "down" for s in service.registry.snapshot()}
    redis_up = await _redis_ok(request)
    problems = []
    if all(v == "down" for v in backends.values()):
        problems.append("every backend is down")
    if not redis_up and not service.settings.fail_open:
        problems.append("redis is down (fail-closed)")
    body: dict[str, Any] = {
        "status": "ok" if not problems else "unavailable",
        "redis": "up" if redis_up else "down",
        "backends": backends,
        "degraded": [m for m, v in backends.items() if v == "down"]
        + ([] if redis_up else ["redis"]),
        "problems": problems,
    }
    return JSONResponse(body, status_code=200 if not problems else 503)


@router.get("/models")
async def models(service: ServiceDep) -> dict[str, Any]:
    """The registry with live health."""
    return {"policy": service.policy.name, "models": service.registry.snapshot()}


@router.get("/v1/models", response_model=ModelList)
async def openai_models(service: ServiceDep) -> ModelList:
    """``auto`` (the router decides) and every registered model."""
    ids = ["auto", *(s["model"] for s in service.registry.snapshot())]
    return ModelList(data=[ModelCard(id=i) for i in ids])


@router.get("/last_request_stats")
async def last_request_stats(service: ServiceDep, caller: CallerDep) -> JSONResponse:
    """The caller's last answered request (by API key, else by IP)."""
    stats = service.last_stats(caller)
    if stats is None:
        body = {"error": {"message": "no request from you yet", "type": "invalid_request_error",
                          "param": None, "code": "not_found"}}  # fmt: skip
        return JSONResponse(body, status_code=404)
    return JSONResponse(stats)


@router.get("/metrics")
async def metrics(service: ServiceDep) -> Response:
    """Prometheus exposition of the router's metrics."""
    return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)
