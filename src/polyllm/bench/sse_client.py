"""Streaming clients that time what a caller sees, TTFT and each token: ours for ``/generate``,
and one for llama.cpp's ``llama-server`` ``/completion`` (the batching benchmark's reference)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import httpx

from polyllm.common.schemas import ErrorEvent, GenerationStats, RouteEvent, TokenEvent
from polyllm.common.sse import iter_frames


@dataclass
class StreamResult:
    """One streamed generation as the client saw it (times in seconds since the request)."""

    status_code: int
    chunks: list[str] = field(default_factory=list)
    token_times: list[float] = field(default_factory=list)
    stats: GenerationStats | None = None
    error: str | None = None
    latency_s: float = 0.0
    """Request sent → stream closed."""
    done_s: float | None = None
    """Request sent → final ``done`` event received (None without one)."""
    route: RouteEvent | None = None
    """The router's ``route`` event (model, backend, cache hit); None from a model service."""

    @property
    def text(self) -> str:
        """The whole completion."""
        return "".join(self.chunks)

    @property
    def ttft_s(self) -> float | None:
        """Request sent → first token event received."""
        return self.token_times[0] if self.token_times else None

    @property
    def decode_tokens_per_s(self) -> float | None:
        """Completion tokens after the first, over the time from the first to the last event."""
        if self.stats is None or self.stats.completion_tokens < 2 or len(self.token_times) < 2:
            return None
        span = self.token_times[-1] - self.token_times[0]
        return (self.stats.completion_tokens - 1) / span if span > 0 else None


async def _refused(resp: httpx.Response, result: StreamResult, started: float) -> bool:
    """True for an answer other than 200, its body then recorded as ``result``'s error."""
    if resp.status_code == 200:
        return False
    result.error = (await resp.aread()).decode(errors="replace")
    result.latency_s = time.perf_counter() - started
    return True


async def stream_generate(
    client: httpx.AsyncClient, url: str, body: dict[str, object]
) -> StreamResult:
    """POST ``body`` to ``url`` (a ``/generate`` endpoint) with streaming on; never raises on
    HTTP errors: they come back in ``status_code`` and ``error``. The router's ``route`` event is
    kept in ``route``; other unknown events are skipped."""
    started = time.perf_counter()
    async with client.stream("POST", url, json={**body, "stream": True}) as resp:
        result = StreamResult(status_code=resp.status_code)
        if await _refused(resp, result, started):
            return result
        expected_index = 0
        async for event, data in iter_frames(resp.aiter_lines()):
            now = time.perf_counter() - started
            if event == "token":
                token = TokenEvent.model_validate_json(data)
                if token.index != expected_index:
                    result.error = f"token event {token.index} arrived, expected {expected_index}"
                expected_index += 1
                result.chunks.append(token.text)
                result.token_times.append(now)
            elif event == "route":
                result.route = RouteEvent.model_validate_json(data)
            elif event == "done":
                result.done_s = now
                result.stats = GenerationStats.model_validate_json(data)
            elif event == "error":
                result.error = ErrorEvent.model_validate_json(data).message
        result.latency_s = time.perf_counter() - started
        if result.stats is None and result.error is None:
            result.error = "stream ended without a final event"
        return result


async def stream_completion(
    client: httpx.AsyncClient, url: str, body: dict[str, object], model: str
) -> StreamResult:
    """POST ``body`` to llama-server's ``/completion`` with streaming on: one ``data:`` chunk
    per token (its text may be empty while a character is incomplete), then a final chunk with
    ``stop`` true and the counts, made into :class:`GenerationStats` (no queue time: llama-server
    does not report it). One connection per request: llama-server sometimes closes a kept-alive
    connection after a stream just as the next request is sent on it (httpx: "Server
    disconnected without sending a response"; 2 of 14 back-to-back requests here)."""
    started = time.perf_counter()
    headers = {"Connection": "close"}
    async with client.stream("POST", url, json={**body, "stream": True}, headers=headers) as resp:
        result = StreamResult(status_code=resp.status_code)
        if await _refused(resp, result, started):
            return result
        async for _, data in iter_frames(resp.aiter_lines()):
            now = time.perf_counter() - started
            chunk = json.loads(data)
            result.chunks.append(chunk.get("content", ""))
            if not chunk.get("stop"):
                result.token_times.append(now)
                continue
            result.stats = GenerationStats(
                model=model,
                finish_reason="length" if chunk.get("stop_type") == "limit" else "stop",
                prompt_tokens=int(chunk["tokens_evaluated"]),
                completion_tokens=int(chunk["tokens_predicted"]),
                ttft_s=result.ttft_s or now,
                latency_s=now,
                tokens_per_s=float(chunk.get("timings", {}).get("predicted_per_second", 0.0)),
            )
        result.latency_s = time.perf_counter() - started
        if result.stats is None:
            result.error = "stream ended without a final chunk"
        return result
