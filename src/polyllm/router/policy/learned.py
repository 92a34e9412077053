"""The learned policy: a LightGBM multiclass model over :mod:`polyllm.router.features`.

``polyllm train`` writes three files into a directory (committed under ``trained/`` so a fresh
clone routes without retraining): ``router_model.txt`` (the booster), ``router_features.json``
(feature names, feature-code version, the PCA of the embedding) and ``router_meta.json`` (data
hash, λ, validation metrics, the calibrated confidence threshold). The router refuses files that
are missing or were made for another feature-code version, with a message that says what to do.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from polyllm.router.embedding import StaticEmbedder
from polyllm.router.features import FEATURES_VERSION, Featurizer, Pca, human_name
from polyllm.router.policy.base import Candidate, Decision, RoutingPolicy, normalise

TRAINED_DIR = Path(__file__).parent / "trained"
MODEL_FILE = "router_model.txt"
FEATURES_FILE = "router_features.json"
META_FILE = "router_meta.json"
REASONS = 4
"""How many features the rationale names."""


class PolicyLoadError(ValueError):
    """The trained router cannot be used; the message names the file and the fix."""


@dataclass(frozen=True)
class TrainedRouter:
    """A trained model with everything needed to featurise a prompt the way it was trained."""

    booster: lgb.Booster
    featurizer: Featurizer
    classes: tuple[str, ...]
    meta: dict[str, Any]

    @classmethod
    def load(cls, directory: Path, embedder_dir: Path) -> TrainedRouter:
        """Load from ``directory``; the sentence embedder comes from ``embedder_dir``."""
        paths = [directory / name for name in (MODEL_FILE, FEATURES_FILE, META_FILE)]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise PolicyLoadError(
                f"no trained router: {', '.join(missing)} missing; run `polyllm train` "
                "or choose another policy (POLYLLM_POLICY=heuristic)"
            )
        spec = json.loads(paths[1].read_text(encoding="utf-8"))
        if spec.get("features_version") != FEATURES_VERSION:
            raise PolicyLoadError(
                f"{paths[1]} was trained with feature code version "
                f"{spec.get('features_version')}, this router computes version "
                f"{FEATURES_VERSION}; retrain with `polyllm train`"
            )
        if not (embedder_dir / "tokenizer.json").is_file():
            raise PolicyLoadError(
                f"the sentence embedder is missing from {embedder_dir}; "
                "run `polyllm models embedder` (make up and make test do it)"
            )
        featurizer = Featurizer(StaticEmbedder.load(embedder_dir), Pca.from_json(spec["pca"]))
        if list(featurizer.names) != spec["names"]:
            raise PolicyLoadError(f"{paths[1]} lists other features than this code computes")
        booster = lgb.Booster(model_file=str(paths[0]))
        meta = json.loads(paths[2].read_text(encoding="utf-8"))
        return cls(booster, featurizer, tuple(spec["classes"]), meta)

    def predict(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Class probabilities (n, classes) and contributions (n, classes, features + bias)."""
        x = np.atleast_2d(features)
        proba = np.asarray(self.booster.predict(x, num_threads=1))
        contrib = np.asarray(self.booster.predict(x, pred_contrib=True, num_threads=1))
        return proba, contrib.reshape(len(x), len(self.classes), -1)


class LearnedPolicy(RoutingPolicy):
    """Picks the allowed model with the highest predicted probability of being the best choice
    (probabilities renormalised over the candidates) and explains the choice with the features
    that pushed it most (LightGBM's per-feature contributions)."""

    name = "learned"

    def __init__(self, trained: TrainedRouter) -> None:
        self.trained = trained
        self.version = f"learned-{trained.meta['version']}-{trained.meta['data_sha256'][:8]}"
        self.confidence_threshold = float(trained.meta["confidence_threshold"])
        self.inherits: dict[str, str] = trained.meta.get("inherits", {})

    def decide(self, prompt: str, candidates: Sequence[Candidate]) -> Decision:
        x = self.trained.featurizer.vector(prompt)
        proba, contrib = self.trained.predict(x)
        classes = self.trained.classes
        # A candidate that serves another model's file (m5 → m4) takes that model's class.
        scores = {
            c.model: float(proba[0, classes.index(self.inherits.get(c.model, c.model))])
            for c in candidates
            if self.inherits.get(c.model, c.model) in classes
        }
        if not scores:  # none of the trained classes is up: the biggest candidate
            biggest = max(candidates, key=lambda c: c.tier).model
            return Decision(biggest, 1.0, {biggest: 1.0}, "no trained model is available")
        probabilities = normalise(scores)
        model = max(probabilities, key=lambda m: probabilities[m])
        chosen = classes.index(self.inherits.get(model, model))
        pushes = dict(zip(self.trained.featurizer.names, contrib[0, chosen, :-1], strict=True))
        top = sorted(pushes, key=lambda f: -abs(pushes[f]))[:REASONS]
        values = dict(zip(self.trained.featurizer.names, x, strict=True))
        reasons = [f"{_reading(f, values[f])}: {pushes[f]:+.2f} toward {model}" for f in top]
        return Decision(
            model=model,
            confidence=probabilities[model],
            probabilities=probabilities,
            rationale="\n".join(reasons),
            contributions={human_name(f): round(float(pushes[f]), 4) for f in top},
        )


def _reading(feature: str, value: float) -> str:
    """``contains code (yes)``, ``prompt length (tokens) (412)``, ``topic axis 2 (-0.31)``."""
    if feature.startswith(("has_", "is_", "short_", "long_")):
        shown = "yes" if value else "no"
    elif float(value).is_integer():
        shown = str(int(value))
    else:
        shown = f"{value:.2f}"
    return f"{human_name(feature)} ({shown})"
