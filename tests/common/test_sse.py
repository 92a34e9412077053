"""SSE frames: what we encode, our parser reads back unchanged."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from polyllm.common.schemas import TokenEvent
from polyllm.common.sse import encode_event, iter_frames, parse_frame


def test_named_event_with_model_payload() -> None:
    frame = encode_event(TokenEvent(text="hi\nthere", index=3), event="token")
    assert frame == b'event: token\ndata: {"text":"hi\\nthere","index":3}\n\n'


def test_bare_data_frame_for_openai_streams() -> None:
    assert encode_event("[DONE]") == b"data: [DONE]\n\n"
    assert encode_event({"a": 1}) == b'data: {"a":1}\n\n'


def test_multi_line_data_is_joined() -> None:
    assert parse_frame("event: x\ndata: one\ndata: two") == ("x", "one\ntwo")


def test_round_trip_through_line_parser() -> None:
    frames = [
        encode_event(TokenEvent(text="a", index=0), event="token"),
        encode_event({"done": True}, event="done"),
    ]

    async def lines() -> AsyncIterator[str]:
        for line in b"".join(frames).decode().split("\n"):
            yield line

    async def collect() -> list[tuple[str | None, str]]:
        return [pair async for pair in iter_frames(lines())]

    assert asyncio.run(collect()) == [
        ("token", '{"text":"a","index":0}'),
        ("done", '{"done":true}'),
    ]
