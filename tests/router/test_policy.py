"""The heuristic policy and the pieces around it: features, attempt order."""

from __future__ import annotations

from polyllm.router.backends import BackendSpec
from polyllm.router.cascade import attempt_order
from polyllm.router.features import extract
from polyllm.router.policy import Candidate, Decision
from polyllm.router.policy.heuristic import HeuristicPolicy

CANDIDATES = [Candidate("m1", 1), Candidate("m2", 2), Candidate("m3", 3), Candidate("m4", 4)]


def decide(prompt: str, candidates: list[Candidate] = CANDIDATES) -> Decision:
    return HeuristicPolicy().decide(prompt, candidates)


def test_features_see_code_math_and_reasoning() -> None:
    f = extract("Explain why this Python function fails:\n```def f(x): return x/0```")
    assert f.has_code and f.reasoning_cues >= 1 and f.lines == 2
    assert extract("What is 12 * 7?").has_math
    chat = extract("Hello there, how are you today")
    assert not (chat.has_code or chat.has_math or chat.reasoning_cues)


def test_chit_chat_goes_small_and_code_goes_big() -> None:
    assert decide("Hello there, how are you today").model == "m1"
    hard = decide("Write a Python function that parses JSON and explain why it is correct.")
    assert hard.model in ("m3", "m4")


def test_probabilities_cover_the_candidates_and_the_choice_is_the_likeliest() -> None:
    decision = decide("Solve 3x + 5 = 20 step by step.")
    assert set(decision.probabilities) == {"m1", "m2", "m3", "m4"}
    assert abs(sum(decision.probabilities.values()) - 1) < 1e-9
    assert decision.confidence == max(decision.probabilities.values())
    assert decision.probabilities[decision.model] == decision.confidence
    assert decision.contributions["has_math"] > 0
    assert "has_math" in decision.rationale


def test_only_the_candidates_given_can_be_chosen() -> None:
    decision = decide("Write a Python class for a stack.", [Candidate("m1", 1), Candidate("m2", 2)])
    assert decision.model == "m2"
    assert set(decision.probabilities) == {"m1", "m2"}


def spec(model: str, tier: int) -> BackendSpec:
    return BackendSpec(
        model, f"http://127.0.0.1:81{tier:02d}", "cpu", "cpu-node-1", tier, float(tier)
    )


def test_attempt_order_goes_up_in_size_and_is_bounded() -> None:
    available = [spec("m1", 1), spec("m2", 2), spec("m4", 4), spec("m5", 5)]
    order = attempt_order(available[1], available, max_attempts=3)
    assert [s.model for s in order] == ["m2", "m4", "m5"]
    assert [s.model for s in attempt_order(available[3], available, 3)] == ["m5"]
