"""The Redis token bucket against a real redis-server."""

from __future__ import annotations

import asyncio
import math

import pytest
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from polyllm.router.ratelimit import RateDecision, TokenBucket, parse_limits
from tests.redis_server import RedisServer

pytestmark = pytest.mark.anyio


async def server_time(redis: Redis) -> float:
    seconds, micros = await redis.time()
    return seconds + micros / 1e6


async def test_concurrent_takes_admit_exactly_capacity(redis_server: RedisServer) -> None:
    pool = BlockingConnectionPool.from_url(redis_server.url, max_connections=16)
    client = Redis(connection_pool=pool)
    try:
        bucket = TokenBucket(client)
        decisions = await asyncio.gather(
            *(bucket.take("k1", capacity=20, refill_per_s=0) for _ in range(250))
        )
        clients = len(await client.client_list())
    finally:
        await client.aclose()
        await pool.aclose()
    allowed = [d for d in decisions if d.allowed]
    denied = [d for d in decisions if not d.allowed]
    assert clients > 1, "the takes should have run on several connections"
    assert len(allowed) == 20
    # atomic: each admitted request saw a distinct count, 19 down to 0
    assert sorted(d.remaining for d in allowed) == list(range(20))
    assert all(d.retry_after_s == 0 for d in allowed)
    assert {(d.remaining, d.retry_after_s, d.reset_s, d.limit) for d in denied} == {
        (0, math.inf, math.inf, 20)
    }


async def test_first_take_reports_limit_remaining_reset(redis: Redis) -> None:
    decision = await TokenBucket(redis).take("k", capacity=5, refill_per_s=0.5)
    assert decision == RateDecision(
        allowed=True, limit=5, remaining=4, reset_s=2.0, retry_after_s=0.0
    )


async def test_denied_take_takes_nothing_and_says_when_to_retry(redis: Redis) -> None:
    bucket = TokenBucket(redis)
    rate = 0.01  # slow enough that refill during the test stays far below one token
    first = await bucket.take("k", capacity=5, refill_per_s=rate, cost=3)
    assert (first.allowed, first.remaining) == (True, 2)
    second = await bucket.take("k", capacity=5, refill_per_s=rate, cost=3)
    assert (second.allowed, second.remaining) == (False, 2)
    assert second.retry_after_s == pytest.approx(1 / rate, abs=0.1)  # one token short
    assert second.reset_s == pytest.approx(3 / rate, abs=0.1)
    third = await bucket.take("k", capacity=5, refill_per_s=rate, cost=2)
    assert (third.allowed, third.remaining) == (True, 0)


async def test_cost_above_capacity_is_never_allowed(redis: Redis) -> None:
    decision = await TokenBucket(redis).take("k", capacity=5, refill_per_s=1, cost=6)
    assert not decision.allowed
    assert decision.remaining == 5
    assert decision.retry_after_s == math.inf
    assert decision.reset_s == 0


async def test_fractional_costs_add_up_exactly(redis: Redis) -> None:
    bucket = TokenBucket(redis)
    decisions = [await bucket.take("k", capacity=1, refill_per_s=0, cost=0.1) for _ in range(11)]
    assert [d.allowed for d in decisions] == [True] * 10 + [False]


async def test_tokens_return_in_proportion_to_server_time(redis: Redis) -> None:
    bucket = TokenBucket(redis)
    capacity, rate = 10, 20.0
    for _ in range(9):
        await bucket.take("k", capacity=capacity, refill_per_s=rate)
    before_last = await server_time(redis)
    last = await bucket.take("k", capacity=capacity, refill_per_s=rate)
    after_last = await server_time(redis)
    assert last.allowed
    assert last.remaining == 0
    assert last.reset_s == pytest.approx(capacity / rate, abs=0.02)
    await asyncio.sleep(0.25)
    before = await server_time(redis)
    decision = await bucket.take("k", capacity=capacity, refill_per_s=rate)
    after = await server_time(redis)
    # the refill window lies between these server-time brackets
    low = min(capacity, (before - after_last) * rate)
    high = min(capacity, (after - before_last) * rate)
    assert low >= 4.5, (low, high)  # 0.25 s at 20/s: 5 tokens
    assert decision.allowed
    assert math.floor(low - 1) <= decision.remaining <= math.floor(high - 1)


async def test_refill_stops_at_capacity(redis: Redis) -> None:
    bucket = TokenBucket(redis)
    await bucket.take("k", capacity=3, refill_per_s=1000)
    await asyncio.sleep(0.05)  # worth 50 tokens
    decision = await bucket.take("k", capacity=3, refill_per_s=1000)
    assert decision.remaining == 2


async def test_callers_have_separate_buckets(redis: Redis) -> None:
    bucket = TokenBucket(redis)
    for _ in range(2):
        assert (await bucket.take("alice", capacity=2, refill_per_s=0)).allowed
    assert not (await bucket.take("alice", capacity=2, refill_per_s=0)).allowed
    bob = await bucket.take("bob", capacity=2, refill_per_s=0)
    assert (bob.allowed, bob.remaining) == (True, 1)


