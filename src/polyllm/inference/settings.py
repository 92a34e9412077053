"""Settings of one model service: env vars and CLI flags come from this one class."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings

from polyllm.common.settings import LogLevel, service_settings_config
from polyllm.models.catalog import CATALOG, ModelSpec, resolve_spec


def default_threads() -> int:
    """All cores: one service alone on a machine should use them (``make up`` divides them)."""
    return max(1, os.cpu_count() or 1)


class InferenceSettings(BaseSettings):
    """How one model service loads its model and admits requests."""

    model_config = service_settings_config("polyllm serve-model")

    model_id: str = Field(
        default="m1",
        validation_alias=AliasChoices("model", "model_id"),
        description=f"Catalog id of the model to serve: one of {', '.join(CATALOG)}.",
    )
    model_path: Path | None = Field(
        default=None, description="GGUF file; default <models-dir>/<model-id>.gguf."
    )
    model_uri: str | None = Field(
        default=None,
        description="Where to fetch the file from when it is missing: https://, s3://, file://.",
    )
    models_dir: Path = Field(
        default=Path("models"),
        validation_alias=AliasChoices("models_dir", "polyllm_models_dir"),
        description="Directory of fetched models.",
    )
    host: str = Field(default="127.0.0.1", description="Listen address.")
    port: int = Field(default=8101, ge=1, le=65535, description="Listen port.")
    use_gpu: bool = Field(
        default=False, description="Offload all layers to the GPU; fails at start-up without one."
    )
    n_threads: int = Field(
        default_factory=default_threads, ge=1, le=256, description="llama.cpp decode threads."
    )
    n_ctx: int = Field(
        default=4096, ge=256, le=131072, description="Context window (capped at the model's)."
    )
    n_batch: int = Field(default=512, ge=16, le=8192, description="Prompt-processing batch size.")
    flash_attn: bool = Field(
        default=True,
        description=(
            "llama.cpp's fused attention kernel (as llama-server's 'auto' picks it): about 5% "
            "faster decode here; off reproduces texts generated before it was the default."
        ),
    )
    queue_max: int = Field(
        default=8,
        ge=0,
        le=1024,
        description="Requests that may wait behind the running ones; beyond, 503 + Retry-After.",
    )
    n_parallel: int = Field(
        default=1,
        ge=1,
        le=64,
        description=(
            "Sequences decoded together in one llama.cpp context (continuous batching); "
            "1 = one request at a time. The n_ctx cells are shared by the running sequences."
        ),
    )
    prefill_chunk: int = Field(
        default=128,
        ge=8,
        le=8192,
        description=(
            "With n_parallel > 1: prompt tokens processed per decode step while other sequences "
            "are generating (smaller = smoother running streams, slower first token)."
        ),
    )
    warmup: bool = Field(
        default=True,
        description="Generate a few tokens at start-up so /health means 'can generate'.",
    )
    log_level: LogLevel = Field(default="INFO", description="Log level.")

    @model_validator(mode="after")
    def _known_model(self) -> InferenceSettings:
        resolve_spec(self.model_id)  # unknown id or a bad m5 override fails here
        return self

    @model_validator(mode="after")
    def _batch_holds_every_sequence(self) -> InferenceSettings:
        if self.n_batch < self.n_parallel:  # each decode step carries a token per sequence
            raise ValueError(f"n_batch ({self.n_batch}) must be at least n_parallel")
        return self

    @property
    def spec(self) -> ModelSpec:
        """The catalog entry of the served model."""
        return resolve_spec(self.model_id)

    @property
    def resolved_model_path(self) -> Path:
        """``model_path`` or the fetcher's default location."""
        return self.model_path or self.models_dir / f"{self.model_id}.gguf"

    @property
    def effective_n_ctx(self) -> int:
        """The context actually allocated: never more than the model was trained for."""
        return min(self.n_ctx, self.spec.context_length)
