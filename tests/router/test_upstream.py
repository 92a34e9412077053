"""The router's reading of a backend stream, without a network: cancellation and timeouts."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from polyllm.common.schemas import TokenEvent
from polyllm.router.backends import DEFAULT_REGISTRY
from polyllm.router.upstream import UpstreamError, UpstreamStream, parse_native

TOKEN = ("token", TokenEvent(text="a", index=0).model_dump_json())


async def ready_frames() -> AsyncIterator[tuple[str | None, str]]:
    """A backend that always has the next frame ready (a fast model)."""
    while True:
        yield TOKEN


async def silent_frames() -> AsyncIterator[tuple[str | None, str]]:
    """A backend that sends nothing."""
    await asyncio.sleep(3600)
    yield TOKEN


def stream_of(frames: AsyncIterator[tuple[str | None, str]], total_s: float) -> UpstreamStream:
    stack = contextlib.AsyncExitStack()
    deadline = time.monotonic() + total_s
    return UpstreamStream(DEFAULT_REGISTRY["m1"], frames, stack, deadline, parse_native)


@pytest.mark.parametrize("steps", range(8))
def test_a_cancel_while_reading_is_never_swallowed(steps: int) -> None:
    """A caller who leaves cancels the reader; a frame arriving at that moment must not turn the
    cancel into a normal return (the router would read the backend to its end)."""

    async def scenario() -> None:
        stream = stream_of(ready_frames(), total_s=60)
        reader = asyncio.ensure_future(stream.next_event())
        for _ in range(steps):  # every point between the read starting and its result landing
            await asyncio.sleep(0)
        if not reader.cancel():
            assert isinstance(reader.result(), TokenEvent)  # it had finished: nothing to cancel
            return
        with pytest.raises(asyncio.CancelledError):
            await reader

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("total_s", "first_token_s", "reason"),
    [(5.0, 0.05, "first_token_timeout"), (0.05, None, "total_timeout")],
)
def test_a_silent_backend_times_out_naming_the_limit(
    total_s: float, first_token_s: float | None, reason: str
) -> None:
    async def scenario() -> None:
        stream = stream_of(silent_frames(), total_s)
        with pytest.raises(UpstreamError) as caught:
            await stream.next_event(first_token_s)
        assert caught.value.reason == reason

    asyncio.run(scenario())
