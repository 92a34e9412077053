"""The service contract, written once: requests, stream events and responses.

Used by the model service, the router, the bench client and (through OpenAPI) the UI.

Streaming ``/generate`` sends Server-Sent Events:

- ``event: token``  ``data: TokenEvent``       one per decoded text chunk, in order
- ``event: done``   ``data: GenerationStats``  exactly once, last, on success
- ``event: error``  ``data: ErrorEvent``       instead of ``done`` when generation failed mid-stream
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

FinishReason = Literal["stop", "length", "cancelled"]

MAX_STOP_SEQUENCES = 8


class GenerateRequest(BaseModel):
    """``POST /generate``: one completion of ``prompt``."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, description="The user prompt (never logged).")
    max_tokens: int = Field(
        default=128, ge=1, le=32768, description="Completion budget, 1..context length."
    )
    temp: float = Field(default=0.7, ge=0.0, le=2.0, description="0 = greedy (deterministic).")
    top_p: float = Field(default=0.95, gt=0.0, le=1.0, description="Nucleus sampling mass.")
    stop: list[str] = Field(
        default_factory=list,
        max_length=MAX_STOP_SEQUENCES,
        description="Strings that end the completion (not included in the text).",
    )
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1, description="Sampling seed.")
    stream: bool = Field(default=True, description="SSE stream (true) or one JSON object.")
    ignore_eos: bool = Field(
        default=False,
        description="Keep decoding past end-of-sequence until max_tokens (benchmarks).",
    )
    raw: bool = Field(
        default=False,
        description="Send the prompt as-is; by default instruct models get their chat template.",
    )

    @field_validator("stop", mode="before")
    @classmethod
    def _one_stop_string(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("stop")
    @classmethod
    def _no_empty_stop(cls, value: list[str]) -> list[str]:
        if any(not s for s in value):
            raise ValueError("stop strings must not be empty")
        return value


class TokenEvent(BaseModel):
    """One streamed chunk of completion text."""

    text: str
    index: int = Field(description="0-based position of this chunk in the stream.")


class GenerationStats(BaseModel):
    """What a finished generation reports (the final ``done`` event)."""

    model: str
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    ttft_s: float = Field(description="Request admitted → first token decoded, seconds.")
    latency_s: float = Field(description="Request admitted → last token, seconds.")
    tokens_per_s: float = Field(description="Decode rate: completion tokens after the first / s.")
    queue_s: float = Field(default=0.0, description="Time spent waiting for the engine, seconds.")


class GenerateResponse(GenerationStats):
    """``stream: false``: the whole completion with its stats."""

    text: str


class ErrorEvent(BaseModel):
    """An error that happened after the stream had started."""

    message: str
    code: str


class HealthResponse(BaseModel):
    """``GET /health`` of a model service."""

    status: Literal["ok", "loading", "failed"]
    model: str
    backend: Literal["cpu", "gpu"]
    device: str | None = None
    sha256: str | None = Field(default=None, description="First 12 hex digits of the file hash.")
    queue_depth: int = 0
    n_ctx: int | None = None
    n_parallel: int = Field(
        default=1,
        description="Requests decoded together; above 1, a greedy text can depend on the others.",
    )
    flash_attn: bool | None = Field(
        default=None, description="Whether llama.cpp's fused attention kernel is on."
    )
    detail: str | None = None


# -- the router's contract -------------------------------------------------------------------
#
# Streaming ``POST /generate`` on the router sends:
# - ``event: route``  ``data: RouteEvent``   first: which model answers, where, and why
# - ``event: token``  ``data: TokenEvent``   as the model produces them
# - ``event: done``   ``data: RouterStats``  last, on success
# - ``event: error``  ``data: ErrorEvent``   instead of ``done`` when the stream broke

PreferBackend = Literal["cpu", "gpu", "auto"]


class RouterGenerateRequest(GenerateRequest):
    """``POST /generate`` on the router."""

    prefer_backend: PreferBackend = Field(
        default="auto", description="Restrict to cpu or gpu backends (auto: any)."
    )
    model: str | None = Field(default=None, description="Force a model id (skips the policy).")
    cache: bool = Field(default=True, description="Use the response cache when deterministic.")


class RouteRequest(BaseModel):
    """``POST /route``: the decision the router would make, without generating."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, description="The prompt to route.")
    prefer_backend: PreferBackend = Field(
        default="auto", description="Restrict to cpu or gpu backends (auto: any)."
    )


class FallbackAttempt(BaseModel):
    """One move away from a model: which, to where, and why."""

    from_model: str
    to_model: str | None
    reason: str


class RouteEvent(BaseModel):
    """The router's decision, sent before the first token."""

    request_id: str
    model: str
    backend: Literal["cpu", "gpu"]
    host: str
    confidence: float
    probabilities: dict[str, float]
    rationale: str
    contributions: dict[str, float] = Field(default_factory=dict)
    policy: str
    forced: bool = False
    backend_fallback: bool = False
    cache_hit: bool = False


class RouteDecision(BaseModel):
    """``POST /route``'s answer: what the policy chose among the allowed healthy models, why,
    and where the request would go (``model`` differs from ``chosen`` after an escalation)."""

    model: str
    backend: Literal["cpu", "gpu"]
    host: str
    chosen: str = Field(description="The policy's own choice, before any escalation.")
    confidence: float
    confidence_threshold: float
    probabilities: dict[str, float]
    rationale: str
    contributions: dict[str, float]
    policy: str
    policy_version: str
    fallbacks: list[FallbackAttempt] = Field(default_factory=list)
    backend_fallback: bool = False


class RouterStats(RouteEvent):
    """The final event: the route, the model's stats, and what the router saw."""

    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    ttft_s: float = Field(description="Router received the request → first token sent.")
    latency_s: float = Field(description="Router received the request → done.")
    tokens_per_s: float
    fallbacks: list[FallbackAttempt] = Field(default_factory=list)
