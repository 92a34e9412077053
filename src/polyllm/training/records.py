"""The prompt records: one public prompt as read from the source file, and one record of the built
dataset (the same fields plus its group, split and variation kind)."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, JsonValue

Category = Literal["coding", "math", "knowledge", "reasoning", "instruction_following", "chat"]
Scorer = Literal[
    "unit_test", "numeric", "math_boxed", "mc_letter", "alias_em", "exact_match", "ifeval", "judge"
]
Split = Literal["train", "validation", "test"]

CATEGORIES: tuple[Category, ...] = get_args(Category)
SPLITS: tuple[Split, ...] = get_args(Split)


class SourcePrompt(BaseModel):
    """One prompt of the public prompt file (``prompts/train.jsonl``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, description="`<source>/<original id>`, stable")
    source: str = Field(min_length=1, description="the public data set it comes from")
    category: Category
    prompt: str = Field(min_length=1, description="the text sent to a model")
    scorer: Scorer = Field(description="how an answer is checked automatically")
    reference: JsonValue = Field(
        description="the answer (or tests, aliases, checks) for the scorer"
    )
    meta: dict[str, JsonValue] = Field(default_factory=dict, description="source-specific extras")


class PromptRecord(SourcePrompt):
    """One prompt of the built dataset: a public prompt or a synthetic variation of one."""

    group: str = Field(
        min_length=1,
        description="id of the original this prompt belongs with; a whole group shares one split",
    )
    split: Split
    variation: str | None = Field(
        default=None, description="the variation kind (`numbers`, …); null for an original prompt"
    )
