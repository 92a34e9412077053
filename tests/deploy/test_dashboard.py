"""The Grafana dashboard and the recording rules, checked without running anything: panel ids,
queries and data sources, GPU markers, metric names, and promtool on the Prometheus files.
(tests/monitoring/test_dashboard_live.py runs every query against a live stack.)"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from polyllm.inference.metrics import ModelMetrics
from polyllm.router.metrics import RouterMetrics
from tests.monitoring.queries import (
    DATASOURCES,
    GPU_RULE_GROUP,
    REPO,
    RULES,
    dashboard_queries,
    is_gpu_panel,
    load_dashboard,
    load_rule_groups,
    rule_queries,
)

PROMETHEUS_CONFIGS = [
    REPO / "deploy/prometheus/prometheus.yml",
    REPO / "deploy/prometheus/prometheus.compose.yml",
]
PROVIDER = REPO / "deploy/grafana/provisioning/dashboards/polyllm.yml"
COMPOSE = REPO / "deploy/compose.yaml"
# Exporters' metrics the rules read (node exporter on every host, DCGM on GPU hosts).
NODE_METRICS = {"node_cpu_seconds_total"}
GPU_METRICS = {"DCGM_FI_DEV_GPU_UTIL"}
# Raw gauges a panel may read directly: a recording rule would only copy them.
RAW_GAUGES = {"polyllm_model_queue_depth", "polyllm_router_backend_up"}
METRIC_NAME = re.compile(r"\b(?:polyllm_\w+|node_\w+|DCGM_\w+|[a-z_]+:[\w:]+)")


def exposed_names() -> set[str]:
    """Every sample name the router and a model service expose (``_total``, ``_bucket`` …),
    from the declared families: labelled ones have no samples before their first ``labels()``."""
    suffixes = {"counter": ["_total"], "gauge": [""], "histogram": ["_bucket", "_sum", "_count"]}
    registries = [RouterMetrics().registry, ModelMetrics("m1", "cpu").registry]
    return {
        family.name + suffix
        for r in registries
        for family in r.collect()
        for suffix in suffixes[family.type]
    }


def recorded_names() -> set[str]:
    return {rule["record"] for group in load_rule_groups() for rule in group["rules"]}


def names_in(expr: str) -> set[str]:
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    return set(METRIC_NAME.findall(without_strings))


def test_panel_ids_are_unique_and_every_panel_has_a_query_and_a_datasource() -> None:
    uid = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]["uid"]
    panels = load_dashboard()["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel["targets"], panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), (panel["title"], target)
            assert target["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]


def test_the_dashboard_has_the_panels_of_the_issue() -> None:
    titles = [p["title"] for p in load_dashboard()["panels"]]
    for wanted in [
        "Model selection distribution", "Request latency per model", "TTFT per model",
        "Tokens/sec per model", "Redis cache hit ratio", "Rate-limited requests",
        "Fallbacks by reason", "Queue depth per model", "Backends up",
        "CPU utilisation (host)", "GPU utilisation (host, DCGM)",
    ]:  # fmt: skip
        assert any(t.startswith(wanted) for t in titles), wanted


def test_gpu_panels_and_rules_are_marked_and_only_they_read_dcgm() -> None:
    gpu_rules = {
        rule["record"]
        for group in load_rule_groups()
        if group["name"] == GPU_RULE_GROUP
        for rule in group["rules"]
    }
    assert gpu_rules
    for group in load_rule_groups():
        for rule in group["rules"]:
            reads_gpu = bool(names_in(rule["expr"]) & GPU_METRICS)
            assert reads_gpu == (group["name"] == GPU_RULE_GROUP), rule["record"]
    panels = load_dashboard()["panels"]
    assert any(is_gpu_panel(p) for p in panels)
    for panel in panels:
        for target in panel["targets"]:
            reads_gpu = bool(names_in(target["expr"]) & (GPU_METRICS | gpu_rules))
            assert reads_gpu == is_gpu_panel(panel), panel["title"]


def test_every_metric_name_exists() -> None:
    known = exposed_names() | recorded_names() | NODE_METRICS | GPU_METRICS
    exprs = [q.expr for q in dashboard_queries()]
    exprs += [rule["expr"] for group in load_rule_groups() for rule in group["rules"]]
    for expr in exprs:
        names = names_in(expr)
        assert names, expr
        assert names <= known, (expr, names - known)


def test_panels_read_the_recording_rules_and_every_rule_is_read() -> None:
    recorded = recorded_names()
    read = set[str]()
    for query in dashboard_queries():
        names = names_in(query.expr)
        assert names & recorded or names <= RAW_GAUGES, (query.where, names)
        read |= names
    for group in load_rule_groups():
        for rule in group["rules"]:
            read |= names_in(rule["expr"])
    assert recorded <= read, recorded - read


def test_rule_queries_cover_every_rule() -> None:
    assert len(rule_queries()) == sum(len(g["rules"]) for g in load_rule_groups())


def test_compose_mounts_the_rules_and_the_dashboards() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    assert (
        "./prometheus/rules.yml:/etc/prometheus/rules.yml:ro" in services["prometheus"]["volumes"]
    )
    grafana = services["grafana"]["volumes"]
    provider = yaml.safe_load(PROVIDER.read_text())["providers"][0]
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in grafana
    assert provider["type"] == "file"
    for config in PROMETHEUS_CONFIGS:
        assert yaml.safe_load(config.read_text())["rule_files"] == [RULES.name]


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed (Debian package prometheus)")
    return path


def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("config", PROMETHEUS_CONFIGS, ids=lambda p: Path(p).name)
def test_promtool_accepts_the_config(config: Path) -> None:
    result = subprocess.run(
        [promtool(), "check", "config", str(config)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout + result.stderr
