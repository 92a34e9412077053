"""A transparent baseline: a difficulty score from prompt cues picks a size tier."""

from __future__ import annotations

import math
from collections.abc import Sequence

from polyllm.router.features import extract
from polyllm.router.policy.base import Candidate, Decision, RoutingPolicy, normalise

# How much each cue adds to the difficulty (0 = the smallest model will do, 3 = the largest).
WEIGHTS = {
    "has_code": 2.0,
    "has_math": 1.5,
    "reasoning_cues": 0.75,  # per cue, at most two count
    "long_prompt": 0.5,  # over 200 tokens
    "very_long_prompt": 0.5,  # over 800 tokens, on top
    "short_answer": -0.5,
}
SHARPNESS = 1.5  # how quickly probability falls off with distance from the target tier


class HeuristicPolicy(RoutingPolicy):
    """Code, maths and reasoning cues push towards bigger models; a short answer format pulls
    back. Every contribution is reported, so the choice can be read off the rationale."""

    name = "heuristic"
    version = "heuristic-1"

    def decide(self, prompt: str, candidates: Sequence[Candidate]) -> Decision:
        features = extract(prompt)
        contributions = {
            "has_code": WEIGHTS["has_code"] * features.has_code,
            "has_math": WEIGHTS["has_math"] * features.has_math,
            "reasoning_cues": WEIGHTS["reasoning_cues"] * min(features.reasoning_cues, 2),
            "long_prompt": WEIGHTS["long_prompt"] * (features.tokens_in_prompt > 200),
            "very_long_prompt": WEIGHTS["very_long_prompt"] * (features.tokens_in_prompt > 800),
            "short_answer": WEIGHTS["short_answer"] * features.short_answer,
        }
        difficulty = min(3.0, max(0.0, sum(contributions.values())))
        tiers = sorted({c.tier for c in candidates})
        target = tiers[0] + difficulty * (tiers[-1] - tiers[0]) / 3 if len(tiers) > 1 else tiers[0]
        scores = {c.model: math.exp(-SHARPNESS * abs(c.tier - target)) for c in candidates}
        probabilities = normalise(scores)
        model = max(probabilities, key=lambda m: probabilities[m])
        cues = [f"{k} {v:+.2f}" for k, v in contributions.items() if v]
        rationale = (
            f"difficulty {difficulty:.2f}/3 from " + ", ".join(cues) if cues else "no cues: easy"
        ) + f" → tier {target:.1f} → {model}"
        return Decision(
            model=model,
            confidence=probabilities[model],
            probabilities=probabilities,
            rationale=rationale,
            contributions={k: v for k, v in contributions.items() if v},
        )
