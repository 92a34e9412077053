"""A fault-injecting stand-in for a model service, for the router's failure paths only.

It speaks the model-service contract (``/generate`` SSE, ``/health``) and misbehaves on demand:

- ``ok``: streams ``tokens`` words, then stats (a well-behaved backend, fast and predictable)
- ``slow_first_token``: waits ``delay_s`` before the first token
- ``die_mid_stream``: sends ``tokens // 2`` tokens, then drops the connection
- ``error_500``: answers every generation with a 500
- ``unhealthy``: ``/health`` answers 503

Never used in place of a real model in a test that claims to test a model.
``python -m polyllm.bench.fake_backend --port 9999 --mode die_mid_stream``
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from typing import Literal

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from polyllm.common.schemas import GenerateRequest, GenerationStats, TokenEvent
from polyllm.common.sse import encode_event, sse_response

Mode = Literal["ok", "slow_first_token", "die_mid_stream", "error_500", "unhealthy"]
MODES: tuple[Mode, ...] = ("ok", "slow_first_token", "die_mid_stream", "error_500", "unhealthy")


class MidStreamFailure(Exception):
    """Raised inside the stream to make the server drop the connection."""


def create_fake_app(model: str, mode: Mode, *, tokens: int = 8, delay_s: float = 5.0) -> FastAPI:
    """A fake model service answering as ``model``; ``POST /mode`` switches the mode."""
    app = FastAPI(title=f"fake backend ({model})")
    app.state.mode = mode
    app.state.generations = 0
    app.state.cancelled = 0

    @app.get("/health")
    async def health() -> JSONResponse:
        ok = app.state.mode != "unhealthy"
        body = {"status": "ok" if ok else "failed", "model": model, "backend": "cpu"}
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.post("/mode/{new_mode}")
    async def set_mode(new_mode: Mode) -> dict[str, str]:
        app.state.mode = new_mode
        return {"mode": new_mode}

    @app.get("/counters")
    async def counters() -> dict[str, int]:
        return {"generations": app.state.generations, "cancelled": app.state.cancelled}

    @app.post("/generate")
    async def generate(body: GenerateRequest, request: Request) -> Response:
        app.state.generations += 1
        current: Mode = app.state.mode
        if current == "error_500":
            return JSONResponse({"error": {"message": "injected failure"}}, status_code=500)
        words = [f"{model}-w{i} " for i in range(min(tokens, body.max_tokens))]

        async def frames() -> AsyncIterator[bytes]:
            try:
                if current == "slow_first_token":
                    await asyncio.sleep(delay_s)
                for i, word in enumerate(words):
                    if current == "die_mid_stream" and i == len(words) // 2:
                        raise MidStreamFailure("injected mid-stream failure")
                    yield encode_event(TokenEvent(text=word, index=i), event="token")
                    await asyncio.sleep(0.01)
                stats = GenerationStats(
                    model=model,
                    finish_reason="length",
                    prompt_tokens=len(body.prompt.split()),
                    completion_tokens=len(words),
                    ttft_s=0.01,
                    latency_s=0.01 * len(words),
                    tokens_per_s=100.0,
                )
                yield encode_event(stats, event="done")
            except asyncio.CancelledError:
                app.state.cancelled += 1
                raise

        return sse_response(frames())

    return app


def main() -> None:
    """Run a fake backend (used by tests and by hand)."""
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", default="m1")
    parser.add_argument("--mode", choices=MODES, default="ok")
    parser.add_argument("--tokens", type=int, default=8)
    parser.add_argument("--delay-s", type=float, default=5.0)
    args = parser.parse_args()
    app = create_fake_app(args.model, args.mode, tokens=args.tokens, delay_s=args.delay_s)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
