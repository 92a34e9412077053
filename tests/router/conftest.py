"""Fixtures for router tests: a real redis-server per test and an async client to it."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from tests.redis_server import RedisServer, redis_server_binary


@pytest.fixture
def anyio_backend() -> str:
    # redis.asyncio runs on asyncio only
    return "asyncio"


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh, empty redis-server on a free port, killed after the test.

    Tests may ``kill()``, ``stop()``, ``start()`` or ``restart()`` it; it keeps its port.
    Set POLYLLM_SHOW_LOGS=1 to see its log after each test.
    """
    binary = redis_server_binary()
    if binary is None:
        pytest.fail("redis-server is not on PATH: run scripts/bootstrap.sh (make test does it)")
    server = RedisServer(tmp_path / "redis", binary=binary)
    server.start()
    try:
        yield server
    finally:
        server.kill()
        if os.environ.get("POLYLLM_SHOW_LOGS"):
            sys.stderr.write(server.log())


@pytest.fixture(name="redis")
async def redis_client(redis_server: RedisServer) -> AsyncIterator[Redis]:
    """An async client (a pool of connections) to :func:`redis_server`, closed after the test."""
    client = Redis.from_url(redis_server.url)
    try:
        yield client
    finally:
        await client.aclose()
