"""The part every answering route shares: admit, check, plan, then cache or cascade."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from polyllm.common.disconnect import ClientGone, unless_disconnected
from polyllm.common.errors import PolyLLMError, RateLimited, error_response
from polyllm.common.schemas import RouteEvent, RouterGenerateRequest, RouterStats, TokenEvent
from polyllm.router.access import admit
from polyllm.router.service import Plan, RouterService
from polyllm.router.upstream import CallerFault, UpstreamError

RouterEvent = RouteEvent | TokenEvent | RouterStats


async def begin(
    request: Request,
    service: RouterService,
    caller: str,
    req: RouterGenerateRequest,
    request_id: str,
    chat: list[dict[str, str]] | None = None,
) -> tuple[Plan, AsyncIterator[RouterEvent]] | Response:
    """The plan and its event stream, or the error response (already recorded) when the request
    cannot be answered. Nothing has been sent to the caller yet either way."""
    try:
        await admit(
            request,
            caller,
            request.app.state.access,
            request.app.state.bucket,
            service.redis_failed,
        )
        service.check_limits(req)
        plan = await service.plan(req, request_id)
        answer = await service.cached(plan) if chat is None else None
        if answer is not None:
            return plan, service.replay(plan, answer)
        stream, fallbacks = await service.open(plan, chat=chat)
        return plan, service.relay(plan, stream, fallbacks)
    except RateLimited as exc:
        service.metrics.rate_limited.inc()
        service.record(caller, None, None, "rate_limited", req)
        return error_response(exc)
    except CallerFault as fault:
        service.record(caller, None, None, "invalid", req)
        return JSONResponse(fault.body, status_code=fault.status_code)
    except PolyLLMError as exc:
        status = "invalid" if exc.status_code < 500 else "unavailable"
        service.record(caller, None, None, status, req)
        return error_response(exc)


async def collect(
    request: Request,
    events: AsyncIterator[RouterEvent],
    service: RouterService,
    caller: str,
    plan: Plan,
) -> tuple[str, RouterStats] | Response:
    """The whole answer for a non-streaming caller (recorded), or the error response. A caller
    who leaves cancels it: the backend connection closes and the backend stops generating."""

    async def whole() -> tuple[str, RouterStats]:
        parts: list[str] = []
        async for event in events:
            if isinstance(event, TokenEvent):
                parts.append(event.text)
            elif isinstance(event, RouterStats):
                return "".join(parts), event
        raise RuntimeError("stream ended without stats")  # relay always ends on stats

    try:
        text, stats = await unless_disconnected(request, whole())
    except UpstreamError as exc:
        service.record(caller, plan, None, "error", plan.request)
        return JSONResponse(failed_mid_answer(exc), status_code=502)
    except ClientGone:
        service.record(caller, plan, None, "cancelled", plan.request)
        raise
    service.record(caller, plan, stats, "ok", plan.request)
    return text, stats


def failed_mid_answer(exc: UpstreamError) -> dict[str, Any]:
    """The error body for a backend that broke after the answer had started."""
    message = f"the model failed mid-answer: {exc.detail}"
    return {
        "error": {"message": message, "type": "server_error", "param": None, "code": exc.reason}
    }
