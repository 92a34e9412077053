"""The subset of the OpenAI API that PolyLLM speaks, so OpenAI clients can point at it.

Unknown fields are ignored (clients send many); fields we cannot honour (``n > 1``) are rejected.
"""

from __future__ import annotations

import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from polyllm.common.schemas import MAX_STOP_SEQUENCES


class ChatMessage(BaseModel):
    """One chat turn."""

    role: Literal["system", "user", "assistant"]
    content: str


class _SamplingFields(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    stop: list[str] = Field(default_factory=list, max_length=MAX_STOP_SEQUENCES)
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    stream: bool = False
    n: Literal[1] = Field(default=1, description="Only one choice per request is supported.")

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_list(cls, value: object) -> object:
        if value is None:
            return []
        return [value] if isinstance(value, str) else value


class ChatCompletionRequest(_SamplingFields):
    """``POST /v1/chat/completions``."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1, le=32768)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=32768)

    @property
    def token_budget(self) -> int | None:
        """The completion budget the caller asked for, if any."""
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(_SamplingFields):
    """``POST /v1/completions`` (the prompt is sent without a chat template)."""

    prompt: str = Field(min_length=1)
    max_tokens: int = Field(default=16, ge=1, le=32768)

    @field_validator("prompt", mode="before")
    @classmethod
    def _single_prompt(cls, value: object) -> object:
        if isinstance(value, list):
            if len(value) != 1 or not isinstance(value[0], str):
                raise ValueError("exactly one prompt string is supported")
            return value[0]
        return value


class Usage(BaseModel):
    """Token counts of one completion."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


def openai_finish_reason(reason: str) -> Literal["stop", "length"]:
    """OpenAI knows only ``stop`` and ``length``."""
    return "length" if reason == "length" else "stop"


def completion_envelope(kind: str, completion_id: str, model: str) -> dict[str, object]:
    """The fields every OpenAI response and chunk starts with."""
    return {"id": completion_id, "object": kind, "created": int(time.time()), "model": model}


class ModelCard(BaseModel):
    """One entry of ``GET /v1/models``."""

    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "polyllm"


class ModelList(BaseModel):
    """``GET /v1/models``."""

    object: Literal["list"] = "list"
    data: list[ModelCard]
