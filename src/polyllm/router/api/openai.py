"""OpenAI-compatible chat completions through the router (``model: "auto"`` lets it decide)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from polyllm.common.openai_api import (
    ChatCompletionRequest,
    completion_envelope,
    openai_finish_reason,
)
from polyllm.common.schemas import RouteEvent, RouterGenerateRequest, RouterStats
from polyllm.common.sse import encode_event, sse_response
from polyllm.router.api.begin import RouterEvent, begin, collect, failed_mid_answer
from polyllm.router.deps import CallerDep, RequestIdDep, ServiceDep
from polyllm.router.service import Plan, RouterService
from polyllm.router.upstream import UpstreamError

router = APIRouter()

DEFAULT_MAX_TOKENS = 512


def _as_router_request(body: ChatCompletionRequest) -> RouterGenerateRequest:
    """The routing view of a chat: the conversation's text drives the decision. Chats are not
    cached (the cache key is defined over ``/generate`` requests)."""
    return RouterGenerateRequest(
        prompt="\n".join(m.content for m in body.messages) or " ",
        max_tokens=body.token_budget or DEFAULT_MAX_TOKENS,
        temp=body.temperature,
        top_p=body.top_p,
        stop=body.stop,
        seed=body.seed,
        stream=body.stream,
        model=None if body.model == "auto" else body.model,
        cache=False,
    )


@router.post("/v1/chat/completions")
async def chat_completions(
    body: ChatCompletionRequest,
    request: Request,
    service: ServiceDep,
    caller: CallerDep,
    request_id: RequestIdDep,
) -> Response:
    """The router picks the model (or honours ``model``) and relays the answer as OpenAI chunks;
    the route (model, confidence, rationale, fallbacks) rides along as ``polyllm``."""
    req = _as_router_request(body)
    messages = [m.model_dump() for m in body.messages]
    begun = await begin(request, service, caller, req, request_id, chat=messages)
    if isinstance(begun, Response):
        return begun
    plan, events = begun
    completion_id = f"chatcmpl-{request_id}"
    if body.stream:
        return sse_response(_chunks(events, service, caller, plan, completion_id))
    collected = await collect(request, events, service, caller, plan)
    if isinstance(collected, Response):
        return collected
    text, stats = collected
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": text},
        "finish_reason": openai_finish_reason(stats.finish_reason),
    }
    head = completion_envelope("chat.completion", completion_id, stats.model)
    usage = _usage(stats)
    return JSONResponse(
        {**head, "choices": [choice], "usage": usage, "polyllm": stats.model_dump()}
    )


async def _chunks(
    events: AsyncIterator[RouterEvent],
    service: RouterService,
    caller: str,
    plan: Plan,
    completion_id: str,
) -> AsyncIterator[bytes]:
    status, stats = "error", None
    head: dict[str, object] = {}
    try:
        async for event in events:
            if isinstance(event, RouterStats):
                status, stats = "ok", event
                last = {
                    **head,
                    "choices": [
                        {
                            "index": 0,
                            "delta": {},
                            "finish_reason": openai_finish_reason(event.finish_reason),
                        }
                    ],
                }
                yield encode_event({**last, "usage": _usage(event), "polyllm": event.model_dump()})
                yield encode_event("[DONE]")
            elif isinstance(event, RouteEvent):
                head = completion_envelope("chat.completion.chunk", completion_id, event.model)
                first = {"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}
                yield encode_event({**head, "choices": [first]})
            else:
                delta = {"index": 0, "delta": {"content": event.text}, "finish_reason": None}
                yield encode_event({**head, "choices": [delta]})
    except UpstreamError as exc:
        yield encode_event(failed_mid_answer(exc))
    except asyncio.CancelledError:
        status = "cancelled"
        raise
    finally:
        service.record(caller, plan, stats, status, plan.request)


def _usage(stats: RouterStats) -> dict[str, int]:
    return {
        "prompt_tokens": stats.prompt_tokens,
        "completion_tokens": stats.completion_tokens,
        "total_tokens": stats.prompt_tokens + stats.completion_tokens,
    }
