"""One Server-Sent Events shape for every PolyLLM stream.

Events are written as ``event: <name>\\ndata: <json>\\n\\n``; OpenAI-compatible streams use bare
``data:`` lines ending with ``data: [DONE]``. Responses are never compressed and never buffered
by proxies (``X-Accel-Buffering: no``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel
from starlette.responses import StreamingResponse

SSE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
    "Connection": "keep-alive",
}


def encode_event(data: BaseModel | dict[str, Any] | str, event: str | None = None) -> bytes:
    """One SSE frame. ``data`` is JSON-encoded unless it is already a string."""
    if isinstance(data, BaseModel):
        payload = data.model_dump_json()
    elif isinstance(data, dict):
        payload = json.dumps(data, separators=(",", ":"))
    else:
        payload = data
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


def sse_response(
    frames: AsyncIterator[bytes], headers: dict[str, str] | None = None
) -> StreamingResponse:
    """Wrap an async iterator of frames (from :func:`encode_event`) in a streaming response."""
    return StreamingResponse(
        frames, media_type="text/event-stream", headers={**SSE_HEADERS, **(headers or {})}
    )


def parse_frame(frame: str) -> tuple[str | None, str]:
    """Split one SSE frame (without the blank line) into ``(event, data)``."""
    event: str | None = None
    data: list[str] = []
    for line in frame.splitlines():
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    return event, "\n".join(data)


async def iter_frames(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str | None, str]]:
    """Parse an SSE byte stream, given as decoded lines, into ``(event, data)`` pairs."""
    buf: list[str] = []
    async for line in lines:
        if line == "":
            if buf:
                yield parse_frame("\n".join(buf))
                buf = []
        else:
            buf.append(line)
    if buf:
        yield parse_frame("\n".join(buf))
