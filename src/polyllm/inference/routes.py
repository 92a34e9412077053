"""HTTP routes of one model service: parse, call the engine, shape the answer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from polyllm.common.disconnect import ClientGone, unless_disconnected
from polyllm.common.errors import PolyLLMError, UnknownModel
from polyllm.common.logging import prompt_hash
from polyllm.common.openai_api import (
    ChatCompletionRequest,
    CompletionRequest,
    ModelCard,
    ModelList,
    Usage,
    completion_envelope,
    openai_finish_reason,
)
from polyllm.common.schemas import (
    ErrorEvent,
    GenerateRequest,
    GenerateResponse,
    GenerationStats,
    HealthResponse,
    TokenEvent,
)
from polyllm.common.sse import encode_event, sse_response
from polyllm.inference.engine import Generation, LlamaEngine, SamplingParams

router = APIRouter()


def get_engine(request: Request) -> LlamaEngine:
    """The app's engine (set by the lifespan)."""
    engine: LlamaEngine = request.app.state.engine
    return engine


EngineDep = Annotated[LlamaEngine, Depends(get_engine)]


def _request_id(request: Request) -> str:
    return str(request.state.request_id)


async def _collect(generation: Generation, request: Request) -> tuple[str, GenerationStats]:
    """Run a generation to the end for a non-streaming caller, cancelling it if they leave."""

    async def whole() -> tuple[str, GenerationStats]:
        parts: list[str] = []
        async for event in generation.events():
            if isinstance(event, TokenEvent):
                parts.append(event.text)
            else:
                return "".join(parts), event
        raise RuntimeError("generation ended without stats")  # events() always ends on stats

    try:
        return await unless_disconnected(request, whole())
    except ClientGone:
        generation.cancel()
        raise


async def _frames(
    generation: Generation,
    on_token: Callable[[TokenEvent], bytes],
    on_done: Callable[[GenerationStats], list[bytes]],
) -> AsyncIterator[bytes]:
    """SSE frames of a generation; an engine failure mid-stream becomes an ``error`` event."""
    try:
        async for event in generation.events():
            if isinstance(event, TokenEvent):
                yield on_token(event)
            else:
                for frame in on_done(event):
                    yield frame
    except PolyLLMError as exc:
        yield encode_event(ErrorEvent(message=exc.message, code=exc.code), event="error")
    except Exception as exc:  # the stream has started: all we can still do is say so
        yield encode_event(
            ErrorEvent(message=f"generation failed: {exc}", code="engine_error"), event="error"
        )


def _check_model(engine: LlamaEngine, model: str) -> None:
    if model != engine.model_id:
        raise UnknownModel(model, [engine.model_id])


@router.post("/generate", response_model=GenerateResponse)
async def generate(body: GenerateRequest, request: Request, engine: EngineDep) -> Response:
    """Complete ``prompt``: an SSE stream of tokens then stats, or one JSON object."""
    prompt = engine.prepare(body.prompt, raw=body.raw, max_tokens=body.max_tokens)
    params = SamplingParams(
        body.max_tokens, body.temp, body.top_p, body.stop, body.seed, body.ignore_eos
    )
    generation = engine.submit(
        prompt, params, request_id=_request_id(request), prompt_hash=prompt_hash(body.prompt)
    )
    if not body.stream:
        text, stats = await _collect(generation, request)
        return JSONResponse(GenerateResponse(text=text, **stats.model_dump()).model_dump())
    return sse_response(
        _frames(
            generation,
            on_token=lambda e: encode_event(e, event="token"),
            on_done=lambda s: [encode_event(s, event="done")],
        )
    )


def _openai_stream(
    generation: Generation, kind: str, completion_id: str, model: str, chat: bool
) -> Response:
    """An OpenAI-style stream: ``data:`` chunks, a last chunk with finish_reason, ``[DONE]``."""
    head = completion_envelope(kind, completion_id, model)

    def choice(text: str | None, finish: str | None) -> dict[str, Any]:
        if chat:
            delta = {"content": text} if text is not None else {}
            return {"index": 0, "delta": delta, "finish_reason": finish}
        return {"index": 0, "text": text or "", "finish_reason": finish}

    def on_token(event: TokenEvent) -> bytes:
        return encode_event({**head, "choices": [choice(event.text, None)]})

    def on_done(stats: GenerationStats) -> list[bytes]:
        usage = _usage(stats).model_dump()
        last = {**head, "choices": [choice(None, openai_finish_reason(stats.finish_reason))]}
        return [encode_event({**last, "usage": usage}), encode_event("[DONE]")]

    return sse_response(_frames(generation, on_token, on_done))


