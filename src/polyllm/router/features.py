"""Prompt features, computed by this one module for training and for serving alike.

Two parts: cheap cues from the text (regular expressions, well under a millisecond) and, for the
learned policy, the first principal components of the prompt's sentence embedding (PCA fitted
on the training split and stored with the trained model). :class:`Featurizer` puts them in one
vector in a fixed order; training and the running router call the same method, so the features
cannot drift.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

FEATURES_VERSION = 2
"""Bump whenever a feature's definition changes: a trained model records the version it was
trained with and the router refuses a model from another version."""

_CODE = re.compile(
    r"```|\bdef |\bclass |\breturn\b|\bimport |#include|\bfunction\b|=>|\bSELECT\b|\bpython\b"
    r"|\bjavascript\b|\bcode\b|\bprogram\b|[{};]\s*$",
    re.IGNORECASE | re.MULTILINE,
)
_MATH = re.compile(r"\d+\s*[-+*/^=]\s*\d+|\\frac|\\boxed|\$[^$]+\$|\bsolve\b|\bequation\b", re.I)
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_REASONING = re.compile(
    r"\b(why|explain|prove|step by step|reason|compare|analy[sz]e|derive|justify)\b", re.I
)
_QUESTION = re.compile(r"^\s*(who|what|when|where|which|how|is|are|does|do|can)\b", re.I)
_SHORT_ANSWER = re.compile(
    r"\b(one word|yes or no|true or false|only the (letter|number|answer)|answer with)\b", re.I
)
_CHOICES = re.compile(r"^\s*\(?[A-Ea-e][).:]\s+\S", re.MULTILINE)
_LONG_OUTPUT = re.compile(
    r"\b(essay|story|article|poem|letter|blog|detailed|in detail|outline|plan|list of|"
    r"\d+\s+(words|paragraphs|sentences|bullet))\b",
    re.I,
)
_FORMAT_RULES = re.compile(
    r"\b(at least|at most|no more than|exactly|json|markdown|bullet|lowercase|uppercase|"
    r"capital letters|commas?|title|highlight|section|postscript|p\.s\.|quotation)\b",
    re.I,
)


@dataclass(frozen=True)
class PromptFeatures:
    """What a routing policy knows about a prompt."""

    prompt_length: int
    tokens_in_prompt: int
    has_code: bool
    has_math: bool
    numbers: int
    reasoning_cues: int
    is_question: bool
    short_answer: bool
    lines: int
    has_choices: bool
    long_output: bool
    format_rules: int
    non_ascii: float
    """Share of characters outside ASCII (another language or script)."""

    def as_dict(self) -> dict[str, float]:
        """Numeric view (booleans as 0/1), in a stable order."""
        return {k: float(v) for k, v in asdict(self).items()}


def estimate_tokens(text: str) -> int:
    """Roughly how many tokens the models' tokenizers make of ``text`` (~4 characters each)."""
    return max(1, (len(text) + 3) // 4)


def extract(prompt: str) -> PromptFeatures:
    """Features of one prompt."""
    return PromptFeatures(
        prompt_length=len(prompt),
        tokens_in_prompt=estimate_tokens(prompt),
        has_code=bool(_CODE.search(prompt)),
        has_math=bool(_MATH.search(prompt)),
        numbers=len(_NUMBER.findall(prompt)),
        reasoning_cues=len(_REASONING.findall(prompt)),
        is_question=bool(_QUESTION.search(prompt)),
        short_answer=bool(_SHORT_ANSWER.search(prompt)),
        lines=prompt.count("\n") + 1,
        has_choices=len(_CHOICES.findall(prompt)) >= 2,
        long_output=bool(_LONG_OUTPUT.search(prompt)),
        format_rules=len(_FORMAT_RULES.findall(prompt)),
        non_ascii=round(sum(ord(c) > 127 for c in prompt) / max(1, len(prompt)), 4),
    )


CUE_NAMES = tuple(f.name for f in fields(PromptFeatures))

# How a person reads each feature, for the router's rationale.
HUMAN_NAMES = {
    "prompt_length": "prompt length (characters)",
    "tokens_in_prompt": "prompt length (tokens)",
    "has_code": "contains code",
    "has_math": "contains maths",
    "numbers": "numbers in the prompt",
    "reasoning_cues": "asks for reasoning",
    "is_question": "is a question",
    "short_answer": "asks for a short answer",
    "lines": "lines",
    "has_choices": "multiple-choice options",
    "long_output": "asks for a long text",
    "format_rules": "format instructions",
    "non_ascii": "non-ASCII share",
}


class SentenceEmbedder(Protocol):
    """Anything that maps a text to a fixed-size vector (the router's static MiniLM)."""

    def embed(self, text: str) -> NDArray[np.float32]: ...


@dataclass(frozen=True)
class Pca:
    """The projection of embeddings on their first principal components."""

    mean: NDArray[np.float64]
    components: NDArray[np.float64]
    """(k, dimensions), rows in order of explained variance."""

    @classmethod
    def fit(cls, embeddings: NDArray[Any], k: int) -> Pca:
        """Fit on the rows of ``embeddings`` (deterministic: each component's sign is fixed so
        that its largest coefficient is positive)."""
        data = np.asarray(embeddings, dtype=np.float64)
        mean = data.mean(axis=0)
        _, _, vt = np.linalg.svd(data - mean, full_matrices=False)
        comps = vt[:k]
        signs = np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(axis=1)])
        return cls(mean, comps * signs[:, None])

    def project(self, vector: NDArray[Any]) -> NDArray[np.float64]:
        """The coordinates of ``vector`` on the components."""
        return np.asarray(self.components @ (np.asarray(vector, dtype=np.float64) - self.mean))

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form (stored with the trained model)."""
        return {"mean": self.mean.tolist(), "components": self.components.tolist()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Pca:
        """Inverse of :meth:`to_json`."""
        return cls(np.asarray(data["mean"]), np.asarray(data["components"]))


class Featurizer:
    """The learned policy's input: the cues, then the embedding's principal components."""

    def __init__(self, embedder: SentenceEmbedder, pca: Pca) -> None:
        self.embedder = embedder
        self.pca = pca
        k = len(pca.components)
        self.names: tuple[str, ...] = CUE_NAMES + tuple(f"embedding_pc{i + 1}" for i in range(k))

    def vector(self, prompt: str) -> NDArray[np.float64]:
        """The feature vector of ``prompt``, in the order of :attr:`names`."""
        cues = np.fromiter(extract(prompt).as_dict().values(), dtype=np.float64)
        return np.concatenate([cues, self.pca.project(self.embedder.embed(prompt))])

    def matrix(self, prompts: Sequence[str]) -> NDArray[np.float64]:
        """One :meth:`vector` per prompt, stacked (the same code path, row by row)."""
        return np.stack([self.vector(p) for p in prompts])


def human_name(feature: str) -> str:
    """How the rationale names ``feature``."""
    if feature.startswith("embedding_pc"):
        return f"topic axis {feature.removeprefix('embedding_pc')}"
    return HUMAN_NAMES.get(feature, feature)
