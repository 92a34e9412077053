"""``polyllm train``: fit the learned router (LightGBM multiclass) on the labelled prompts.

Inputs: the labels (every distinct model's score and calibrated latency per prompt,
``data/labels.jsonl.gz``), the built dataset (prompt text and split by id). The class of a prompt
is its best model at λ (score - λ · normalised latency, ties to the smaller model). Everything is
seeded and single-threaded, so retraining on the same data writes the same files.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
from numpy.typing import NDArray

from polyllm.router.embedding import StaticEmbedder
from polyllm.router.features import FEATURES_VERSION, Featurizer, Pca
from polyllm.router.policy.learned import FEATURES_FILE, META_FILE, MODEL_FILE, TrainedRouter
from polyllm.training.dataset import load_dataset
from polyllm.training.labels import PromptOutcome
from polyllm.training.scores import read_jsonl

ARTIFACT_VERSION = 1
PCA_DIMS = 10
DEFAULT_LAMBDA = 0.3
THRESHOLDS = tuple(round(t, 2) for t in np.arange(0.0, 0.95, 0.05))
NUM_LEAVES = (4, 8, 16)
MIN_DATA_IN_LEAF = (5, 15)
TARGETS = ("hard", "balanced", "soft")
"""How prompts become training rows: ``hard`` = one row for the best model; ``balanced`` = the
same, weighted by inverse class frequency; ``soft`` = one row per model, weighted by the softmax
of the models' utilities at temperature :data:`SOFT_TEMPERATURE` (a model nearly as good as the
best still counts, and a prompt that every model fails teaches little beyond speed)."""
SOFT_TEMPERATURE = 0.1

Matrix = NDArray[np.float64]


@dataclass(frozen=True)
class Example:
    """One labelled prompt: its text, split and every model's outcome."""

    prompt: str
    split: str
    outcome: PromptOutcome


def load_examples(labels: Path, dataset: Path) -> list[Example]:
    """The labelled prompts found in the built dataset, in id order."""
    records = {r.id: r for r in load_dataset(dataset)}
    examples = []
    for row in read_jsonl(labels):
        record = records.get(row["id"])
        if record is None:
            continue  # answered before a rebuild dropped the prompt
        outcome = PromptOutcome(row["id"], row["category"], row["scores"], row["latency_s"])
        examples.append(Example(record.prompt, record.split, outcome))
    return examples


def split(examples: Sequence[Example], name: str) -> list[Example]:
    """The examples of one split."""
    return [e for e in examples if e.split == name]


def data_hash(examples: Sequence[Example]) -> str:
    """sha256 over what training sees (ids, splits, scores, latencies), order-independent."""
    digest = hashlib.sha256()
    for e in sorted(examples, key=lambda e: e.outcome.id):
        o = e.outcome
        digest.update(json.dumps([o.id, e.split, o.scores, o.latencies], sort_keys=True).encode())
    return digest.hexdigest()


def utility(outcome: PromptOutcome, model: str, lam: float) -> float:
    """What routing ``outcome``'s prompt to ``model`` is worth at λ (the label's objective)."""
    return outcome.scores[model] - lam * outcome.normalised_latency()[model]


def mean_utility(examples: Sequence[Example], picks: Sequence[str], lam: float) -> float:
    """Mean utility of routing each example to its pick."""
    pairs = zip(examples, picks, strict=True)
    return float(np.mean([utility(e.outcome, m, lam) for e, m in pairs]))


def cascade(proba: Matrix, classes: Sequence[str], threshold: float, fallback: str) -> list[str]:
    """Each row's likeliest class, or ``fallback`` when that probability is under ``threshold``
    (what the router does with an unsure decision)."""
    return [classes[int(row.argmax())] if row.max() >= threshold else fallback for row in proba]


def _params(num_leaves: int, min_data_in_leaf: int, classes: int, seed: int) -> dict[str, Any]:
    return {
        "objective": "multiclass",
        "num_class": classes,
        "learning_rate": 0.05,
        "num_leaves": num_leaves,
        "min_data_in_leaf": min_data_in_leaf,
        "lambda_l2": 1.0,
        "feature_fraction": 0.8,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": 1,
        "verbosity": -1,
    }


def training_rows(
    x: Matrix, examples: Sequence[Example], classes: Sequence[str], lam: float, target: str
) -> tuple[Matrix, NDArray[np.int64], NDArray[np.float64]]:
    """Features, class and weight of each training row for a :data:`TARGETS` mode."""
    if target == "soft":
        u = np.array([[utility(e.outcome, m, lam) for m in classes] for e in examples])
        p = np.exp((u - u.max(axis=1, keepdims=True)) / SOFT_TEMPERATURE)
        p /= p.sum(axis=1, keepdims=True)
        y = np.tile(np.arange(len(classes)), len(examples))
        return np.repeat(x, len(classes), axis=0), y, p.ravel()
    y = np.array([classes.index(e.outcome.best_model(lam, classes)) for e in examples])
    if target == "hard":
        return x, y, np.ones(len(y))
    counts = np.bincount(y, minlength=len(classes)).astype(float)
    per_class = len(y) / (len(classes) * np.maximum(counts, 1))
    return x, y, per_class[y]


