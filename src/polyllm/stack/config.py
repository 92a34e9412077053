"""The stack's one config file (``polyllm.yaml``): ports, threads, router settings."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from polyllm.models.catalog import CATALOG

DEFAULT_PATH = Path("polyllm.yaml")
STACK_ENV = "POLYLLM_STACK"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RedisConfig(_Strict):
    """Redis for the router's cache and rate limiter."""

    port: int = Field(default=6379, ge=1, le=65535)


class RouterConfig(_Strict):
    """The router: its port and any of its settings by env-var name."""

    port: int = Field(default=8000, ge=1, le=65535)
    settings: dict[str, str | int | float | bool] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_settings(self) -> RouterConfig:
        from polyllm.router.settings import RouterSettings

        known = {name.upper() for name in RouterSettings.model_fields} | {
            alias.upper()
            for field in RouterSettings.model_fields.values()
            if field.validation_alias is not None
            for alias in getattr(field.validation_alias, "choices", [])
            if isinstance(alias, str)
        }
        unknown = sorted(k for k in self.settings if k.upper() not in known)
        if unknown:
            raise ValueError(f"unknown router settings {unknown} (see polyllm serve-router --help)")
        return self


class ModelConfig(_Strict):
    """One model service."""

    port: int = Field(ge=1, le=65535)
    tier: int = Field(ge=1, le=5)
    cost: float = Field(gt=0)
    threads: int | Literal["auto"] = "auto"
    parallel: int = Field(default=1, ge=1, le=64)
    """Requests decoded together (``N_PARALLEL``, continuous batching); 1 = one at a time."""
    n_ctx: int | None = Field(default=None, ge=256)
    """Context window (``N_CTX``); None: the service's default. The running sequences share it."""
    nice: int = Field(default=0, ge=0, le=19)
    """How much lower this service's CPU priority is than the others' (Unix nice, 0 = equal)."""
    use_gpu: bool = False
    host: str = "cpu-node-1"


class PrometheusConfig(_Strict):
    """Prometheus with the project's scrape config."""

    enabled: bool = True
    port: int = Field(default=9090, ge=1, le=65535)
    config: Path = Path("deploy/prometheus/prometheus.yml")


class NodeExporterConfig(_Strict):
    """Host metrics (CPU) for Prometheus."""

    enabled: bool = True
    port: int = Field(default=9100, ge=1, le=65535)


class StackConfig(_Strict):
    """Everything `polyllm up` starts."""

    run_dir: Path = Path(".run")
    models_dir: Path = Path("models")
    host: str = "127.0.0.1"
    redis: RedisConfig = Field(default_factory=RedisConfig)
    router: RouterConfig = Field(default_factory=RouterConfig)
    models: dict[str, ModelConfig]
    prometheus: PrometheusConfig = Field(default_factory=PrometheusConfig)
    node_exporter: NodeExporterConfig = Field(default_factory=NodeExporterConfig)

    @model_validator(mode="after")
    def _consistent(self) -> StackConfig:
        unknown = [m for m in self.models if m not in CATALOG]
        if unknown:
            raise ValueError(f"unknown model ids {unknown}; known: {', '.join(CATALOG)}")
        ports = [p for _, p in self.ports()]
        duplicates = sorted({p for p in ports if ports.count(p) > 1})
        if duplicates:
            raise ValueError(f"ports used twice: {duplicates}")
        return self

    def ports(self) -> list[tuple[str, int]]:
        """(service, port) for everything that will listen."""
        out = [("redis", self.redis.port), ("router", self.router.port)]
        out += [(m, c.port) for m, c in self.models.items()]
        if self.prometheus.enabled:
            out.append(("prometheus", self.prometheus.port))
        if self.node_exporter.enabled:
            out.append(("node_exporter", self.node_exporter.port))
        return out

    def threads(self, model: str, cores: int | None = None) -> int:
        """llama.cpp threads for ``model``: "auto" is half the cores, at least 1."""
        value = self.models[model].threads
        if value != "auto":
            return value
        return max(1, (cores or os.cpu_count() or 1) // 2)

    def registry(self) -> dict[str, dict[str, Any]]:
        """The router's ``POLYLLM_REGISTRY`` for these model services."""
        return {
            m: {
                "url": f"http://{self.host}:{c.port}",
                "backend": "gpu" if c.use_gpu else "cpu",
                "host": c.host,
                "tier": c.tier,
                "cost": c.cost,
            }
            for m, c in self.models.items()
        }

    def router_env(self) -> dict[str, str]:
        """Env vars for the router process."""
        env = {k.upper(): str(v).lower() if isinstance(v, bool) else str(v)
               for k, v in self.router.settings.items()}  # fmt: skip
        return env | {"REDIS_URL": f"redis://{self.host}:{self.redis.port}/0"}


class StackConfigError(ValueError):
    """The config file is missing or invalid; the message says where."""


def load_stack_config(path: Path | None = None) -> StackConfig:
    """Read the stack config (``path``, else ``$POLYLLM_STACK``, else ``polyllm.yaml``)."""
    path = path or Path(os.environ.get(STACK_ENV, DEFAULT_PATH))
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise StackConfigError(f"cannot read {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise StackConfigError(f"{path} is not valid YAML: {exc}") from exc
    try:
        return StackConfig.model_validate(raw or {})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '(top)'}: {e['msg']}" for e in exc.errors()
        )
        raise StackConfigError(f"{path}: {problems}") from exc
