"""Per-caller rate limiting: a token bucket kept in Redis, taken from by one atomic Lua script.

Every router replica shares the buckets, and the script reads Redis's clock, never the caller's,
so replicas with skewed clocks agree. Redis errors propagate as
:class:`redis.exceptions.RedisError`; whether to fail open or closed is the router's decision.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from importlib import resources
from typing import Any

import redis.asyncio
from redis.exceptions import NoScriptError

SCRIPT_NAME = "token_bucket.lua"


@dataclass(frozen=True)
class RateDecision:
    """The outcome of one :meth:`TokenBucket.take`, with what the rate-limit headers need."""

    allowed: bool
    limit: int
    """The bucket's capacity (rounded down to whole tokens)."""
    remaining: int
    """Whole tokens left after this request."""
    reset_s: float
    """Seconds until the bucket is full again; ``inf`` when it never refills."""
    retry_after_s: float
    """0 when allowed; otherwise seconds until ``cost`` tokens are available (``inf`` if never)."""


class TokenBucket:
    """Token buckets in Redis, one per caller, at ``<prefix>:{<caller>}``.

    The braces make the caller a Redis Cluster hash tag. A bucket starts full, refills
    continuously at ``refill_per_s`` up to ``capacity``, and expires once it would be full again
    (an absent bucket reads as full), so idle callers cost no memory. With ``refill_per_s == 0``
    a bucket never refills and never expires.

    The script is loaded with SCRIPT LOAD (by :meth:`load`, or on first use) and run with
    EVALSHA; when Redis has lost it (a restart, SCRIPT FLUSH) it is loaded again and the call
    retried once.
    """

    def __init__(self, redis: redis.asyncio.Redis, *, prefix: str = "polyllm:rl:v1") -> None:
        if not prefix or "{" in prefix or "}" in prefix:
            raise ValueError(f"prefix must be non-empty and free of braces, got {prefix!r}")
        self._redis = redis
        self._prefix = prefix
        self._script = resources.files("polyllm.router").joinpath(SCRIPT_NAME).read_text("utf-8")
        self._sha = hashlib.sha1(self._script.encode(), usedforsecurity=False).hexdigest()

    def key(self, caller: str) -> str:
        """The Redis key of ``caller``'s bucket."""
        return f"{self._prefix}:{{{caller}}}"

    async def load(self) -> None:
        """Load the script into Redis (SCRIPT LOAD); optional, :meth:`take` loads it if missing."""
        sha = await self._redis.script_load(self._script)
        if sha != self._sha:  # the SHA1 is Redis's name for the script; a mismatch is a bug
            raise RuntimeError(f"Redis named the script {sha!r}, expected {self._sha!r}")

    async def take(
        self, caller: str, *, capacity: float, refill_per_s: float, cost: float = 1.0
    ) -> RateDecision:
        """Take ``cost`` tokens from ``caller``'s bucket if it holds that many.

        A denied request takes nothing. Raises ValueError for invalid limits and
        :class:`redis.exceptions.RedisError` when Redis fails.
        """
        _check_limits(capacity, refill_per_s)
        if not (math.isfinite(cost) and cost > 0):
            raise ValueError(f"cost must be a finite number > 0, got {cost}")
        args = (
            self.key(caller),
            repr(float(capacity)),
            repr(float(refill_per_s)),
            repr(float(cost)),
        )
        try:
            reply = await self._redis.evalsha(self._sha, 1, *args)
        except NoScriptError:
            await self.load()
            reply = await self._redis.evalsha(self._sha, 1, *args)
        return _decision(reply, capacity=capacity, refill_per_s=refill_per_s, cost=cost)


def _decision(reply: Any, *, capacity: float, refill_per_s: float, cost: float) -> RateDecision:
    """Turn the script's ``[allowed, tokens]`` into a decision with header values."""
    allowed, tokens = bool(int(reply[0])), float(reply[1])
    if tokens >= capacity:
        reset_s = 0.0
    else:
        reset_s = (capacity - tokens) / refill_per_s if refill_per_s > 0 else math.inf
    if allowed:
        retry_after_s = 0.0
    elif refill_per_s > 0 and cost <= capacity:
        retry_after_s = max(0.0, cost - tokens) / refill_per_s
    else:
        retry_after_s = math.inf  # no refill, or a cost larger than the bucket: never
    # the epsilon matches the script's: 2.9999999999 tokens after rounding count as 3
    return RateDecision(
        allowed=allowed,
        limit=math.floor(capacity),
        remaining=math.floor(tokens + 1e-9),
        reset_s=reset_s,
        retry_after_s=retry_after_s,
    )


def _check_limits(capacity: float, refill_per_s: float) -> None:
    if not (math.isfinite(capacity) and capacity > 0):
        raise ValueError(f"capacity must be a finite number > 0, got {capacity}")
    if not (math.isfinite(refill_per_s) and refill_per_s >= 0):
        raise ValueError(f"refill_per_s must be a finite number >= 0, got {refill_per_s}")


def parse_limits(value: str | None) -> dict[str, tuple[float, float]]:
    """Parse per-key limits, ``{"<key>": {"capacity": 10, "refill_per_s": 0.5}}``.

    Returns key → ``(capacity, refill_per_s)``; ``None`` or a blank string means no per-key
    limits. Raises ValueError naming the entry by position, never by key, since keys may be
    secrets.
    """
    if value is None or not value.strip():
        return {}
    try:
        data = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValueError(f"rate limits are not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(
            'rate limits must be a JSON object {"<key>": {"capacity": …, "refill_per_s": …}}, '
            f"got {type(data).__name__}"
        )
    limits: dict[str, tuple[float, float]] = {}
    for index, (key, spec) in enumerate(data.items(), start=1):
        where = f"rate limit entry #{index}"
        if not key:
            raise ValueError(f"{where}: the key is empty")
        if not isinstance(spec, dict):
            raise ValueError(f"{where}: expected an object, got {type(spec).__name__}")
        unknown = sorted(set(spec) - {"capacity", "refill_per_s"})
        if unknown:
            raise ValueError(f"{where}: unknown fields {unknown}")
        capacity = _number(spec, "capacity", where)
        refill_per_s = _number(spec, "refill_per_s", where)
        try:
            _check_limits(capacity, refill_per_s)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        limits[key] = (capacity, refill_per_s)
    return limits


def _number(spec: dict[str, Any], name: str, where: str) -> float:
    if name not in spec:
        raise ValueError(f"{where}: missing {name!r}")
    value = spec[name]
    # bool is an int subclass; `true` as a capacity is a mistake, not 1
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{where}: {name!r} must be a number, got {value!r}")
    return float(value)