@dataclass
class Fit:
    """A trained booster and how it was chosen."""

    booster: lgb.Booster
    params: dict[str, Any]
    target: str
    rounds: int
    val_utility: float


def fit(
    x_train: Matrix,
    train: Sequence[Example],
    x_val: Matrix,
    val: Sequence[Example],
    classes: Sequence[str],
    lam: float,
    seed: int,
) -> Fit:
    """Grid-search the hyper-parameters and the training target on the validation split's
    routing utility; the number of rounds per setting by early stopping on validation
    log-loss."""
    y_val = np.array([classes.index(e.outcome.best_model(lam, classes)) for e in val])
    best: Fit | None = None
    for leaves, min_leaf, target in itertools.product(NUM_LEAVES, MIN_DATA_IN_LEAF, TARGETS):
        params = _params(leaves, min_leaf, len(classes), seed)
        x, y, w = training_rows(x_train, train, classes, lam, target)
        train_set = lgb.Dataset(x, y, weight=w, free_raw_data=False)
        val_set = lgb.Dataset(x_val, y_val, reference=train_set)
        booster = lgb.train(
            params,
            train_set,
            num_boost_round=400,
            valid_sets=[val_set],
            callbacks=[lgb.early_stopping(30, verbose=False)],
        )
        proba = np.asarray(booster.predict(x_val, num_iteration=booster.best_iteration))
        picks = [classes[int(i)] for i in proba.argmax(axis=1)]
        score = mean_utility(val, picks, lam)
        if best is None or score > best.val_utility + 1e-12:
            best = Fit(booster, params, target, booster.best_iteration, score)
    assert best is not None
    return best


def calibrate_threshold(
    proba: Matrix, val: Sequence[Example], classes: Sequence[str], lam: float
) -> float:
    """The confidence threshold with the best validation utility when unsure decisions go to
    the fallback tier (the biggest class; ties → the lowest threshold)."""
    scores = {
        t: mean_utility(val, cascade(proba, classes, t, classes[-1]), lam) for t in THRESHOLDS
    }
    best = max(scores.values())
    return min(t for t, s in scores.items() if s >= best - 1e-12)


def train_router(
    examples: Sequence[Example],
    embedder: StaticEmbedder,
    out_dir: Path,
    lam: float = DEFAULT_LAMBDA,
    seed: int = 0,
    classes: Sequence[str] = ("m1", "m2", "m3", "m4"),
    inherits: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Fit on the train split, choose on validation, write the three files into ``out_dir``;
    returns the metadata written."""
    train, val = split(examples, "train"), split(examples, "validation")
    if len(train) < 20 or len(val) < 5:
        raise ValueError(
            f"too few labelled prompts to train: {len(train)} train, {len(val)} validation "
            "(need ≥ 20 and ≥ 5); collect and label more answers first"
        )
    pca = Pca.fit(np.stack([embedder.embed(e.prompt) for e in train]), PCA_DIMS)
    featurizer = Featurizer(embedder, pca)
    x_train = featurizer.matrix([e.prompt for e in train])
    x_val = featurizer.matrix([e.prompt for e in val])
    y_train = [e.outcome.best_model(lam, classes) for e in train]
    chosen = fit(x_train, train, x_val, val, classes, lam, seed)
    proba = np.asarray(chosen.booster.predict(x_val, num_iteration=chosen.rounds))
    threshold = calibrate_threshold(proba, val, classes, lam)
    picks = [classes[int(i)] for i in proba.argmax(axis=1)]
    meta = {
        "version": ARTIFACT_VERSION,
        "data_sha256": data_hash(examples),
        "lambda": lam,
        "seed": seed,
        "classes": list(classes),
        "inherits": inherits or {},
        "features": list(featurizer.names),
        "features_version": FEATURES_VERSION,
        "lightgbm": lgb.__version__,
        "params": {**chosen.params, "target": chosen.target},
        "rounds": chosen.rounds,
        "confidence_threshold": threshold,
        "counts": {s: len(split(examples, s)) for s in ("train", "validation", "test")},
        "train_labels": dict(sorted(Counter(y_train).items())),
        "validation": {
            "utility": round(chosen.val_utility, 4),
            "accuracy": round(
                float(
                    np.mean(
                        [
                            p == e.outcome.best_model(lam, classes)
                            for p, e in zip(picks, val, strict=True)
                        ]
                    )
                ),
                4,
            ),
            "quality": round(
                float(np.mean([e.outcome.scores[p] for p, e in zip(picks, val, strict=True)])), 4
            ),
        },
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    chosen.booster.save_model(str(out_dir / MODEL_FILE), num_iteration=chosen.rounds)
    spec = {
        "features_version": FEATURES_VERSION,
        "names": list(featurizer.names),
        "classes": list(classes),
        "pca": pca.to_json(),
    }
    (out_dir / FEATURES_FILE).write_text(json.dumps(spec) + "\n", encoding="utf-8")
    (out_dir / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta


def load_trained(out_dir: Path, embedder_dir: Path) -> TrainedRouter:
    """The router as the running service loads it."""
    return TrainedRouter.load(out_dir, embedder_dir)
