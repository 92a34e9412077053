"""Routing labels: for each prompt, the model a router should pick at a given quality/latency
trade-off λ (``polyllm label``).

For prompt p and model m, ``utility = score(p, m) - λ · latency(p, m) / max_m' latency(p, m')``:
latency is normalised *per prompt* by the slowest distinct model's latency on it, so the
penalty lies in [0, λ] whatever the prompt's length, and λ reads as "how many points of score
the slowest answer must earn over the instant one". ``best_model`` is the argmax; ties (within
1e-9) go to the smaller model (the order m1 < m2 < m3 < m4). Only prompts scored for *every*
distinct model are labelled; ``judge`` prompts (score ``None``) are left out. Models that serve
another model's file (m5 → m4, ``data/collection.json`` "inherits") are not labelled
separately: they share that model's answers.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polyllm.training.scores import ScoreRecord

LABELS = Path("data/labels.jsonl.gz")
COLLECTION = Path("data/collection.json")
DEFAULT_LAMBDAS = (0.0, 0.1, 0.3)
MODEL_ORDER = ("m1", "m2", "m3", "m4", "m5")
_TIE = 1e-9


def labelled_models(collection: Path = COLLECTION, order: Sequence[str] = MODEL_ORDER) -> list[str]:
    """The distinct models, smallest first: ``order`` less the models that inherit answers."""
    inherits: Mapping[str, str] = {}
    if collection.exists():
        inherits = json.loads(collection.read_text(encoding="utf-8")).get("inherits", {})
    return [m for m in order if m not in inherits]


@dataclass(frozen=True)
class PromptOutcome:
    """Every distinct model's score and latency (seconds) on one prompt."""

    id: str
    category: str
    scores: dict[str, float]
    latencies: dict[str, float]

    def normalised_latency(self) -> dict[str, float]:
        """Latency over the prompt's slowest model's latency, in [0, 1]."""
        slowest = max(self.latencies.values())
        return {m: (t / slowest if slowest > 0 else 0.0) for m, t in self.latencies.items()}

    def best_model(self, lam: float, models: Sequence[str]) -> str:
        """argmax of score - λ·normalised latency; ties go to the earliest (smallest) model."""
        penalty = self.normalised_latency()
        best, best_utility = models[0], float("-inf")
        for model in models:
            utility = self.scores[model] - lam * penalty[model]
            if utility > best_utility + _TIE:
                best, best_utility = model, utility
        return best


def complete_outcomes(
    scores: Iterable[ScoreRecord],
    latencies: Mapping[tuple[str, str], float],
    models: Sequence[str],
) -> list[PromptOutcome]:
    """Outcomes of the prompts with a numeric score and a latency from every model in
    ``models``, sorted by id."""
    by_prompt: dict[str, dict[str, ScoreRecord]] = {}
    for record in scores:
        if record.score is not None and (record.id, record.model) in latencies:
            by_prompt.setdefault(record.id, {})[record.model] = record
    outcomes = []
    for pid, per_model in sorted(by_prompt.items()):
        if not all(m in per_model for m in models):
            continue
        outcomes.append(
            PromptOutcome(
                id=pid,
                category=per_model[models[0]].category,
                scores={m: float(per_model[m].score or 0.0) for m in models},
                latencies={m: latencies[(pid, m)] for m in models},
            )
        )
    return outcomes


def label_rows(
    outcomes: Iterable[PromptOutcome], lambdas: Sequence[float], models: Sequence[str]
) -> list[dict[str, Any]]:
    """One label row per prompt: per-model scores, latencies, normalised latencies, and the best
    model for each λ (keyed by ``str(λ)``)."""
    return [
        {
            "id": o.id,
            "category": o.category,
            "scores": o.scores,
            "latency_s": o.latencies,
            "norm_latency": o.normalised_latency(),
            "best": {str(lam): o.best_model(lam, models) for lam in lambdas},
        }
        for o in outcomes
    ]


@dataclass(frozen=True)
class PolicyResult:
    """Mean score and mean latency (s) when prompts are routed by one policy."""

    name: str
    quality: float
    latency_s: float


def evaluate_policies(
    outcomes: Sequence[PromptOutcome], lam: float, models: Sequence[str]
) -> list[PolicyResult]:
    """The oracle at λ (each prompt to its best model) next to always-m for each model."""
    if not outcomes:
        return []
    n = len(outcomes)
    picks = [o.best_model(lam, models) for o in outcomes]
    results = [
        PolicyResult(
            f"oracle λ={lam:g}",
            sum(o.scores[m] for o, m in zip(outcomes, picks, strict=True)) / n,
            sum(o.latencies[m] for o, m in zip(outcomes, picks, strict=True)) / n,
        )
    ]
    for model in models:
        results.append(
            PolicyResult(
                f"always-{model}",
                sum(o.scores[model] for o in outcomes) / n,
                sum(o.latencies[model] for o in outcomes) / n,
            )
        )
    return results


def label_distribution(
    outcomes: Sequence[PromptOutcome], lam: float, models: Sequence[str]
) -> Counter[str]:
    """How many prompts each model is best for at λ."""
    return Counter(o.best_model(lam, models) for o in outcomes)
