"""The routing-policy interface: a prompt and the allowed candidates in, a decision out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Candidate:
    """A model the policy may choose: its id and size tier (1 = smallest)."""

    model: str
    tier: int


@dataclass(frozen=True)
class Decision:
    """Which model should answer, how sure the policy is, and why."""

    model: str
    confidence: float
    probabilities: dict[str, float]
    rationale: str
    contributions: dict[str, float] = field(default_factory=dict)
    """Feature → how much it pushed the choice (sign: towards bigger models)."""


class RoutingPolicy(ABC):
    """Chooses a model for a prompt. Implementations keep this one signature."""

    name: str = "abstract"
    version: str = "0"
    """Part of the answer cache key: a new policy never serves an old policy's cached routes."""
    confidence_threshold: float = 0.5
    """Below this confidence the router sends the request to the fallback tier instead."""

    @abstractmethod
    def decide(self, prompt: str, candidates: Sequence[Candidate]) -> Decision:
        """Pick one of ``candidates`` (never empty; healthy and allowed) for ``prompt``.

        Synchronous and fast (a millisecond or two): the router calls it on its event loop.
        """


def normalise(scores: dict[str, float]) -> dict[str, float]:
    """Scale non-negative scores to probabilities that sum to 1."""
    total = sum(scores.values())
    if total <= 0:
        return {m: 1 / len(scores) for m in scores}
    return {m: s / total for m, s in scores.items()}
