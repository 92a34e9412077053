"""Training the learned router: reproducible with a seed, the artifact loads in the router's
policy, features are the same offline and online, the policy explains itself."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from polyllm.models.embedder import EMBEDDER_DIR
from polyllm.router.embedding import StaticEmbedder
from polyllm.router.features import FEATURES_VERSION
from polyllm.router.policy.base import Candidate
from polyllm.router.policy.learned import (
    FEATURES_FILE,
    META_FILE,
    MODEL_FILE,
    LearnedPolicy,
    PolicyLoadError,
    TrainedRouter,
)
from polyllm.training.labels import PromptOutcome
from polyllm.training.router_eval import Evaluation, apgr, evaluate, render
from polyllm.training.router_train import Example, train_router

pytestmark = pytest.mark.skipif(
    not (EMBEDDER_DIR / "tokenizer.json").exists(),
    reason="no embedder in models/embedder: run `polyllm models embedder` (make test does)",
)
MODELS = ("m1", "m2", "m3", "m4")
CODE = [
    "Write a Python function that returns the {}th Fibonacci number.",
    "Implement a stack class in Python with push and pop; handle {} items.",
    "Fix this code: def f(x): return x[{}] + 1",
    "Write a SQL query that selects the top {} rows by price.",
    "Write a JavaScript function that sorts an array of {} numbers.",
]
CHAT = [
    "Hi! How are you doing today, friend number {}?",
    "Say hello to my {} cats.",
    "Thank you so much for the help, {} times over!",
    "What a lovely day it is, isn't it? Day {}.",
    "Good morning! Tell me a nice greeting number {}.",
]


def _example(prompt: str, split: str, best: str, i: int) -> Example:
    scores = {m: 1.0 if MODELS.index(m) >= MODELS.index(best) else 0.0 for m in MODELS}
    latencies = {m: 1.0 + 2.0 * MODELS.index(m) for m in MODELS}
    return Example(prompt, split, PromptOutcome(f"p{i}", "x", scores, latencies))


def _examples() -> list[Example]:
    rows = []
    for i in range(80):
        split = "train" if i < 56 else "validation" if i < 68 else "test"
        code = i % 2 == 0
        template = (CODE if code else CHAT)[(i // 2) % 5]
        rows.append(_example(template.format(i), split, "m4" if code else "m1", i))
    return rows


@pytest.fixture(scope="module")
def static() -> StaticEmbedder:
    return StaticEmbedder.load(EMBEDDER_DIR)


@pytest.fixture(scope="module")
def trained_dir(tmp_path_factory: pytest.TempPathFactory, static: StaticEmbedder) -> Path:
    out = tmp_path_factory.mktemp("router")
    train_router(_examples(), static, out, lam=0.1, seed=0, classes=MODELS, inherits={"m5": "m4"})
    return out


def test_training_is_reproducible_with_a_seed(
    trained_dir: Path, static: StaticEmbedder, tmp_path: Path
) -> None:
    train_router(
        _examples(), static, tmp_path, lam=0.1, seed=0, classes=MODELS, inherits={"m5": "m4"}
    )
    for name in (MODEL_FILE, FEATURES_FILE, META_FILE):
        assert (tmp_path / name).read_bytes() == (trained_dir / name).read_bytes(), name


def test_trained_model_routes_code_big_and_chat_small(trained_dir: Path) -> None:
    policy = LearnedPolicy(TrainedRouter.load(trained_dir, EMBEDDER_DIR))
    candidates = [Candidate(m, i + 1) for i, m in enumerate(MODELS)]
    code = policy.decide("Write a Python function that merges two sorted lists.", candidates)
    chat = policy.decide("Hello there! How is your day going?", candidates)
    assert code.model == "m4" and chat.model == "m1"
    assert code.confidence == max(code.probabilities.values())
    assert abs(sum(code.probabilities.values()) - 1) < 1e-9
    # the rationale names features in words with signed pushes toward the choice
    assert "toward m4" in code.rationale and code.contributions
    assert all(isinstance(v, float) for v in code.contributions.values())


def test_only_allowed_candidates_are_chosen_and_m5_stands_in_for_m4(trained_dir: Path) -> None:
    policy = LearnedPolicy(TrainedRouter.load(trained_dir, EMBEDDER_DIR))
    prompt = "Write a Python function that merges two sorted lists."
    small = policy.decide(prompt, [Candidate("m1", 1), Candidate("m2", 2)])
    assert small.model in ("m1", "m2") and set(small.probabilities) == {"m1", "m2"}
    big = policy.decide(prompt, [Candidate("m1", 1), Candidate("m5", 5)])
    assert big.model == "m5"


def test_offline_features_equal_the_policy_features(
    trained_dir: Path, static: StaticEmbedder
) -> None:
    trained = TrainedRouter.load(trained_dir, EMBEDDER_DIR)
    spec = json.loads((trained_dir / FEATURES_FILE).read_text())
    assert spec["features_version"] == FEATURES_VERSION
    prompt = "Solve 3x + 5 = 20 and explain why, step by step."
    offline = trained.featurizer.matrix([prompt])[0]
    assert np.array_equal(offline, trained.featurizer.vector(prompt))
    assert len(offline) == len(spec["names"])


def test_stale_or_missing_model_is_a_clear_error(trained_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(PolicyLoadError, match="polyllm train"):
        TrainedRouter.load(tmp_path, EMBEDDER_DIR)
    for name in (MODEL_FILE, FEATURES_FILE, META_FILE):
        (tmp_path / name).write_bytes((trained_dir / name).read_bytes())
    spec = json.loads((tmp_path / FEATURES_FILE).read_text())
    spec["features_version"] = FEATURES_VERSION - 1
    (tmp_path / FEATURES_FILE).write_text(json.dumps(spec))
    with pytest.raises(PolicyLoadError, match="feature code version"):
        TrainedRouter.load(tmp_path, EMBEDDER_DIR)


@pytest.fixture(scope="module")
def evaluation(trained_dir: Path) -> Evaluation:
    trained = TrainedRouter.load(trained_dir, EMBEDDER_DIR)
    return evaluate(_examples(), trained, trained.featurizer.embedder.embed)


def test_evaluation_compares_every_baseline(evaluation: Evaluation) -> None:
    names = [r.name for r in evaluation.results]
    assert names[:4] == ["always-m1", "always-m2", "always-m3", "always-m4"]
    assert any(n.startswith("kNN") for n in names) and "heuristic" in names
    by_name = {r.name: r for r in evaluation.results}
    assert by_name["always-m1"].pgr == 0 and by_name["always-m4"].pgr == 1
    # the signal is perfect here: the router matches the oracle
    oracle = next(r for r in evaluation.results if r.name.startswith("oracle"))
    assert by_name["LightGBM"].quality == oracle.quality == 1.0


def test_report_states_the_split_sizes_and_each_interval(
    evaluation: Evaluation, trained_dir: Path
) -> None:
    text = render(evaluation, json.loads((trained_dir / META_FILE).read_text()))
    assert "test split: 12 prompts (train 56, validation 12)" in text
    assert "data size: 56 training prompts for a 4-class problem" in text
    assert "One answer moves a policy's quality by 0.083" in text
    assert "- LightGBM: [" in text


def test_apgr_of_random_mixing_is_one_half() -> None:
    assert apgr([(0.5, 0.5)]) == pytest.approx(0.5)
    assert apgr([(0.2, 1.0)]) == pytest.approx(0.9)
