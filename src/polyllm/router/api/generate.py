"""``POST /generate``: the router's front door (thin: the work is in ``RouterService``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from polyllm.common.schemas import (
    ErrorEvent,
    RouteEvent,
    RouterGenerateRequest,
    RouterStats,
    TokenEvent,
)
from polyllm.common.sse import encode_event, sse_response
from polyllm.router.api.begin import RouterEvent, begin, collect, failed_mid_answer
from polyllm.router.deps import CallerDep, RequestIdDep, ServiceDep
from polyllm.router.service import Plan, RouterService
from polyllm.router.upstream import UpstreamError

router = APIRouter()
log = logging.getLogger(__name__)


@router.post("/generate", response_model=RouterStats)
async def generate(
    body: RouterGenerateRequest,
    request: Request,
    service: ServiceDep,
    caller: CallerDep,
    request_id: RequestIdDep,
) -> Response:
    """Route, then stream the chosen model's answer (SSE) or return it whole (``stream: false``)."""
    begun = await begin(request, service, caller, body, request_id)
    if isinstance(begun, Response):
        return begun
    plan, events = begun
    if body.stream:
        return sse_response(_frames(events, service, caller, plan))
    collected = await collect(request, events, service, caller, plan)
    if isinstance(collected, Response):
        return collected
    text, stats = collected
    return JSONResponse({"text": text, **stats.model_dump()})


async def _frames(
    events: AsyncIterator[RouterEvent], service: RouterService, caller: str, plan: Plan
) -> AsyncIterator[bytes]:
    """SSE frames; a backend failing after the stream started ends it with an ``error`` event."""
    names = {RouteEvent: "route", TokenEvent: "token", RouterStats: "done"}
    status, stats = "error", None
    held = b""  # the route event travels with the first token: one write, not two
    try:
        async for event in events:
            frame = encode_event(event, event=names[type(event)])
            if type(event) is RouteEvent:  # not its subclass RouterStats, the final event
                held = frame
                continue
            yield held + frame
            held = b""
            if isinstance(event, RouterStats):
                status, stats = "ok", event
    except UpstreamError as exc:
        error = ErrorEvent(**failed_mid_answer(exc)["error"])
        yield held + encode_event(error, event="error")
    except asyncio.CancelledError:
        status = "cancelled"
        raise
    except Exception as exc:  # a bug of ours mid-stream: say so, never end as if complete
        log.exception("stream failed", extra={"fields": {"request_id": plan.request_id}})
        error = ErrorEvent(message=f"internal error: {type(exc).__name__}", code="internal_error")
        yield held + encode_event(error, event="error")
    finally:
        service.record(caller, plan, stats, status, plan.request)
