"""``POST /route`` on a real router process with the committed learned policy: the decision
without generating, its schema, escalation when unsure, never a model that is down, the same
probabilities as the policy computed offline, rate-limited like /generate."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from polyllm.common.schemas import RouteDecision
from polyllm.models.embedder import EMBEDDER_DIR
from polyllm.router.policy.base import Candidate
from polyllm.router.policy.learned import TRAINED_DIR, LearnedPolicy, TrainedRouter
from tests.redis_server import RedisServer
from tests.router.processes import Proc, fake_backend, registry_entry, router
from tests.waiting import wait_until

pytestmark = pytest.mark.skipif(
    not (EMBEDDER_DIR / "tokenizer.json").exists(),
    reason="no embedder in models/embedder: run `polyllm models embedder` (make test does)",
)
PROMPTS = [
    "Write a Python function that checks whether a string is a palindrome.",
    "Hello! How are you today?",
    "What is 17 * 23? Answer with only the number.",
    "Explain step by step why the sum of two odd numbers is even.",
    "Which planet is known as the Red Planet?",
]


def _stack(
    stack: ExitStack,
    tmp: Path,
    redis_url: str,
    modes: dict[str, str] | None = None,
    **settings: Any,
) -> Proc:
    modes = modes or {}
    registry = {}
    for tier, model in enumerate(("m1", "m2", "m3", "m4", "m5"), start=1):
        fake = stack.enter_context(fake_backend(tmp, model, modes.get(model, "ok")))
        registry[model] = registry_entry(fake.url, tier)
    return stack.enter_context(router(tmp, registry, redis_url, policy="learned", **settings))


def _route(proc: Proc, prompt: str, **body: Any) -> httpx.Response:
    return httpx.post(f"{proc.url}/route", json={"prompt": prompt, **body}, timeout=10)


def test_route_answers_the_decision_with_its_reasons(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    offline = LearnedPolicy(TrainedRouter.load(TRAINED_DIR, EMBEDDER_DIR))
    candidates = [Candidate(m, i) for i, m in enumerate(("m1", "m2", "m3", "m4"), start=1)]
    with ExitStack() as stack:
        proc = _stack(stack, tmp_path, redis_server.url, confidence_threshold=0)
        for prompt in PROMPTS:
            response = _route(proc, prompt)
            assert response.status_code == 200, response.text
            decision = RouteDecision.model_validate(response.json())
            assert decision.policy == "learned" and decision.model == decision.chosen
            assert decision.model in decision.probabilities and decision.rationale
            # the same features and probabilities as the policy computes offline
            expected = offline.decide(prompt, candidates)
            assert decision.model == expected.model
            for model, p in expected.probabilities.items():
                assert decision.probabilities[model] == pytest.approx(p, abs=1e-4)
        bad = httpx.post(f"{proc.url}/route", json={"prompt": ""}, timeout=10)
        assert bad.status_code == 422
        extra = httpx.post(f"{proc.url}/route", json={"prompt": "hi", "x": 1}, timeout=10)
        assert extra.status_code == 422


def test_low_confidence_escalates_to_the_fallback_tier(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    with ExitStack() as stack:
        proc = _stack(stack, tmp_path, redis_server.url, confidence_threshold=1.0)
        decision = RouteDecision.model_validate(_route(proc, PROMPTS[0]).json())
        assert decision.model == "m5" and decision.chosen != "m5"
        assert [f.reason for f in decision.fallbacks] == ["low_confidence"]
        escalated = proc.metric(
            "polyllm_router_fallbacks_total",
            from_model=decision.chosen, to_model="m5", reason="low_confidence",
        )  # fmt: skip
        assert escalated == 1


def test_a_down_backend_is_never_chosen(tmp_path: Path, redis_server: RedisServer) -> None:
    with ExitStack() as stack:
        proc = _stack(
            stack, tmp_path, redis_server.url, {"m4": "unhealthy", "m3": "unhealthy"},
            confidence_threshold=0,
        )  # fmt: skip

        def down() -> bool:
            backends = httpx.get(f"{proc.url}/health", timeout=5).json()["backends"]
            return backends["m3"] == backends["m4"] == "down"

        wait_until(down, "the router never saw m3 and m4 down")
        for prompt in PROMPTS:
            decision = RouteDecision.model_validate(_route(proc, prompt).json())
            assert decision.model in ("m1", "m2")
            assert set(decision.probabilities) <= {"m1", "m2"}


def test_route_is_rate_limited_like_generate(tmp_path: Path, redis_server: RedisServer) -> None:
    with ExitStack() as stack:
        proc = _stack(stack, tmp_path, redis_server.url, rate_capacity=2, rate_refill_per_s=0)
        codes = [_route(proc, "hello").status_code for _ in range(3)]
        assert codes == [200, 200, 429]


def test_generate_streams_the_learned_decision_first(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    with ExitStack() as stack:
        proc = _stack(stack, tmp_path, redis_server.url, confidence_threshold=0)
        body = {"prompt": PROMPTS[0], "max_tokens": 4, "stream": False}
        response = httpx.post(f"{proc.url}/generate", json=body, timeout=30)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["policy"] == "learned" and answer["rationale"]
        route = RouteDecision.model_validate(_route(proc, PROMPTS[0]).json())
        assert answer["model"] == route.model
        assert answer["probabilities"] == route.probabilities
        last = httpx.get(f"{proc.url}/last_request_stats", timeout=5).json()
        assert last["policy_version"] == route.policy_version
        assert last["contributions"] == route.contributions
