"""Streaming calls to one model service, with the failure classes the cascade acts on.

A call is *opened* (request sent, first event received, within the first-token timeout) before
the router commits to a backend; only then does the router start its own response. So a backend
that fails before its first token can be replaced, and one that fails later ends the stream
with an explicit error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
from pydantic import ValidationError

from polyllm.common.middleware import REQUEST_ID_HEADER
from polyllm.common.schemas import ErrorEvent, GenerationStats, TokenEvent
from polyllm.common.sse import iter_frames
from polyllm.router.backends import BackendSpec

Event = TokenEvent | GenerationStats
FrameParser = Callable[[str | None, str], "Event | None"]
"""Turns one SSE frame of a backend into an event (None: skip the frame)."""


class UpstreamError(Exception):
    """A backend failed. ``reason`` is a short label for metrics (``connect``, ``http_503``,
    ``first_token_timeout``, ``mid_stream`` …)."""

    def __init__(self, model: str, reason: str, detail: str) -> None:
        super().__init__(f"{model}: {reason}: {detail}")
        self.model = model
        self.reason = reason
        self.detail = detail


class CallerFault(Exception):
    """The backend refused the request as the caller's mistake (4xx): pass it on, don't retry."""

    def __init__(self, status_code: int, body: dict[str, Any]) -> None:
        super().__init__(f"backend answered {status_code}")
        self.status_code = status_code
        self.body = body


class UpstreamStream:
    """An open generation on one backend, with its first event already received."""

    def __init__(
        self,
        spec: BackendSpec,
        frames: AsyncIterator[tuple[str | None, str]],
        stack: contextlib.AsyncExitStack,
        deadline: float,
        parse: FrameParser,
    ) -> None:
        self.spec = spec
        self._frames = frames
        self._parse = parse
        self._stack = stack
        self._deadline = deadline
        self.first: Event | None = None

    async def next_event(self, timeout_s: float | None = None) -> Event:
        """The next token or the final stats; raises :class:`UpstreamError` on any failure."""
        model = self.spec.model
        remaining = self._deadline - time.monotonic()
        limit = min(remaining, timeout_s) if timeout_s is not None else remaining
        try:
            # Not asyncio.wait_for: on Python 3.11 it returns the frame, swallowing the cancel, when
            # a caller leaves just as the frame arrives, and the backend is then read to its end.
            async with asyncio.timeout(max(limit, 0.001)):
                event, data = await anext(self._frames)
        except TimeoutError:
            reason = "first_token_timeout" if timeout_s is not None else "total_timeout"
            raise UpstreamError(model, reason, f"no event within {limit:.1f} s") from None
        except StopAsyncIteration:
            raise UpstreamError(model, "mid_stream", "stream ended without a final event") from None
        except httpx.HTTPError as exc:
            raise UpstreamError(model, "mid_stream", f"{type(exc).__name__}: {exc}") from None
        try:
            parsed = self._parse(event, data)
        except UpstreamErrorEvent as exc:
            raise UpstreamError(model, "backend_error", str(exc)) from None
        except (ValidationError, ValueError, KeyError, TypeError) as exc:
            raise UpstreamError(model, "bad_event", str(exc)) from None
        if parsed is None:
            return await self.next_event(timeout_s)
        return parsed

    async def events(self) -> AsyncIterator[Event]:
        """The first event, then the rest until the final stats."""
        assert self.first is not None
        event = self.first
        while True:
            if isinstance(event, GenerationStats):
                await self._drain()
                yield event
                return
            yield event
            event = await self.next_event()

    async def _drain(self) -> None:
        """Read the stream to its end after the final event, so the connection goes back to the
        pool instead of being closed (a new connection per request costs more than a read)."""
        with contextlib.suppress(httpx.HTTPError, TimeoutError, UpstreamError):
            async with asyncio.timeout(max(0.001, self._deadline - time.monotonic())):
                async for _ in self._frames:
                    pass

    async def aclose(self) -> None:
        """Close the connection; a backend still generating sees the disconnect and stops."""
        await self._stack.aclose()


def parse_native(event: str | None, data: str) -> Event | None:
    """Frames of a model service's ``/generate``."""
    if event == "token":
        return TokenEvent.model_validate_json(data)
    if event == "done":
        return GenerationStats.model_validate_json(data)
    if event == "error":
        raise UpstreamErrorEvent(ErrorEvent.model_validate_json(data).message)
    raise ValueError(f"unexpected event {event!r}")


class UpstreamErrorEvent(Exception):
    """The backend reported a failure in its stream."""


async def open_stream(
    client: httpx.AsyncClient,
    spec: BackendSpec,
    body: dict[str, Any],
    *,
    request_id: str,
    connect_timeout_s: float,
    first_token_timeout_s: float,
    total_timeout_s: float,
    path: str = "/generate",
    parse: FrameParser = parse_native,
) -> UpstreamStream:
    """Send ``body`` to ``spec``'s ``/generate`` and wait for its first event.

    Raises :class:`UpstreamError` (try another backend) or :class:`CallerFault` (don't).
    """
    deadline = time.monotonic() + total_timeout_s
    stack = contextlib.AsyncExitStack()
    timeout = httpx.Timeout(total_timeout_s, connect=connect_timeout_s)
    try:
        response = await stack.enter_async_context(
            client.stream(
                "POST",
                f"{spec.url}{path}",
                json={**body, "stream": True},
                headers={REQUEST_ID_HEADER: request_id},
                timeout=timeout,
            )
        )
        if response.status_code != 200:
            await _raise_for_status(spec, response)
        frames = iter_frames(response.aiter_lines())
        stream = UpstreamStream(spec, frames, stack, deadline, parse)
        stream.first = await stream.next_event(first_token_timeout_s)
        return stream
    except httpx.TimeoutException as exc:
        await stack.aclose()
        raise UpstreamError(spec.model, "timeout", type(exc).__name__) from None
    except httpx.HTTPError as exc:
        await stack.aclose()
        raise UpstreamError(spec.model, "connect", f"{type(exc).__name__}: {exc}") from None
    except BaseException:
        await stack.aclose()
        raise


async def _raise_for_status(spec: BackendSpec, response: httpx.Response) -> None:
    raw = await response.aread()
    try:
        body = response.json() if raw else {}
    except ValueError:
        body = {}
    if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
        raise CallerFault(response.status_code, body if isinstance(body, dict) else {})
    message = body.get("error", {}).get("message", "") if isinstance(body, dict) else ""
    raise UpstreamError(spec.model, f"http_{response.status_code}", message or raw[:200].decode())


class OpenAIChatParser:
    """Frames of a model service's streaming ``/v1/chat/completions``, as our events.

    OpenAI chunks carry no timings: the final stats report zeros there, and the router fills in
    what it measured itself.
    """

    def __init__(self, model: str) -> None:
        self.model = model
        self.index = 0

    def __call__(self, event: str | None, data: str) -> Event | None:
        if data == "[DONE]":
            return None
        chunk = json.loads(data)
        choice = chunk["choices"][0] if chunk.get("choices") else {}
        if choice.get("finish_reason"):
            usage = chunk.get("usage") or {}
            return GenerationStats(
                model=self.model,
                finish_reason="length" if choice["finish_reason"] == "length" else "stop",
                prompt_tokens=int(usage.get("prompt_tokens", 0)),
                completion_tokens=int(usage.get("completion_tokens", 0)),
                ttft_s=0.0,
                latency_s=0.0,
                tokens_per_s=0.0,
            )
        text = choice.get("delta", {}).get("content")
        if not text:
            return None
        self.index += 1
        return TokenEvent(text=text, index=self.index - 1)
