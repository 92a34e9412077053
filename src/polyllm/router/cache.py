"""Response cache: complete answers to deterministic requests, kept in Redis with a TTL.

Only a request that would produce the same answer again is cached (temperature 0 or an explicit
seed, see :func:`is_cacheable`), and only an answer that ended normally (:func:`is_complete`).
Keys are a hash of the request's fields, so no prompt text is ever visible in Redis keys. Redis
errors propagate as :class:`redis.exceptions.RedisError`; the router decides what a failing
cache means.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from typing import Any

import pydantic
import redis.asyncio

log = logging.getLogger(__name__)

COMPLETE_FINISH_REASONS = frozenset({"stop", "length"})


class CachedAnswer(pydantic.BaseModel):
    """What the cache stores for one request: the full text and how it was produced."""

    text: str
    stats: dict[str, Any]
    """The stream's final stats event (model, finish_reason, tokens, …)."""
    meta: dict[str, Any]
    """Routing information (model, backend, host, confidence, rationale, …)."""
    created_at: float
    """Unix time the answer was produced."""


def cache_key(
    fields: Mapping[str, Any], *, namespace: str = "polyllm:cache", version: str = "v1"
) -> str:
    """``<namespace>:<version>:<sha256>`` of the canonical JSON of ``fields``.

    Canonical: sorted keys, compact separators, UTF-8 text, so the order of the fields never
    matters and any changed value does. Values are hashed as JSON writes them: ``0`` and ``0.0``
    differ, so pass normalised values (e.g. from a validated request model). Raises TypeError
    for values JSON cannot represent and ValueError for NaN or infinities.
    """
    canonical = json.dumps(
        fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{namespace}:{version}:{digest}"


def is_cacheable(*, temp: float, seed: int | None, cache: bool) -> bool:
    """Whether a request may be answered from, and stored in, the cache.

    Only deterministic requests qualify (temperature 0, or an explicit seed), and only when the
    caller has not turned caching off.
    """
    return cache and (temp == 0 or seed is not None)


def is_complete(finish_reason: str) -> bool:
    """Whether an answer ended normally and may be cached: ``stop`` or ``length`` only.

    Anything else (an error, a cancelled or disconnected stream) would replay a broken answer.
    """
    return finish_reason in COMPLETE_FINISH_REASONS


class RedisResponseCache:
    """Cached answers as JSON strings under their :func:`cache_key`, expiring after ``ttl_s``."""

    def __init__(self, redis: redis.asyncio.Redis, *, ttl_s: int) -> None:
        if ttl_s < 1:
            raise ValueError(f"ttl_s must be >= 1, got {ttl_s}")
        self._redis = redis
        self._ttl_s = ttl_s

    async def get(self, key: str) -> CachedAnswer | None:
        """The answer stored under ``key``, or None.

        An entry that does not parse (written by an incompatible version, or damaged) is
        deleted, logged, and reported as a miss.
        """
        raw = await self._redis.get(key)
        if raw is None:
            return None
        try:
            return CachedAnswer.model_validate_json(raw)
        except pydantic.ValidationError as exc:
            log.warning(
                "corrupt cache entry deleted",
                extra={"fields": {"cache_key": key, "errors": exc.error_count()}},
            )
            await self._redis.delete(key)
            return None

    async def put(self, key: str, answer: CachedAnswer) -> None:
        """Store ``answer`` under ``key`` for ``ttl_s`` seconds, replacing any earlier one."""
        await self._redis.set(key, answer.model_dump_json(), ex=self._ttl_s)
