"""The response cache: keys, what may be cached, and the Redis store against a real server."""

from __future__ import annotations

import hashlib
import logging
import re
from typing import Any

import pytest
from redis.asyncio import Redis

from polyllm.router.cache import (
    CachedAnswer,
    RedisResponseCache,
    cache_key,
    is_cacheable,
    is_complete,
)

FIELDS: dict[str, Any] = {
    "model": "m2",
    "prompt": "Quelle est la capitale de la France ?",
    "max_tokens": 64,
    "temp": 0.0,
    "seed": None,
    "stop": ["\n\n"],
    "options": {"top_p": 1.0, "top_k": 40},
}

ANSWER = CachedAnswer(
    text="Paris.",
    stats={"model": "m2", "finish_reason": "stop", "tokens": 3, "ttft_s": 0.05},
    meta={"model": "m2", "backend": "llama.cpp", "host": "h1", "confidence": 0.92},
    created_at=1_700_000_000.5,
)


def test_key_format_and_canonical_form() -> None:
    key = cache_key({"b": 1, "a": "é"})
    canonical = '{"a":"é","b":1}'.encode()
    assert key == f"polyllm:cache:v1:{hashlib.sha256(canonical).hexdigest()}"
    assert re.fullmatch(r"polyllm:cache:v1:[0-9a-f]{64}", key)
    assert cache_key({"a": 1}, namespace="ns", version="v9").startswith("ns:v9:")


def test_key_ignores_field_order_at_every_level() -> None:
    reordered = dict(reversed(list(FIELDS.items())))
    reordered["options"] = {"top_k": 40, "top_p": 1.0}
    assert cache_key(reordered) == cache_key(FIELDS)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("model", "m3"),
        ("prompt", "Quelle est la capitale de la France ?\n"),
        ("max_tokens", 65),
        ("temp", 0.5),
        ("seed", 7),
        ("stop", []),
        ("options", {"top_p": 0.9, "top_k": 40}),
        ("extra", True),
    ],
)
def test_any_changed_field_changes_the_key(name: str, value: Any) -> None:
    assert cache_key({**FIELDS, name: value}) != cache_key(FIELDS)


def test_namespace_and_version_change_the_key() -> None:
    base = cache_key(FIELDS)
    assert cache_key(FIELDS, version="v2") != base
    assert cache_key(FIELDS, namespace="other") != base


def test_key_rejects_what_json_cannot_say() -> None:
    with pytest.raises(ValueError):
        cache_key({"temp": float("nan")})
    with pytest.raises(TypeError):
        cache_key({"when": object()})


@pytest.mark.parametrize(
    ("temp", "seed", "cache", "expected"),
    [
        (0.0, None, True, True),
        (0, None, True, True),
        (0.7, 42, True, True),
        (0.0, 0, True, True),
        (0.7, None, True, False),
        (1e-9, None, True, False),
        (0.0, None, False, False),
        (0.7, 42, False, False),
    ],
)
def test_is_cacheable(temp: float, seed: int | None, cache: bool, expected: bool) -> None:
    assert is_cacheable(temp=temp, seed=seed, cache=cache) is expected


@pytest.mark.parametrize(
    ("finish_reason", "expected"),
    [
        ("stop", True),
        ("length", True),
        ("error", False),
        ("cancelled", False),
        ("disconnected", False),
        ("", False),
        ("STOP", False),
    ],
)
def test_is_complete(finish_reason: str, expected: bool) -> None:
    assert is_complete(finish_reason) is expected


@pytest.mark.anyio
async def test_put_then_get_round_trips(redis: Redis) -> None:
    cache = RedisResponseCache(redis, ttl_s=60)
    key = cache_key(FIELDS)
    assert await cache.get(key) is None
    await cache.put(key, ANSWER)
    assert await cache.get(key) == ANSWER


@pytest.mark.anyio
async def test_put_sets_the_ttl_and_replaces(redis: Redis) -> None:
    cache = RedisResponseCache(redis, ttl_s=300)
    key = cache_key(FIELDS)
    await cache.put(key, ANSWER)
    assert 299 <= await redis.ttl(key) <= 300
    newer = ANSWER.model_copy(update={"text": "Paris, bien sûr."})
    await cache.put(key, newer)
    assert await cache.get(key) == newer
    assert 299 <= await redis.ttl(key) <= 300


@pytest.mark.anyio
@pytest.mark.parametrize(
    "stored",
    [
        b"not json",
        b'{"text": "Paris."}',
        b'{"text": 1, "stats": {}, "meta": {}, "created_at": 0}',
        b"\xff\xfe{}",
    ],
)
async def test_corrupt_entry_is_deleted_and_missed(
    redis: Redis, stored: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    cache = RedisResponseCache(redis, ttl_s=60)
    key = cache_key(FIELDS)
    await redis.set(key, stored)
    with caplog.at_level(logging.WARNING, logger="polyllm.router.cache"):
        assert await cache.get(key) is None
    assert await redis.exists(key) == 0
    assert [r.getMessage() for r in caplog.records] == ["corrupt cache entry deleted"]
    assert caplog.records[0].fields["cache_key"] == key  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_ttl_must_be_positive(redis: Redis) -> None:
    with pytest.raises(ValueError, match="ttl_s"):
        RedisResponseCache(redis, ttl_s=0)