async def test_key_is_cluster_hash_tagged(redis: Redis) -> None:
    bucket = TokenBucket(redis)
    await bucket.take("10.0.0.7", capacity=2, refill_per_s=1)
    assert bucket.key("10.0.0.7") == "polyllm:rl:v1:{10.0.0.7}"
    assert await redis.keys("*") == [b"polyllm:rl:v1:{10.0.0.7}"]
    other = TokenBucket(redis, prefix="t:rl")
    assert other.key("a") == "t:rl:{a}"


async def test_idle_buckets_expire_once_full_again(redis: Redis) -> None:
    bucket = TokenBucket(redis)
    await bucket.take("slow", capacity=100, refill_per_s=1, cost=10)  # 10 s to refill
    assert 9_000 < await redis.pttl(bucket.key("slow")) <= 10_000
    await bucket.take("fast", capacity=10, refill_per_s=1000)  # 1 ms to refill: 1 s minimum
    assert 900 < await redis.pttl(bucket.key("fast")) <= 1000
    await bucket.take("fixed", capacity=10, refill_per_s=0)  # never refills: never expires
    assert await redis.pttl(bucket.key("fixed")) == -1


async def test_lost_script_is_reloaded(redis: Redis) -> None:
    bucket = TokenBucket(redis)
    await bucket.load()
    await bucket.take("k", capacity=5, refill_per_s=0)
    await redis.script_flush()
    decision = await bucket.take("k", capacity=5, refill_per_s=0)
    assert (decision.allowed, decision.remaining) == (True, 3)
    assert await redis.script_exists(bucket._sha) == [True]


async def test_redis_down_raises_and_recovers_after_restart(redis_server: RedisServer) -> None:
    client = Redis.from_url(redis_server.url, socket_connect_timeout=1)
    try:
        bucket = TokenBucket(client)
        assert (await bucket.take("k", capacity=5, refill_per_s=0)).remaining == 4
        redis_server.kill()
        with pytest.raises(RedisConnectionError) as info:
            await bucket.take("k", capacity=5, refill_per_s=0)
        assert isinstance(info.value, RedisError)
        redis_server.start()
        # a new, empty server: no script (NOSCRIPT path), and the bucket starts full again
        decision = await bucket.take("k", capacity=5, refill_per_s=0)
        assert (decision.allowed, decision.remaining) == (True, 4)
        assert await client.script_exists(bucket._sha) == [True]
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    ("capacity", "refill_per_s", "cost", "message"),
    [
        (0, 1, 1, "capacity"),
        (math.inf, 1, 1, "capacity"),
        (5, -1, 1, "refill_per_s"),
        (5, math.nan, 1, "refill_per_s"),
        (5, 1, 0, "cost"),
        (5, 1, -2, "cost"),
    ],
)
async def test_invalid_limits_are_rejected(
    redis: Redis, capacity: float, refill_per_s: float, cost: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        await TokenBucket(redis).take("k", capacity=capacity, refill_per_s=refill_per_s, cost=cost)
    assert await redis.dbsize() == 0


@pytest.mark.parametrize("prefix", ["", "rl:{x}", "rl}"])
async def test_prefix_must_not_break_the_hash_tag(redis: Redis, prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        TokenBucket(redis, prefix=prefix)


@pytest.mark.parametrize("value", [None, "", "  \n", "{}"])
def test_parse_limits_empty(value: str | None) -> None:
    assert parse_limits(value) == {}


def test_parse_limits_valid() -> None:
    value = (
        '{"k1": {"capacity": 10, "refill_per_s": 0.5}, "k2": {"capacity": 2.5, "refill_per_s": 0}}'
    )
    assert parse_limits(value) == {"k1": (10.0, 0.5), "k2": (2.5, 0.0)}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("{", "not valid JSON"),
        ("[1]", "must be a JSON object"),
        ('{"": {"capacity": 1, "refill_per_s": 1}}', r"#1: the key is empty"),
        ('{"secret-key": 5}', r"#1: expected an object, got int"),
        ('{"secret-key": {"refill_per_s": 1}}', r"#1: missing 'capacity'"),
        ('{"secret-key": {"capacity": 1}}', r"#1: missing 'refill_per_s'"),
        ('{"secret-key": {"capacity": "10", "refill_per_s": 1}}', "'capacity' must be a number"),
        ('{"secret-key": {"capacity": true, "refill_per_s": 1}}', "'capacity' must be a number"),
        ('{"secret-key": {"capacity": 0, "refill_per_s": 1}}', "capacity must be a finite"),
        ('{"secret-key": {"capacity": 1, "refill_per_s": -1}}', "refill_per_s must be a finite"),
        ('{"secret-key": {"capacity": 1, "refill_per_s": 1, "burst": 2}}', r"unknown.*burst"),
        (
            '{"a": {"capacity": 1, "refill_per_s": 1}, "secret-key": {"capacity": -1, '
            '"refill_per_s": 1}}',
            r"entry #2: capacity",
        ),
    ],
)
def test_parse_limits_errors(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        parse_limits(value)
    assert "secret-key" not in str(info.value)  # keys may be API keys: never echoed
