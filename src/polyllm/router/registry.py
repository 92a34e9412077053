"""The router's model registry: which backends exist, and which of them may take traffic now.

A backend is *available* when its last health check succeeded (``up``) and it is not ejected.

Health: every backend is polled on ``GET /health`` on its own schedule (a hanging backend never
delays the others). Only a 200 with ``{"status": "ok"}`` (and, when the body names one, the
expected model) counts as healthy; anything else marks the backend down and counts a failure.

Outlier ejection (like Envoy's): ``eject_after_failures`` consecutive failures, from health
checks or reported by the request path, eject the backend for ``cooldown_s``. While ejected it is
skipped even if health checks pass. Once the cooldown is over, the next successful health check
re-admits it, on probation: until a request through it succeeds (:meth:`Registry.report_success`)
or another ``cooldown_s`` passes, a single failure ejects it again. The reason: ``/health`` only
proves the service answers, not that it generates, so a backend that failed its requests and
fails again right after coming back is most likely still broken; probation makes it cost one
failed request per cooldown instead of ``eject_after_failures``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from polyllm.common.errors import UnknownModel
from polyllm.router.backends import (
    DEFAULT_REGISTRY,
    BackendSpec,
    PreferBackend,
    RegistryError,
    load_registry,
    parse_registry,
)

__all__ = [
    "DEFAULT_REGISTRY",
    "BackendSpec",
    "BackendState",
    "Registry",
    "RegistryError",
    "load_registry",
    "parse_registry",
]

log = logging.getLogger(__name__)


@dataclass
class BackendState:
    """What the registry currently knows about one backend."""

    spec: BackendSpec
    up: bool = False
    """The last health check succeeded (False until the first check)."""
    consecutive_failures: int = 0
    ejected_until: float = 0.0
    """Monotonic time the cooldown ends; 0 when not ejected. Stays set after the cooldown until
    a successful health check re-admits the backend."""
    last_error: str | None = None
    last_checked: float | None = None
    """Monotonic time of the last completed health check."""
    probation_until: float = 0.0
    """After re-admission: until then (or a reported success), one failure re-ejects."""
    n_parallel: int = 1
    """Requests the backend decodes together, as its last healthy ``/health`` said (above 1 its
    greedy texts depend on the load: the response cache keys on it)."""

    @property
    def ejected(self) -> bool:
        """Ejected by the outlier breaker (not yet re-admitted)."""
        return self.ejected_until > 0

    @property
    def available(self) -> bool:
        """May take traffic: up and not ejected."""
        return self.up and not self.ejected


class Registry:
    """Live view of the backends: health polling plus the outlier-ejection breaker.

    ``on_change(model, available)`` is called once per backend after the first health check and
    then whenever availability flips. All methods must be called from the event loop's thread.
    ``clock`` (monotonic seconds) is injectable so tests can step through cooldowns.
    """

    def __init__(
        self,
        specs: Mapping[str, BackendSpec],
        client: httpx.AsyncClient,
        *,
        interval_s: float = 2.0,
        timeout_s: float = 1.0,
        eject_after_failures: int = 3,
        cooldown_s: float = 10.0,
        on_change: Callable[[str, bool], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval_s <= 0 or timeout_s <= 0 or cooldown_s <= 0 or eject_after_failures < 1:
            raise ValueError(
                "interval_s, timeout_s and cooldown_s must be > 0, eject_after_failures >= 1"
            )
        ordered = sorted(specs.values(), key=lambda s: (s.tier, s.cost, s.model))
        self._states = {s.model: BackendState(s) for s in ordered}
        self._client = client
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._eject_after = eject_after_failures
        self._cooldown_s = cooldown_s
        self._on_change = on_change
        self._clock = clock
        self._reported: dict[str, bool] = {}  # availability last passed to on_change
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Check every backend once (concurrently), then keep polling in the background."""
        if self._task is not None:
            raise RuntimeError("registry already started")
        await self.check_now()
        self._task = asyncio.create_task(self._poll_all(), name="registry-health-poll")

    async def close(self) -> None:
        """Stop polling and wait until the polling task has finished. Safe to call twice."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        # wait() (not `await task`) so that a cancellation of close() itself still propagates.
        await asyncio.wait([task])
        if not task.cancelled() and task.exception() is not None:
            log.error("health polling had crashed", exc_info=task.exception())

    async def check_now(self) -> None:
        """Health-check every backend once, concurrently (each bounded by ``timeout_s``)."""
        async with asyncio.TaskGroup() as group:
            for state in self._states.values():
                group.create_task(self._check(state))

    async def _poll_all(self) -> None:
        async with asyncio.TaskGroup() as group:
            for state in self._states.values():
                group.create_task(self._poll(state), name=f"registry-poll-{state.spec.model}")

    async def _poll(self, state: BackendState) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time() + self._interval_s
        while True:
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            next_at = loop.time() + self._interval_s
            try:
                await self._check(state)
            except Exception:
                # A bug (e.g. in on_change) must not stop polling; it is logged whole, not hidden.
                log.exception("health check crashed", extra={"fields": self._fields(state)})

    # -- health checks ---------------------------------------------------------------------------

    async def _check(self, state: BackendState) -> None:
        try:
            reason = await self._probe(state)
        except Exception as exc:  # e.g. the client was closed under us: count it, don't hide it
            log.exception("health check error", extra={"fields": self._fields(state)})
            reason = f"health check error: {exc!r}"
        now = self._clock()
        state.last_checked = now
        if reason is None:
            state.up = True
            state.consecutive_failures = 0
            if state.ejected and now >= state.ejected_until:
                state.ejected_until = 0.0
                state.probation_until = now + self._cooldown_s
                log.info("backend readmitted", extra={"fields": self._fields(state)})
        else:
            state.up = False
            self._fail(state, reason, now)
        self._announce(state, first_check_counts=True)

    async def _probe(self, state: BackendState) -> str | None:
        """None when the backend is healthy (its ``n_parallel`` recorded), otherwise why not."""
        spec = state.spec
        try:
            async with asyncio.timeout(self._timeout_s):  # bounds the whole exchange
                response = await self._client.get(f"{spec.url}/health", timeout=self._timeout_s)
        except (TimeoutError, httpx.TimeoutException):
            return f"health check timed out after {self._timeout_s:g}s"
        except httpx.HTTPError as exc:
            return f"health check failed: {type(exc).__name__}: {exc}"
        if response.status_code != 200:
            return f"health answered HTTP {response.status_code}"
        try:
            body = response.json()
        except ValueError:
            return "health answered 200 with a body that is not JSON"
        if not isinstance(body, dict) or body.get("status") != "ok":
            status = body.get("status") if isinstance(body, dict) else None
            return f"health answered 200 with status {status!r}, not 'ok'"
        served = body.get("model")
        if served is not None and served != spec.model:
            return f"{spec.url} serves model {served!r}, not {spec.model!r}"
        n_parallel = body.get("n_parallel", 1)
        if not isinstance(n_parallel, int) or n_parallel < 1:
            return f"health answered n_parallel {n_parallel!r}, not a positive integer"
        state.n_parallel = n_parallel
        return None

    # -- the breaker -----------------------------------------------------------------------------

    def report_success(self, model: str) -> None:
        """The request path saw ``model`` answer: reset its failures and end any probation.

        Does not re-admit an ejected backend (only a health check after the cooldown does).
        """
        state = self._state(model)
        state.consecutive_failures = 0
        state.probation_until = 0.0

    def report_failure(self, model: str, reason: str) -> None:
        """The request path saw ``model`` fail; counts toward ejection (does not mark it down)."""
        state = self._state(model)
        self._fail(state, reason, self._clock())
        self._announce(state, first_check_counts=False)

    def _fail(self, state: BackendState, reason: str, now: float) -> None:
        state.consecutive_failures += 1
        state.last_error = reason
        if state.ejected:
            return  # already out; failures during the cooldown do not extend it
        on_probation = now < state.probation_until
        if state.consecutive_failures >= self._eject_after or on_probation:
            state.ejected_until = now + self._cooldown_s
            state.probation_until = 0.0
            fields = {**self._fields(state), "cooldown_s": self._cooldown_s}
            fields["on_probation"] = on_probation
            log.warning("backend ejected", extra={"fields": fields})

    def _announce(self, state: BackendState, *, first_check_counts: bool) -> None:
        model, available = state.spec.model, state.available
        previous = self._reported.get(model)
        if previous is None and not first_check_counts:
            return  # nothing announced yet: the first health check does that
        if previous == available:
            return
        self._reported[model] = available
        if previous is not None:
            log.info(
                "backend up" if available else "backend down",
                extra={"fields": self._fields(state)},
            )
        if self._on_change is not None:
            self._on_change(model, available)

    # -- queries ---------------------------------------------------------------------------------

    def _state(self, model: str) -> BackendState:
        try:
            return self._states[model]
        except KeyError:
            raise UnknownModel(model, list(self._states)) from None

    def spec(self, model: str) -> BackendSpec:
        """The spec of ``model``; raises :class:`UnknownModel` for an id not in the registry."""
        return self._state(model).spec

    def state(self, model: str) -> BackendState:
        """A copy of the current state of ``model`` (raises :class:`UnknownModel`)."""
        return dataclasses.replace(self._state(model))

    def all_specs(self) -> list[BackendSpec]:
        """Every registered backend, available or not, ordered by tier."""
        return [s.spec for s in self._states.values()]

    def is_available(self, model: str) -> bool:
        """``model`` is up and not ejected (raises :class:`UnknownModel`)."""
        return self._state(model).available

    def all_down(self) -> bool:
        """No backend is available."""
        return not any(s.available for s in self._states.values())

    def candidates(self, prefer_backend: PreferBackend) -> tuple[list[BackendSpec], bool]:
        """Available backends ordered by tier, and whether they are a backend fallback.

        ``"cpu"``/``"gpu"`` keep that backend's models; when none of those is available, the
        available models of the other backend come back with ``True``. ``"auto"`` keeps all.
        Nothing available at all gives ``([], False)``.
        """
        available = [s.spec for s in self._states.values() if s.available]
        if prefer_backend == "auto":
            return available, False
        if prefer_backend not in ("cpu", "gpu"):
            raise ValueError(f"prefer_backend must be cpu, gpu or auto, not {prefer_backend!r}")
        preferred = [s for s in available if s.backend == prefer_backend]
        if preferred:
            return preferred, False
        return available, bool(available)

    def snapshot(self) -> list[dict[str, Any]]:
        """Every backend's spec and live state, ordered by tier (for ``/models``)."""
        now = self._clock()
        rows = []
        for state in self._states.values():
            row: dict[str, Any] = dataclasses.asdict(state.spec)
            row.update(
                up=state.up,
                available=state.available,
                ejected=state.ejected,
                ejected_remaining_s=(
                    round(max(0.0, state.ejected_until - now), 3) if state.ejected else None
                ),
                consecutive_failures=state.consecutive_failures,
                last_error=state.last_error,
                last_checked_age_s=(
                    None if state.last_checked is None else round(now - state.last_checked, 3)
                ),
            )
            rows.append(row)
        return rows

    @staticmethod
    def _fields(state: BackendState) -> dict[str, Any]:
        return {
            "model": state.spec.model,
            "url": state.spec.url,
            "up": state.up,
            "ejected": state.ejected,
            "consecutive_failures": state.consecutive_failures,
            "reason": state.last_error,
        }
