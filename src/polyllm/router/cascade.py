"""The fallback cascade: try backends in order until one starts answering.

A small loop of its own: a bounded list of attempts, each failure recorded (metrics, registry,
the response's ``fallbacks``), never a silent retry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from polyllm.common.errors import PolyLLMError
from polyllm.common.schemas import FallbackAttempt
from polyllm.router.backends import BackendSpec
from polyllm.router.upstream import UpstreamError, UpstreamStream


class NoHealthyBackend(PolyLLMError):
    """No backend could answer; the message names what was tried and why it failed."""

    status_code = 503
    code = "no_healthy_backend"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "5"}


def attempt_order(
    first: BackendSpec, available: Sequence[BackendSpec], max_attempts: int
) -> list[BackendSpec]:
    """``first``, then every available bigger model in tier order, at most ``max_attempts``."""
    bigger = sorted((b for b in available if b.tier > first.tier), key=lambda b: (b.tier, b.cost))
    return [first, *bigger][:max_attempts]


async def run_cascade(
    order: Sequence[BackendSpec],
    open_one: Callable[[BackendSpec], Awaitable[UpstreamStream]],
    on_failure: Callable[[BackendSpec, UpstreamError, BackendSpec | None], None],
) -> tuple[UpstreamStream, list[FallbackAttempt]]:
    """Open a stream on the first backend of ``order`` that answers.

    Raises :class:`NoHealthyBackend` when all fail; :class:`~polyllm.router.upstream.CallerFault`
    passes through untouched (another backend would refuse the same request).
    """
    fallbacks: list[FallbackAttempt] = []
    for i, spec in enumerate(order):
        try:
            return await open_one(spec), fallbacks
        except UpstreamError as exc:
            following = order[i + 1] if i + 1 < len(order) else None
            on_failure(spec, exc, following)
            fallbacks.append(
                FallbackAttempt(
                    from_model=spec.model,
                    to_model=following.model if following else None,
                    reason=exc.reason,
                )
            )
    tried = "; ".join(f"{f.from_model}: {f.reason}" for f in fallbacks) or "no candidates"
    raise NoHealthyBackend(f"no backend could answer ({tried})")
