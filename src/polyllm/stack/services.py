"""What `polyllm up` starts: one :class:`ServiceSpec` per service, built from the stack config."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from polyllm.stack.config import StackConfig


class StackError(RuntimeError):
    """Something `polyllm up/down/status` cannot do; the message says what and how to fix it."""


# The Debian package that provides each external binary (scripts/bootstrap.sh installs them).
PACKAGES = {
    "redis-server": "redis-server",
    "prometheus": "prometheus",
    "prometheus-node-exporter": "prometheus-node-exporter",
}


@dataclass(frozen=True)
class ServiceSpec:
    """One supervised process: how to start it, where it listens, how to tell it is healthy.

    ``probe_path`` is the HTTP path that answers 200 when healthy (None: a Redis PING).
    ``marker`` is a piece of the process's command line, so a recycled pid is never mistaken for
    the service.
    """

    name: str
    host: str
    port: int
    argv: tuple[str, ...]
    probe_path: str | None
    marker: str
    env: Mapping[str, str] = field(default_factory=dict)
    nice: int = 0

    @property
    def url(self) -> str:
        """Where clients reach it."""
        scheme = "redis" if self.probe_path is None else "http"
        suffix = "/0" if self.probe_path is None else ""
        return f"{scheme}://{self.host}:{self.port}{suffix}"

    @property
    def is_model(self) -> bool:
        """Whether this is a model service (m1..m5)."""
        return self.marker == "serve-model"


def marker_for(name: str) -> str:
    """The command-line piece every process started for service ``name`` carries."""
    fixed = {
        "redis": "redis-server",
        "router": "serve-router",
        "prometheus": "prometheus",
        "node_exporter": "node-exporter",
    }
    return fixed.get(name, "serve-model")


def probe_path_for(name: str) -> str | None:
    """The HTTP path that answers 200 when service ``name`` is healthy (None: a Redis PING)."""
    fixed = {"redis": None, "prometheus": "/-/ready", "node_exporter": "/metrics"}
    return fixed.get(name, "/health")


def resolve(base: Path, path: Path) -> Path:
    """``path`` as an absolute path; a relative one is relative to the config file's folder."""
    return (path if path.is_absolute() else base / path).resolve()


def selected_names(config: StackConfig, only: Sequence[str] | None) -> list[str]:
    """The services to start, in config order; ``only`` must name configured, enabled ones."""
    # models first, then the router that fronts them, then monitoring
    order = {"redis": 0, "router": 2, "prometheus": 3, "node_exporter": 4}
    names = sorted((name for name, _ in config.ports()), key=lambda n: order.get(n, 1))
    if not only:
        return names
    unknown = sorted(set(only) - set(names))
    if unknown:
        raise StackError(f"--only names unknown services {unknown}; known: {', '.join(names)}")
    return [n for n in names if n in only]


def _binary(name: str, required: bool) -> str:
    path = shutil.which(name)
    if path is None and not required:
        return name
    if path is None:
        package = PACKAGES[name]
        raise StackError(
            f"{name} is not installed: install the Debian package {package} "
            f"(apt-get install {package}; `make up` does it through scripts/bootstrap.sh as root)"
        )
    return path


def plan(
    config: StackConfig,
    base: Path,
    only: Sequence[str] | None = None,
    *,
    check: bool = True,
) -> list[ServiceSpec]:
    """The specs of the services to start (all enabled ones, or those named in ``only``).

    ``check`` makes a missing binary or Prometheus config an error (``up`` needs them; ``status``
    and ``down`` do not).

    The router's registry lists the selected models, or every configured model when ``only``
    names none (a router started alone then points at whatever already runs).
    """
    names = selected_names(config, only)
    run_dir = resolve(base, config.run_dir)
    host = config.host
    py = (sys.executable, "-m", "polyllm")
    specs: list[ServiceSpec] = []
    for name in names:
        if name == "redis":
            argv: tuple[str, ...] = (
                _binary("redis-server", check),
                *("--port", str(config.redis.port), "--bind", host),
                *("--dir", str(run_dir / "redis"), "--save", "", "--appendonly", "no"),
                *("--daemonize", "no"),
            )
            specs.append(ServiceSpec(name, host, config.redis.port, argv, None, marker_for(name)))
        elif name == "router":
            specs.append(_router_spec(config, names, py))
        elif name == "prometheus":
            specs.append(_prometheus_spec(config, base, run_dir, check))
        elif name == "node_exporter":
            port = config.node_exporter.port
            argv = (
                _binary("prometheus-node-exporter", check),
                f"--web.listen-address={host}:{port}",
            )
            specs.append(ServiceSpec(name, host, port, argv, "/metrics", marker_for(name)))
        else:
            specs.append(_model_spec(config, base, name, py))
    return specs


def _model_spec(config: StackConfig, base: Path, model: str, py: tuple[str, ...]) -> ServiceSpec:
    model_config = config.models[model]
    argv = (
        *py,
        *("serve-model", "--model", model, "--port", str(model_config.port)),
        *("--host", config.host, "--n-threads", str(config.threads(model))),
        *("--models-dir", str(resolve(base, config.models_dir))),
        *(("--use-gpu",) if model_config.use_gpu else ()),
        *(("--n-parallel", str(model_config.parallel)) if model_config.parallel > 1 else ()),
        *(("--n-ctx", str(model_config.n_ctx)) if model_config.n_ctx else ()),
    )
    return ServiceSpec(
        model,
        config.host,
        model_config.port,
        argv,
        "/health",
        marker_for(model),
        nice=model_config.nice,
    )


def _router_spec(config: StackConfig, names: list[str], py: tuple[str, ...]) -> ServiceSpec:
    registry = config.registry()
    chosen = [n for n in names if n in registry]
    if chosen:
        registry = {m: registry[m] for m in chosen}
    env = {"POLYLLM_REGISTRY": json.dumps(registry), **config.router_env()}
    port = config.router.port
    argv = (*py, "serve-router", "--port", str(port), "--host", config.host)
    return ServiceSpec("router", config.host, port, argv, "/health", marker_for("router"), env)


def _prometheus_spec(config: StackConfig, base: Path, run_dir: Path, check: bool) -> ServiceSpec:
    binary = _binary("prometheus", check)
    scrape_config = resolve(base, config.prometheus.config)
    if check and not scrape_config.is_file():
        raise StackError(f"prometheus config {scrape_config} does not exist (prometheus.config)")
    port = config.prometheus.port
    argv = (
        binary,
        f"--config.file={scrape_config}",
        f"--web.listen-address={config.host}:{port}",
        f"--storage.tsdb.path={run_dir / 'prometheus'}",
    )
    return ServiceSpec("prometheus", config.host, port, argv, "/-/ready", marker_for("prometheus"))
