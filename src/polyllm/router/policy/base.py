"""The routing-policy interface: features and candidates in, a decision out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

from polyllm.router.features import PromptFeatures


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

    @abstractmethod
    async def decide(self, features: PromptFeatures, candidates: Sequence[Candidate]) -> Decision:
        """Pick one of ``candidates`` (never empty) for a prompt with ``features``."""


def normalise(scores: dict[str, float]) -> dict[str, float]:
    """Scale non-negative scores to probabilities that sum to 1."""
    total = sum(scores.values())
    if total <= 0:
        return {m: 1 / len(scores) for m in scores}
    return {m: s / total for m, s in scores.items()}
