"""Labels: completeness, tie-breaking to the smaller model, λ trading quality for latency, and
the oracle never below an always-one-model policy."""

from __future__ import annotations

import json
import random
from pathlib import Path

from polyllm.training.labels import (
    PromptOutcome,
    complete_outcomes,
    evaluate_policies,
    label_distribution,
    label_rows,
    labelled_models,
)
from polyllm.training.scores import ScoreRecord

MODELS = ["m1", "m2", "m3", "m4"]


def _outcome(scores: list[float], latencies: list[float], pid: str = "p") -> PromptOutcome:
    return PromptOutcome(
        pid,
        "math",
        dict(zip(MODELS, scores, strict=True)),
        dict(zip(MODELS, latencies, strict=True)),
    )


def test_ties_go_to_the_smaller_model() -> None:
    all_right = _outcome([1, 1, 1, 1], [4, 3, 2, 1])
    assert all_right.best_model(0.0, MODELS) == "m1"
    all_wrong = _outcome([0, 0, 0, 0], [1, 1, 1, 1])
    assert all_wrong.best_model(0.3, MODELS) == "m1"
    assert _outcome([0, 1, 1, 0], [1, 1, 1, 1]).best_model(0.0, MODELS) == "m2"


def test_lambda_trades_score_for_latency() -> None:
    outcome = _outcome([0.0, 0.8, 0.9, 1.0], [1.0, 2.0, 5.0, 10.0])
    assert outcome.best_model(0.0, MODELS) == "m4"
    # λ = 0.3: m2 0.8 - 0.06 = 0.74, m3 0.9 - 0.15 = 0.75, m4 1.0 - 0.3 = 0.70
    assert outcome.best_model(0.3, MODELS) == "m3"
    assert outcome.best_model(1.0, MODELS) == "m2"
    assert outcome.normalised_latency() == {"m1": 0.1, "m2": 0.2, "m3": 0.5, "m4": 1.0}


def test_only_prompts_scored_by_every_model_are_labelled() -> None:
    def rec(pid: str, model: str, value: float | None) -> ScoreRecord:
        return ScoreRecord(pid, model, "math", "numeric", value, None, None, "")

    scores = [rec("full", m, 1.0) for m in MODELS]
    scores += [rec("partial", m, 1.0) for m in MODELS[:3]]
    scores += [rec("judged", m, None) for m in MODELS]
    latencies = {(s.id, s.model): 1.0 for s in scores}
    outcomes = complete_outcomes(scores, latencies, MODELS)
    assert [o.id for o in outcomes] == ["full"]
    rows = label_rows(outcomes, [0.0, 0.3], MODELS)
    assert rows[0]["best"] == {"0.0": "m1", "0.3": "m1"}
    assert rows[0]["scores"] == {m: 1.0 for m in MODELS}


def test_oracle_beats_every_single_model() -> None:
    rng = random.Random(0)
    outcomes = [
        _outcome(
            [float(rng.random() < p) for p in (0.3, 0.5, 0.6, 0.8)],
            [rng.uniform(0.5, 2) * k for k in (1, 2, 4, 8)],
            f"p{i}",
        )
        for i in range(200)
    ]
    for lam in (0.0, 0.1, 0.3):
        oracle, *always = evaluate_policies(outcomes, lam, MODELS)
        utility = [r.quality for r in always]
        assert oracle.name.startswith("oracle")
        if lam == 0.0:
            assert all(oracle.quality >= u for u in utility)
        assert sum(label_distribution(outcomes, lam, MODELS).values()) == 200
    # a larger λ never makes the oracle slower
    fast = evaluate_policies(outcomes, 0.3, MODELS)[0]
    slow = evaluate_policies(outcomes, 0.0, MODELS)[0]
    assert fast.latency_s <= slow.latency_s


def test_models_that_inherit_answers_are_not_labelled(tmp_path: Path) -> None:
    collection = tmp_path / "collection.json"
    collection.write_text(json.dumps({"inherits": {"m5": "m4"}}))
    assert labelled_models(collection) == MODELS