def _usage(stats: GenerationStats) -> Usage:
    return Usage(
        prompt_tokens=stats.prompt_tokens,
        completion_tokens=stats.completion_tokens,
        total_tokens=stats.prompt_tokens + stats.completion_tokens,
    )


@router.post("/v1/chat/completions")
async def chat_completions(
    body: ChatCompletionRequest, request: Request, engine: EngineDep
) -> Response:
    """OpenAI chat completions, through the model's chat template."""
    _check_model(engine, body.model)
    messages = [m.model_dump() for m in body.messages]
    budget = body.token_budget or min(512, engine.n_ctx // 2)
    prompt = engine.prepare(messages=messages, max_tokens=budget)
    params = SamplingParams(budget, body.temperature, body.top_p, body.stop, body.seed)
    digest = prompt_hash("\n".join(m.content for m in body.messages))
    request_id = _request_id(request)
    generation = engine.submit(prompt, params, request_id=request_id, prompt_hash=digest)
    completion_id = f"chatcmpl-{request_id}"
    if body.stream:
        return _openai_stream(
            generation, "chat.completion.chunk", completion_id, engine.model_id, chat=True
        )
    text, stats = await _collect(generation, request)
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": text},
        "finish_reason": openai_finish_reason(stats.finish_reason),
    }
    head = completion_envelope("chat.completion", completion_id, engine.model_id)
    return JSONResponse({**head, "choices": [choice], "usage": _usage(stats).model_dump()})


@router.post("/v1/completions")
async def completions(body: CompletionRequest, request: Request, engine: EngineDep) -> Response:
    """OpenAI text completions: the prompt as-is, no chat template."""
    _check_model(engine, body.model)
    prompt = engine.prepare(body.prompt, raw=True, max_tokens=body.max_tokens)
    params = SamplingParams(body.max_tokens, body.temperature, body.top_p, body.stop, body.seed)
    request_id = _request_id(request)
    generation = engine.submit(
        prompt, params, request_id=request_id, prompt_hash=prompt_hash(body.prompt)
    )
    completion_id = f"cmpl-{request_id}"
    if body.stream:
        return _openai_stream(
            generation, "text_completion", completion_id, engine.model_id, chat=False
        )
    text, stats = await _collect(generation, request)
    choice = {"index": 0, "text": text, "finish_reason": openai_finish_reason(stats.finish_reason)}
    head = completion_envelope("text_completion", completion_id, engine.model_id)
    return JSONResponse({**head, "choices": [choice], "usage": _usage(stats).model_dump()})


@router.get("/v1/models", response_model=ModelList)
async def list_models(engine: EngineDep) -> ModelList:
    """The one model this service serves."""
    return ModelList(data=[ModelCard(id=engine.model_id)])


@router.get("/health", response_model=HealthResponse)
async def health(request: Request, engine: EngineDep) -> JSONResponse:
    """200 once the model has generated its warm-up; 503 while loading or after a failed load."""
    failure: str | None = getattr(request.app.state, "load_error", None)
    status = "ok" if engine.ready else ("failed" if failure else "loading")
    body = HealthResponse(
        status=status,
        model=engine.model_id,
        backend="gpu" if engine.backend == "gpu" else "cpu",
        device=engine.device,
        sha256=engine.sha256[:12] if engine.sha256 else None,
        queue_depth=engine.queue_depth,
        n_ctx=engine.n_ctx,
        n_parallel=engine.settings.n_parallel,
        flash_attn=engine.settings.flash_attn,
        detail=failure,
    )
    return JSONResponse(body.model_dump(), status_code=200 if status == "ok" else 503)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """Prometheus exposition of this service's metrics."""
    # Off the event loop: on a GPU, collecting runs nvidia-smi.
    body = await asyncio.to_thread(generate_latest, request.app.state.metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
