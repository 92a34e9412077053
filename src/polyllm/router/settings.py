"""Settings of the router: env vars and CLI flags come from this one class."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings

from polyllm.common.settings import LogLevel, service_settings_config


class RouterSettings(BaseSettings):
    """How the router reaches its backends, Redis, and what it lets callers do."""

    model_config = service_settings_config("polyllm serve-router")

    host: str = Field(default="127.0.0.1", description="Listen address.")
    port: int = Field(default=8000, ge=1, le=65535, description="Listen port.")
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0", description="Redis for the cache and the rate limiter."
    )
    redis_timeout_s: float = Field(
        default=1.0, gt=0, le=30, description="Connect/command/pool-wait timeout for Redis."
    )
    redis_max_connections: int = Field(default=64, ge=1, le=10_000, description="Redis pool size.")
    registry: str | None = Field(
        default=None,
        validation_alias=AliasChoices("registry", "polyllm_registry"),
        description="Model registry: JSON, or a path to a JSON/YAML file "
        "(default: m1..m5 on http://127.0.0.1:8101..8105).",
    )
    policy: str = Field(default="learned", description="Routing policy: learned or heuristic.")
    router_model: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("router_model", "polyllm_router_model"),
        description="The learned policy's router_model.txt, its sidecar files beside it "
        "(default: the model committed in the package).",
    )
    embedder_dir: Path = Field(
        default=Path("models/embedder"),
        validation_alias=AliasChoices("embedder_dir", "polyllm_embedder_dir"),
        description="The sentence embedder's files (`polyllm models embedder` fetches them).",
    )
    api_keys: str | None = Field(
        default=None,
        validation_alias=AliasChoices("api_keys", "polyllm_api_keys"),
        description="Comma-separated API keys (or sha256:<hex> of a key); enables auth.",
    )

    cache_enabled: bool = Field(default=True, description="Cache deterministic answers in Redis.")
    cache_ttl_s: int = Field(default=3600, ge=1, le=30 * 86400, description="Cache entry TTL.")

    rate_capacity: float = Field(
        default=60, gt=0, le=1e6, description="Token-bucket capacity (burst), requests."
    )
    rate_refill_per_s: float = Field(
        default=1.0, ge=0, le=1e6, description="Token-bucket refill, requests per second."
    )
    rate_limits: str | None = Field(
        default=None,
        description='Per-key limits as JSON: {"<key>": {"capacity": 10, "refill_per_s": 0.5}}.',
    )
    fail_open: bool = Field(
        default=True,
        description="Keep serving without cache and rate limits when Redis is down "
        "(false: answer 503 instead).",
    )

    max_body_bytes: int = Field(default=256 * 1024, ge=1024, description="Largest request body.")
    max_prompt_chars: int = Field(default=32_000, ge=1, description="Longest prompt accepted.")
    max_tokens_ceiling: int = Field(
        default=2048, ge=1, le=32768, description="Largest max_tokens any caller may ask for."
    )
    cors_origins: str = Field(
        default="http://127.0.0.1:8000,http://localhost:8000,http://localhost:5173",
        description="Comma-separated origins allowed to call the router from a browser.",
    )

    connect_timeout_s: float = Field(default=2.0, gt=0, le=60, description="Backend connect.")
    first_token_timeout_s: float = Field(
        default=60.0, gt=0, le=600, description="Request sent → first token from a backend."
    )
    total_timeout_s: float = Field(
        default=600.0, gt=0, le=3600, description="Whole generation from a backend."
    )
    max_attempts: int = Field(default=3, ge=1, le=5, description="Backends tried per request.")
    health_interval_s: float = Field(
        default=2.0, gt=0, le=60, description="Backend health polling period."
    )
    eject_after_failures: int = Field(
        default=3, ge=1, le=100, description="Consecutive failures that eject a backend."
    )
    eject_cooldown_s: float = Field(
        default=10.0, gt=0, le=600, description="How long an ejected backend is skipped."
    )
    confidence_threshold: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Below this confidence the request goes to the fallback tier instead "
        "(default: the policy's own, calibrated on validation for the learned policy).",
    )

    log_level: LogLevel = Field(default="INFO", description="Log level.")

    @model_validator(mode="after")
    def _timeouts_nest(self) -> RouterSettings:
        if self.first_token_timeout_s > self.total_timeout_s:
            raise ValueError("first_token_timeout_s must not exceed total_timeout_s")
        return self

    @property
    def cors_origin_list(self) -> list[str]:
        """The CORS allow-list (never a wildcard: the UI sends credentials)."""
        return [o.strip() for o in self.cors_origins.split(",") if o.strip() and o.strip() != "*"]

    # -- the web UI (api/ui.py) --------------------------------------------------------------

    ui_dir: Path = Field(
        default=Path("ui/dist"),
        description="The built web UI served at / (index.html and assets/; `make ui` builds it). "
        "A relative path is relative to the working directory.",
    )
    benchmarks_dir: Path = Field(
        default=Path("docs/benchmarks"),
        description="Committed benchmark plots (*.png) that the UI shows.",
    )
    prometheus_url: str = Field(
        default="http://127.0.0.1:9090",
        pattern=r"^https?://[^\s]+$",
        description="Prometheus behind the UI's live figures (a fixed allow-list of queries).",
    )
    prometheus_timeout_s: float = Field(
        default=3.0, gt=0, le=60, description="Timeout of one Prometheus query."
    )
