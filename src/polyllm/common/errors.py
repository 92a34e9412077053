"""Domain errors and the one place that turns them into JSON error bodies.

Every error body has the OpenAI shape, so OpenAI clients show our messages as they are:
``{"error": {"message": "...", "type": "...", "param": "field or null", "code": "..."}}``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from polyllm.common.disconnect import ClientGone

log = logging.getLogger(__name__)


class PolyLLMError(Exception):
    """Base of every error a caller can see; carries its HTTP status and the offending field."""

    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param

    def headers(self) -> dict[str, str]:
        """Extra response headers (e.g. ``Retry-After``)."""
        return {}


class InvalidRequest(PolyLLMError):
    """The caller sent something we cannot serve; ``param`` names the field."""

    status_code = 400
    code = "invalid_request"


class PromptTooLong(InvalidRequest):
    """The prompt (plus the requested completion) does not fit in the context window."""

    code = "context_length_exceeded"


class Unauthorized(PolyLLMError):
    """A missing or unknown API key when the router requires one."""

    status_code = 401
    code = "invalid_api_key"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class PayloadTooLarge(PolyLLMError):
    """A request body over the size limit."""

    status_code = 413
    code = "payload_too_large"


class RateLimited(PolyLLMError):
    """The caller's token bucket is empty; retry after ``retry_after`` seconds."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class UnknownModel(PolyLLMError):
    """A model id that this service or router does not serve."""

    status_code = 404
    code = "model_not_found"

    def __init__(self, model: str, known: list[str]) -> None:
        super().__init__(f"unknown model {model!r}; available: {', '.join(known)}", param="model")


class Overloaded(PolyLLMError):
    """The admission queue is full; the caller should retry after ``retry_after`` seconds."""

    status_code = 503
    code = "overloaded"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class NotReady(PolyLLMError):
    """The service is still loading its model."""

    status_code = 503
    code = "not_ready"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "5"}


def error_body(
    message: str, *, type_: str, code: str, param: str | None = None
) -> dict[str, dict[str, Any]]:
    """The JSON body for an error (OpenAI shape)."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error_response(exc: PolyLLMError) -> JSONResponse:
    """Map a domain error to its JSON response."""
    kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
    return JSONResponse(
        error_body(exc.message, type_=kind, code=exc.code, param=exc.param),
        status_code=exc.status_code,
        headers=exc.headers(),
    )


def _validation_response(exc: RequestValidationError) -> JSONResponse:
    """422 naming the first offending field; a body that is not JSON at all is a 400."""
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    if first.get("type") == "json_invalid":
        return error_response(InvalidRequest("request body is not valid JSON", param="body"))
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    field = ".".join(loc) or "body"
    message = f"{field}: {first.get('msg', 'invalid value')}"
    if len(errors) > 1:
        message += (
            f" (and {len(errors) - 1} more: "
            + json.dumps(
                [".".join(str(p) for p in e.get("loc", ()) if p != "body") for e in errors[1:]]
            )
            + ")"
        )
    body = error_body(message, type_="invalid_request_error", code="invalid_value", param=field)
    return JSONResponse(body, status_code=422)


def install_error_handlers(
    app: FastAPI, on_client_error: Callable[[Request], None] | None = None
) -> None:
    """Register the single error mapper on ``app``.

    ``on_client_error`` is called for every 4xx caused by the caller's input (to count them).
    """

    def client_error(request: Request) -> None:
        if on_client_error is not None:
            on_client_error(request)

    async def on_domain_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, PolyLLMError)
        if exc.status_code < 500:
            client_error(request)
        return error_response(exc)

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        client_error(request)
        return _validation_response(exc)

    async def on_http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        body = error_body(
            str(exc.detail), type_="invalid_request_error", code=f"http_{exc.status_code}"
        )
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        # A bug of ours, never the caller's: log it whole, answer in the same JSON shape.
        request_id = getattr(request.state, "request_id", None)
        log.error(
            "unhandled error",
            exc_info=exc,
            extra={"fields": {"request_id": request_id, "path": request.url.path}},
        )
        message = f"internal error (request id {request_id}); the service log has the details"
        return JSONResponse(
            error_body(message, type_="server_error", code="internal_error"), status_code=500
        )

    async def on_client_gone(request: Request, exc: Exception) -> Response:
        # Nobody is listening any more; 499 (client closed request) is for the access log.
        return Response(status_code=499)

    app.add_exception_handler(ClientGone, on_client_gone)
    app.add_exception_handler(Exception, on_unexpected)
    app.add_exception_handler(PolyLLMError, on_domain_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
