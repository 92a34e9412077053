"""Who is calling, may they, and how much: API keys, the token bucket, body size.

API keys are kept only as sha256 digests; a caller is identified by a digest prefix of their key
or, without keys, by their IP. Neither a key nor its digest is ever logged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from polyllm.common.errors import (
    PayloadTooLarge,
    PolyLLMError,
    RateLimited,
    Unauthorized,
    error_body,
)
from polyllm.router.ratelimit import RateDecision, TokenBucket, parse_limits
from polyllm.router.settings import RouterSettings

log = logging.getLogger(__name__)


def key_digest(key: str) -> str:
    """The stored form of an API key."""
    return hashlib.sha256(key.encode()).hexdigest()


def parse_api_keys(value: str | None) -> frozenset[str]:
    """``POLYLLM_API_KEYS``: comma-separated keys, or ``sha256:<hex>`` digests of keys."""
    digests = set()
    for item in (value or "").split(","):
        item = item.strip()
        if item.startswith("sha256:"):
            digest = item.removeprefix("sha256:").lower()
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError("POLYLLM_API_KEYS: a sha256: entry needs 64 hex digits")
            digests.add(digest)
        elif item:
            digests.add(key_digest(item))
    return frozenset(digests)


def presented_key(request: Request) -> str | None:
    """The key from ``X-API-Key`` or ``Authorization: Bearer``."""
    if key := request.headers.get("x-api-key"):
        return key.strip()
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


@dataclass(frozen=True)
class AccessPolicy:
    """Keys and limits from the settings, resolved once."""

    key_digests: frozenset[str]
    per_key_limits: dict[str, tuple[float, float]]  # key digest → (capacity, refill/s)
    capacity: float
    refill_per_s: float
    fail_open: bool

    @classmethod
    def from_settings(cls, settings: RouterSettings) -> AccessPolicy:
        limits = {key_digest(k): v for k, v in parse_limits(settings.rate_limits).items()}
        return cls(
            parse_api_keys(settings.api_keys),
            limits,
            settings.rate_capacity,
            settings.rate_refill_per_s,
            settings.fail_open,
        )

    def caller(self, request: Request) -> str:
        """A stable, non-secret id for the caller; raises :class:`Unauthorized` when keys are
        required and the presented one is missing or unknown."""
        key = presented_key(request)
        if self.key_digests:
            digest = key_digest(key) if key else ""
            if not any(hmac.compare_digest(digest, known) for known in self.key_digests):
                raise Unauthorized("a valid API key is required (X-API-Key or Bearer)")
            return f"key:{digest[:16]}"
        if key:
            return f"key:{key_digest(key)[:16]}"
        return f"ip:{request.client.host if request.client else 'unknown'}"

    def limits_for(self, caller: str) -> tuple[float, float]:
        """(capacity, refill/s) for a caller: its own when configured, else the global ones."""
        for digest, limits in self.per_key_limits.items():
            if caller == f"key:{digest[:16]}":
                return limits
        return self.capacity, self.refill_per_s


async def admit(
    request: Request, caller: str, policy: AccessPolicy, bucket: TokenBucket | None,
    on_redis_error: Callable[[str, Exception], None],
) -> RateDecision | None:  # fmt: skip
    """Take one token for ``caller`` or raise :class:`RateLimited`.

    Redis trouble is counted and logged; the request goes on (fail-open) or gets a 503.
    The decision is kept on the request so every response carries ``X-RateLimit-*``.
    """
    if bucket is None:
        return None
    capacity, refill = policy.limits_for(caller)
    try:
        decision = await bucket.take(caller, capacity=capacity, refill_per_s=refill)
    except RedisError as exc:
        on_redis_error("rate_limit", exc)
        if policy.fail_open:
            return None
        raise RateLimiterDown("rate limiter unavailable (Redis); try again shortly") from exc
    request.state.ratelimit = decision
    if not decision.allowed:
        retry = _seconds(decision.retry_after_s)
        raise RateLimited(
            f"rate limit of {decision.limit} requests exceeded; retry in {retry} s", retry
        )
    return decision


class RateLimiterDown(PolyLLMError):
    """Redis is down and the router is configured fail-closed."""

    status_code = 503
    code = "rate_limiter_unavailable"


class AccessMiddleware:
    """Refuses bodies over ``max_body_bytes`` (413) before they are read, and adds
    ``X-RateLimit-Limit/Remaining/Reset`` to every response that had a rate-limit decision."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            await _too_large(send, self.max_body_bytes)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    raise PayloadTooLarge(f"request body over {self.max_body_bytes} bytes")
            return message

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                decision = scope.get("state", {}).get("ratelimit")
                if decision is not None:
                    headers = list(message.get("headers", []))
                    headers += [
                        (b"x-ratelimit-limit", str(decision.limit).encode()),
                        (b"x-ratelimit-remaining", str(decision.remaining).encode()),
                        (b"x-ratelimit-reset", str(_seconds(decision.reset_s)).encode()),
                    ]
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, limited_receive, send_with_headers)


NEVER_S = 365 * 86400  # a bucket without refill never resets: say "in a year" in headers


def _seconds(value: float) -> int:
    """Whole seconds for a header, at least 1; infinity is capped at :data:`NEVER_S`."""
    return max(1, math.ceil(min(value, NEVER_S)))


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps(
        error_body(
            f"request body over {limit} bytes",
            type_="invalid_request_error",
            code="payload_too_large",
            param="body",
        )
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
