"""The PromQL of the dashboard and the recording rules, and which of it needs a GPU host.

GPU markers: a dashboard panel whose ``description`` starts with :data:`GPU_PANEL_MARK`, and
the rule group named :data:`GPU_RULE_GROUP`. Both read the NVIDIA DCGM exporter, which only
GPU hosts run; everything else must return data on a CPU-only stack.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy/grafana/dashboards/polyllm.json"
RULES = REPO / "deploy/prometheus/rules.yml"
DATASOURCES = REPO / "deploy/grafana/provisioning/datasources/prometheus.yml"
GPU_PANEL_MARK = "GPU (DCGM exporter)"
GPU_RULE_GROUP = "polyllm-gpu"


@dataclass(frozen=True)
class Query:
    """One PromQL expression, where it comes from, and whether it needs a GPU exporter."""

    where: str
    expr: str
    gpu: bool


def load_dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def load_rule_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = yaml.safe_load(RULES.read_text())["groups"]
    return groups


def is_gpu_panel(panel: dict[str, Any]) -> bool:
    return str(panel.get("description", "")).startswith(GPU_PANEL_MARK)


def dashboard_queries() -> list[Query]:
    """Every target expression of every panel."""
    return [
        Query(f"panel {panel['id']} {panel['title']!r} {target['refId']}", target["expr"],
              is_gpu_panel(panel))
        for panel in load_dashboard()["panels"]
        for target in panel["targets"]
    ]  # fmt: skip


def rule_queries() -> list[Query]:
    """Every recording rule, queried by its recorded name (and its static labels)."""
    queries = []
    for group in load_rule_groups():
        for rule in group["rules"]:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(rule.get("labels", {}).items()))
            selector = f"{rule['record']}{{{labels}}}" if labels else rule["record"]
            queries.append(Query(f"rule {selector}", selector, group["name"] == GPU_RULE_GROUP))
    return queries
