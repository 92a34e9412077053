"""The router's dependencies as named ``Annotated`` aliases (swapped in tests via
``app.dependency_overrides``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from polyllm.router.access import AccessPolicy
from polyllm.router.service import RouterService


def get_service(request: Request) -> RouterService:
    """The app's router service (built by the lifespan)."""
    service: RouterService = request.app.state.service
    return service


def get_caller(request: Request) -> str:
    """Who is calling (raises 401 when keys are required and missing)."""
    access: AccessPolicy = request.app.state.access
    caller = access.caller(request)
    request.state.caller = caller
    return caller


def get_request_id(request: Request) -> str:
    """The request id set by the middleware."""
    return str(request.state.request_id)


ServiceDep = Annotated[RouterService, Depends(get_service)]
CallerDep = Annotated[str, Depends(get_caller)]
RequestIdDep = Annotated[str, Depends(get_request_id)]
