"""The router app: ``create_app(settings)``; the lifespan opens Redis, the HTTP client, the
registry's health polling and the policy, and closes them."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Mapping

import httpx
import redis.asyncio as aioredis
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from polyllm import __version__
from polyllm.common.errors import install_error_handlers
from polyllm.common.middleware import RequestIdMiddleware
from polyllm.router.access import AccessMiddleware, AccessPolicy
from polyllm.router.api import generate, openai, route, status, ui
from polyllm.router.backends import BackendSpec, load_registry
from polyllm.router.cache import RedisResponseCache
from polyllm.router.metrics import RouterMetrics
from polyllm.router.policy import RoutingPolicy, make_policy
from polyllm.router.ratelimit import TokenBucket
from polyllm.router.registry import Registry
from polyllm.router.service import RouterService
from polyllm.router.settings import RouterSettings

log = logging.getLogger(__name__)

POOL_LIMITS = httpx.Limits(max_connections=256, max_keepalive_connections=64)


@contextlib.asynccontextmanager
async def running_service(
    settings: RouterSettings, specs: Mapping[str, BackendSpec], policy: RoutingPolicy
) -> AsyncIterator[RouterService]:
    """The router's parts, connected and started; closed again on exit."""
    metrics = RouterMetrics()
    # A bounded pool: a burst waits for a connection instead of opening hundreds of them.
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
        socket_timeout=settings.redis_timeout_s,
    )
    redis = aioredis.Redis(connection_pool=pool)
    client = httpx.AsyncClient(limits=POOL_LIMITS, timeout=settings.total_timeout_s)
    registry = Registry(
        specs,
        client,
        interval_s=settings.health_interval_s,
        eject_after_failures=settings.eject_after_failures,
        cooldown_s=settings.eject_cooldown_s,
        on_change=lambda model, up: metrics.backend_up.labels(model).set(1 if up else 0),
    )
    cache = (
        RedisResponseCache(redis, ttl_s=settings.cache_ttl_s) if settings.cache_enabled else None
    )
    service = RouterService(settings, registry, policy, cache, client, metrics, redis)
    await registry.start()
    log.info("router ready", extra={"fields": {"models": list(specs), "policy": policy.name}})
    try:
        yield service
    finally:
        await registry.close()
        await client.aclose()
        await redis.aclose()
        await pool.aclose()


def create_app(settings: RouterSettings) -> FastAPI:
    """Build the router for ``settings``; nothing connects until the app starts."""
    specs = load_registry(settings.registry)  # bad registry → fail before listening
    access = AccessPolicy.from_settings(settings)
    policy = make_policy(settings)  # a missing or stale trained model → fail before listening

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running_service(settings, specs, policy) as service:
            app.state.service, app.state.access = service, access
            app.state.redis, app.state.bucket = service.redis, TokenBucket(service.redis)
            yield

    app = FastAPI(title="PolyLLM router", version=__version__, lifespan=lifespan)
    app.add_middleware(AccessMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origin_list,
        allow_credentials=True,
        allow_methods=["GET", "POST"],
        allow_headers=["Content-Type", "Authorization", "X-API-Key", "X-Request-ID"],
        expose_headers=["X-Request-ID", "X-RateLimit-Limit", "X-RateLimit-Remaining",
                        "X-RateLimit-Reset", "Retry-After"],
    )  # fmt: skip
    app.add_middleware(RequestIdMiddleware)
    install_error_handlers(
        app, lambda request: request.app.state.service.metrics.requests.labels("invalid").inc()
    )
    app.include_router(generate.router)
    app.include_router(route.router)
    app.include_router(openai.router)
    app.include_router(status.router)
    app.include_router(ui.router)  # the web UI at /, its plots and live figures
    return app
