"""Routing policies by name: the settings choose one with :func:`make_policy`."""

from __future__ import annotations

from polyllm.router.policy.base import Candidate, Decision, RoutingPolicy
from polyllm.router.policy.heuristic import HeuristicPolicy
from polyllm.router.policy.learned import (
    MODEL_FILE,
    TRAINED_DIR,
    LearnedPolicy,
    PolicyLoadError,
    TrainedRouter,
)
from polyllm.router.settings import RouterSettings

POLICY_NAMES = (LearnedPolicy.name, HeuristicPolicy.name)


def make_policy(settings: RouterSettings) -> RoutingPolicy:
    """The policy ``settings`` name; raises :class:`PolicyLoadError` (a clear message) when it
    cannot be built."""
    if settings.policy == HeuristicPolicy.name:
        return HeuristicPolicy()
    if settings.policy == LearnedPolicy.name:
        model = settings.router_model or TRAINED_DIR / MODEL_FILE
        if model.name != MODEL_FILE:
            raise PolicyLoadError(f"router_model must name a {MODEL_FILE} file, not {model}")
        return LearnedPolicy(TrainedRouter.load(model.parent, settings.embedder_dir))
    raise PolicyLoadError(f"unknown policy {settings.policy!r}; known: {', '.join(POLICY_NAMES)}")


__all__ = [
    "POLICY_NAMES",
    "Candidate",
    "Decision",
    "PolicyLoadError",
    "RoutingPolicy",
    "make_policy",
]
