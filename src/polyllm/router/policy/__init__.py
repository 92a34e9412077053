"""Routing policies by name: the settings and the CLI choose from ``POLICIES``."""

from __future__ import annotations

from collections.abc import Callable

from polyllm.router.policy.base import Candidate, Decision, RoutingPolicy
from polyllm.router.policy.heuristic import HeuristicPolicy

POLICIES: dict[str, Callable[[], RoutingPolicy]] = {
    HeuristicPolicy.name: HeuristicPolicy,
}

__all__ = ["POLICIES", "Candidate", "Decision", "RoutingPolicy"]
