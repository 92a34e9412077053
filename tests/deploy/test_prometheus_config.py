"""The two Prometheus scrape configs: the native stack's (127.0.0.1, polyllm.yaml's ports) and
Compose's (service names) have the same jobs, and both are valid for promtool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from polyllm.stack.config import StackConfig, load_stack_config

REPO = Path(__file__).resolve().parents[2]
NATIVE = REPO / "deploy/prometheus/prometheus.yml"
COMPOSED = REPO / "deploy/prometheus/prometheus.compose.yml"
COMPOSE = REPO / "deploy/compose.yaml"
JOBS = ["router", "models", "node", "dcgm"]
DCGM_PORT = 9400


@pytest.fixture(scope="module")
def stack() -> StackConfig:
    return load_stack_config(REPO / "polyllm.yaml")


def load(path: Path) -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(path.read_text())
    return config


def jobs(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {job["job_name"]: job for job in config["scrape_configs"]}


def targets(job: dict[str, Any]) -> list[tuple[str, int, dict[str, str]]]:
    """(host, port, labels) of every static target of a job."""
    out = []
    for group in job["static_configs"]:
        for target in group["targets"]:
            host, _, port = target.rpartition(":")
            out.append((host, int(port), group.get("labels", {})))
    return out


def without_targets(job: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in job.items() if k != "static_configs"}


def test_native_stack_uses_this_config(stack: StackConfig) -> None:
    assert REPO / stack.prometheus.config == NATIVE


def test_both_configs_have_the_same_jobs_and_settings() -> None:
    native, composed = load(NATIVE), load(COMPOSED)
    assert native["global"] == composed["global"]
    assert native["global"]["scrape_interval"] == "5s"
    assert list(jobs(native)) == list(jobs(composed)) == JOBS
    for name in JOBS:
        native_job, composed_job = jobs(native)[name], jobs(composed)[name]
        assert without_targets(native_job) == without_targets(composed_job), name
        # Same ports and labels, in the same order; only the hosts differ.
        assert [(p, labels) for _, p, labels in targets(native_job)] == [
            (p, labels) for _, p, labels in targets(composed_job)
        ], name


def test_native_targets_are_the_ports_of_polyllm_yaml(stack: StackConfig) -> None:
    native = jobs(load(NATIVE))
    assert targets(native["router"]) == [(stack.host, stack.router.port, {})]
    assert targets(native["node"]) == [(stack.host, stack.node_exporter.port, {})]
    assert targets(native["dcgm"]) == [(stack.host, DCGM_PORT, {})]
    models = {labels["model"]: (host, port) for host, port, labels in targets(native["models"])}
    assert models == {m: (stack.host, c.port) for m, c in stack.models.items()}
    # The services label their own series with `model`: keep theirs, not `exported_model`.
    assert native["models"]["honor_labels"] is True


def test_compose_targets_are_its_services() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    composed = jobs(load(COMPOSED))
    assert targets(composed["router"])[0][0] == "router"
    assert targets(composed["node"])[0][0] == "node-exporter"
    for host, port, labels in targets(composed["models"]):
        assert host == labels["model"]
        assert services[host]["environment"]["PORT"] == str(port)
    for job in composed.values():
        for host, _, _ in targets(job):
            if host == "host.docker.internal":
                assert "host.docker.internal:host-gateway" in services["prometheus"]["extra_hosts"]
            else:
                assert host in services, f"{host} is no service of compose.yaml"


@pytest.mark.parametrize("config", [NATIVE, COMPOSED], ids=lambda p: p.name)
def test_promtool_accepts_the_config(config: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("no promtool on PATH (Debian package prometheus; `make test` installs it)")
    result = subprocess.run(
        [promtool, "check", "config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
