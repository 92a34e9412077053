"""Stop work for a non-streaming caller who has left.

Starlette cancels a *streaming* response when its client disconnects; a handler that builds one
JSON answer gets no such signal, so it polls for the disconnect while the work runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

from starlette.requests import Request

T = TypeVar("T")

POLL_S = 0.25


class ClientGone(Exception):
    """The client disconnected before the answer was ready; the work was cancelled."""


async def unless_disconnected(request: Request, work: Awaitable[T], poll_s: float = POLL_S) -> T:
    """Await ``work``; if the client disconnects first, cancel it and raise :class:`ClientGone`."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=poll_s)
            if done:
                return task.result()
            if await request.is_disconnected():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                raise ClientGone
    finally:
        if not task.done():
            task.cancel()
