"""``POST /route``: the router's decision for a prompt, without generating (the UI's "why" view,
offline evaluation of a running router). Admitted and rate-limited like ``/generate``."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response

from polyllm.common.errors import PolyLLMError, RateLimited, error_response
from polyllm.common.logging import prompt_hash
from polyllm.common.schemas import RouteDecision, RouteRequest
from polyllm.router.access import admit
from polyllm.router.cascade import NoHealthyBackend
from polyllm.router.deps import CallerDep, RequestIdDep, ServiceDep

router = APIRouter()
log = logging.getLogger(__name__)


@router.post("/route", response_model=RouteDecision)
async def route(
    body: RouteRequest,
    request: Request,
    service: ServiceDep,
    caller: CallerDep,
    request_id: RequestIdDep,
) -> RouteDecision | Response:
    """Which model would answer ``prompt`` (among the allowed, healthy ones) and why."""
    try:
        await admit(
            request, caller, request.app.state.access, request.app.state.bucket,
            service.redis_failed,
        )  # fmt: skip
        service.check_prompt(body.prompt)
        available, backend_fallback = service.registry.candidates(body.prefer_backend)
        if not available:
            raise NoHealthyBackend(f"no {body.prefer_backend} backend is up")
        decision, spec, escalations = service.decide(body.prompt, available)
    except RateLimited as exc:
        service.metrics.rate_limited.inc()
        return error_response(exc)
    except PolyLLMError as exc:
        return error_response(exc)
    policy = service.policy
    threshold = service.settings.confidence_threshold
    answer = RouteDecision(
        model=spec.model,
        backend=spec.backend,
        host=spec.host,
        chosen=decision.model,
        confidence=round(decision.confidence, 4),
        confidence_threshold=threshold if threshold is not None else policy.confidence_threshold,
        probabilities={m: round(p, 4) for m, p in decision.probabilities.items()},
        rationale=decision.rationale,
        contributions=decision.contributions,
        policy=policy.name,
        policy_version=policy.version,
        fallbacks=escalations,
        backend_fallback=backend_fallback,
    )
    log.info(
        "route",
        extra={
            "fields": {
                "request_id": request_id,
                "caller": caller,
                "prompt_hash": prompt_hash(body.prompt),
                "model": answer.model,
                "chosen": answer.chosen,
                "confidence": answer.confidence,
                "policy": answer.policy_version,
            }
        },
    )
    return answer
