"""Cheap prompt features, computed the same way for training and for serving.

Everything here is pure Python over the prompt text and runs in well under a millisecond.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

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
    )
