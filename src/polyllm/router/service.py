"""What the router does for one request, independent of HTTP: decide, look up the cache,
open a backend through the cascade, relay the events, record the outcome."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from redis.asyncio import Redis
from redis.exceptions import RedisError

from polyllm.common.errors import InvalidRequest
from polyllm.common.logging import prompt_hash
from polyllm.common.schemas import (
    FallbackAttempt,
    GenerationStats,
    RouteEvent,
    RouterGenerateRequest,
    RouterStats,
    TokenEvent,
)
from polyllm.router.backends import BackendSpec
from polyllm.router.cache import CachedAnswer, RedisResponseCache, cache_key, is_cacheable
from polyllm.router.cascade import NoHealthyBackend, attempt_order, run_cascade
from polyllm.router.metrics import RouterMetrics
from polyllm.router.policy import Candidate, Decision, RoutingPolicy
from polyllm.router.registry import Registry
from polyllm.router.settings import RouterSettings
from polyllm.router.upstream import (
    OpenAIChatParser,
    UpstreamError,
    UpstreamStream,
    open_stream,
    parse_native,
)

log = logging.getLogger(__name__)

FALLBACK_TIER = 5
LAST_STATS_KEEP = 10_000


@dataclass
class Plan:
    """Where a request goes: the decision, the backends to try in order, the cache key."""

    request: RouterGenerateRequest
    request_id: str
    decision: Decision
    order: list[BackendSpec]
    forced: bool
    backend_fallback: bool
    cache_key: str | None
    policy: str
    escalations: list[FallbackAttempt] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def route_event(self, spec: BackendSpec, *, cache_hit: bool) -> RouteEvent:
        """The ``route`` event for the backend that answers."""
        return RouteEvent(
            request_id=self.request_id,
            model=spec.model,
            backend=spec.backend,
            host=spec.host,
            confidence=round(self.decision.confidence, 4),
            probabilities={m: round(p, 4) for m, p in self.decision.probabilities.items()},
            rationale=self.decision.rationale,
            contributions=self.decision.contributions,
            policy=self.policy,
            forced=self.forced,
            backend_fallback=self.backend_fallback,
            cache_hit=cache_hit,
        )


class RouterService:
    """The router's moving parts, wired together (built by the app's lifespan)."""

    def __init__(
        self,
        settings: RouterSettings,
        registry: Registry,
        policy: RoutingPolicy,
        cache: RedisResponseCache | None,
        client: httpx.AsyncClient,
        metrics: RouterMetrics,
        redis: Redis,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.registry = registry
        self.policy = policy
        self.cache = cache
        self.client = client
        self.metrics = metrics
        self._last: OrderedDict[str, dict[str, Any]] = OrderedDict()

    # -- deciding ----------------------------------------------------------------------------

    def check_limits(self, req: RouterGenerateRequest) -> None:
        """What any caller may ask for, before any work is done."""
        self.check_prompt(req.prompt)
        ceiling = self.settings.max_tokens_ceiling
        if req.model is not None:
            ceiling = min(ceiling, self.registry.spec(req.model).max_tokens or ceiling)
        if req.max_tokens > ceiling:
            raise InvalidRequest(
                f"max_tokens {req.max_tokens} is over the limit of {ceiling}", param="max_tokens"
            )

    def check_prompt(self, prompt: str) -> None:
        """A prompt within the router's length limit."""
        if len(prompt) > self.settings.max_prompt_chars:
            raise InvalidRequest(
                f"prompt is {len(prompt)} characters; the limit is "
                f"{self.settings.max_prompt_chars}",
                param="prompt",
            )

    async def plan(self, req: RouterGenerateRequest, request_id: str) -> Plan:
        """Choose the model and the order of backends to try."""
        available, backend_fallback = self.registry.candidates(req.prefer_backend)
        if req.model is not None:
            spec = self.registry.spec(req.model)  # raises UnknownModel
            if spec not in available:
                raise NoHealthyBackend(f"model {req.model} is not available right now")
            decision = Decision(
                req.model, 1.0, {req.model: 1.0}, f"forced by the caller: {req.model}"
            )
            key = self._key(req, req.model)
            return Plan(req, request_id, decision, [spec], True, backend_fallback, key, "forced")
        if not available:
            raise NoHealthyBackend(f"no {req.prefer_backend} backend is up")
        decision, first, escalations = self.decide(req.prompt, available)
        order = attempt_order(first, available, self.settings.max_attempts)
        key = self._key(req, first.model)
        return Plan(
            req, request_id, decision, order, False, backend_fallback, key, self.policy.name,
            escalations,
        )  # fmt: skip

    def decide(
        self, prompt: str, available: list[BackendSpec]
    ) -> tuple[Decision, BackendSpec, list[FallbackAttempt]]:
        """The policy's decision among ``available`` (never empty), the backend that answers
        first, and the escalation when the policy was unsure: the fallback tier (the biggest
        available model: m5, or the GPU model where the caller allows it)."""
        choosable = [b for b in available if b.tier < FALLBACK_TIER] or available
        decision = self.policy.decide(prompt, [Candidate(b.model, b.tier) for b in choosable])
        first = next(b for b in available if b.model == decision.model)
        threshold = self.settings.confidence_threshold
        if threshold is None:
            threshold = self.policy.confidence_threshold
        fallback = max(available, key=lambda b: (b.tier, -b.cost))
        if decision.confidence >= threshold or fallback.tier <= first.tier:
            return decision, first, []
        self.metrics.fallbacks.labels(first.model, fallback.model, "low_confidence").inc()
        escalation = FallbackAttempt(
            from_model=first.model, to_model=fallback.model, reason="low_confidence"
        )
        return decision, fallback, [escalation]

    def _key(self, req: RouterGenerateRequest, model: str) -> str | None:
        if self.cache is None or not is_cacheable(temp=req.temp, seed=req.seed, cache=req.cache):
            return None
        fields = req.model_dump(
            include={
                "prompt",
                "max_tokens",
                "temp",
                "top_p",
                "stop",
                "seed",
                "raw",
                "ignore_eos",
                "prefer_backend",
            }
        )
        # A batching backend's greedy text depends on what else it was decoding
        # (docs/architecture.md): its answers never stand in for a one-at-a-time backend's.
        n_parallel = self.registry.state(model).n_parallel
        return cache_key(
            {**fields, "model": model, "policy": self.policy.version, "n_parallel": n_parallel}
        )

    # -- answering ---------------------------------------------------------------------------

    async def cached(self, plan: Plan) -> CachedAnswer | None:
        """The stored answer for ``plan``, if any (Redis trouble is a miss, counted)."""
        if plan.cache_key is None or self.cache is None:
            return None
        try:
            answer = await self.cache.get(plan.cache_key)
        except RedisError as exc:
            self.redis_failed("cache_get", exc)
            return None
        (self.metrics.cache_hits if answer else self.metrics.cache_misses).inc()
        return answer

    async def open(
        self, plan: Plan, chat: list[dict[str, str]] | None = None
    ) -> tuple[UpstreamStream, list[FallbackAttempt]]:
        """A backend stream positioned at its first event, via the cascade.

        ``chat`` sends OpenAI chat messages to the backend's ``/v1/chat/completions`` instead of
        the prompt to ``/generate``.
        """
        req = plan.request
        native = req.model_dump(
            include={"prompt", "max_tokens", "temp", "top_p", "stop", "seed", "raw", "ignore_eos"}
        )

        async def open_one(spec: BackendSpec) -> UpstreamStream:
            path, parse, body = "/generate", parse_native, native
            if chat is not None:
                path, parse = "/v1/chat/completions", OpenAIChatParser(spec.model)
                body = {
                    "model": spec.model, "messages": chat, "max_tokens": req.max_tokens,
                    "temperature": req.temp, "top_p": req.top_p, "stop": req.stop,
                    "seed": req.seed, "stream": True,
                }  # fmt: skip
            return await open_stream(
                self.client,
                spec,
                body,
                request_id=plan.request_id,
                connect_timeout_s=self.settings.connect_timeout_s,
                first_token_timeout_s=self.settings.first_token_timeout_s,
                total_timeout_s=self.settings.total_timeout_s,
                path=path,
                parse=parse,
            )

        def on_failure(
            spec: BackendSpec, exc: UpstreamError, following: BackendSpec | None
        ) -> None:
            self.registry.report_failure(spec.model, exc.reason)
            to = following.model if following else "none"
            self.metrics.fallbacks.labels(spec.model, to, exc.reason).inc()
            log.warning(
                "backend failed",
                extra={
                    "fields": {
                        "request_id": plan.request_id,
                        "model_id": spec.model,
                        "reason": exc.reason,
                        "detail": exc.detail,
                    }
                },
            )

        stream, fallbacks = await run_cascade(plan.order, open_one, on_failure)
        self.registry.report_success(stream.spec.model)
        return stream, plan.escalations + fallbacks

    async def relay(
        self, plan: Plan, stream: UpstreamStream, fallbacks: list[FallbackAttempt]
    ) -> AsyncIterator[RouteEvent | TokenEvent | RouterStats]:
        """Route event, tokens, final stats; stores complete deterministic answers."""
        route = plan.route_event(stream.spec, cache_hit=False)
        yield route
        parts: list[str] = []
        first_at = last_at = 0.0
        try:
            async for event in stream.events():
                if isinstance(event, TokenEvent):
                    last_at = time.perf_counter()
                    first_at = first_at or last_at
                    parts.append(event.text)
                    yield event
                else:
                    if (
                        not event.tokens_per_s
                        and event.completion_tokens > 1
                        and last_at > first_at
                    ):
                        rate = (event.completion_tokens - 1) / (last_at - first_at)
                        event = event.model_copy(update={"tokens_per_s": round(rate, 3)})
                    stats = self._final(plan, route, event, first_at or None, fallbacks)
                    await self._store(plan, "".join(parts), stats)
                    yield stats
        finally:
            await stream.aclose()

    def _final(
        self,
        plan: Plan,
        route: RouteEvent,
        stats: GenerationStats,
        first_at: float | None,
        fallbacks: list[FallbackAttempt],
    ) -> RouterStats:
        now = time.perf_counter()
        return RouterStats(
            **route.model_dump(),
            finish_reason=stats.finish_reason,
            prompt_tokens=stats.prompt_tokens,
            completion_tokens=stats.completion_tokens,
            ttft_s=round((first_at or now) - plan.started, 6),
            latency_s=round(now - plan.started, 6),
            tokens_per_s=stats.tokens_per_s,
            fallbacks=fallbacks,
        )

    async def _store(self, plan: Plan, text: str, stats: RouterStats) -> None:
        if (
            plan.cache_key is None
            or self.cache is None
            or stats.finish_reason not in ("stop", "length")
        ):
            return
        answer = CachedAnswer(
            text=text, stats=stats.model_dump(), meta={"model": stats.model}, created_at=time.time()
        )
        try:
            await self.cache.put(plan.cache_key, answer)
        except RedisError as exc:
            self.redis_failed("cache_put", exc)

    async def replay(
        self, plan: Plan, answer: CachedAnswer
    ) -> AsyncIterator[RouteEvent | TokenEvent | RouterStats]:
        """A cached answer in the same event shape, marked ``cache_hit``."""
        spec = self.registry.spec(answer.stats["model"])
        route = plan.route_event(spec, cache_hit=True)
        yield route
        if answer.text:
            yield TokenEvent(text=answer.text, index=0)
        now = time.perf_counter()
        stored = RouterStats.model_validate(answer.stats)
        yield stored.model_copy(
            update={
                **route.model_dump(),
                "ttft_s": round(now - plan.started, 6),
                "latency_s": round(now - plan.started, 6),
                "fallbacks": [],
            }
        )

    # -- bookkeeping -------------------------------------------------------------------------

    def redis_failed(self, op: str, exc: Exception) -> None:
        """Count and log a Redis failure (the caller decides whether to go on)."""
        self.metrics.redis_errors.labels(op).inc()
        log.warning("redis unavailable", extra={"fields": {"op": op, "error": str(exc)}})

    def record(
        self,
        caller: str,
        plan: Plan | None,
        stats: RouterStats | None,
        status: str,
        req: RouterGenerateRequest,
    ) -> None:
        """Metrics, the per-caller last-request stats, and the request's one log line."""
        self.metrics.requests.labels(status).inc()
        fields: dict[str, Any] = {
            "request_id": plan.request_id if plan else None,
            "prompt_hash": prompt_hash(req.prompt),
            "status": status,
        }
        if stats is not None:
            cache_hit = "true" if stats.cache_hit else "false"
            self.metrics.model_selected.labels(stats.model).inc()
            self.metrics.latency.labels(stats.model, cache_hit).observe(stats.latency_s)
            self.metrics.ttft.labels(stats.model).observe(stats.ttft_s)
            summary = {
                "model_id": stats.model,
                "backend": stats.backend,
                "host": stats.host,
                "confidence": stats.confidence,
                "probabilities": stats.probabilities,
                "rationale": stats.rationale,
                "contributions": stats.contributions,
                "policy": stats.policy,
                "policy_version": self.policy.version if stats.policy != "forced" else None,
                "latency_s": stats.latency_s,
                "ttft_s": stats.ttft_s,
                "tokens_per_s": stats.tokens_per_s,
                "completion_tokens": stats.completion_tokens,
                "prompt_tokens": stats.prompt_tokens,
                "cache_hit": stats.cache_hit,
                "fallbacks": [f.model_dump() for f in stats.fallbacks],
                "backend_fallback": stats.backend_fallback,
            }
            fields |= summary
            self._last[caller] = {"request_id": fields["request_id"], **summary}
            self._last.move_to_end(caller)
            while len(self._last) > LAST_STATS_KEEP:
                self._last.popitem(last=False)
        log.info("request", extra={"fields": fields})

    def last_stats(self, caller: str) -> dict[str, Any] | None:
        """The last answered request of ``caller``."""
        return self._last.get(caller)
