"""The load test's workloads: classes of prompt length and completion budget, and the prompts
they rotate through (the project's prompt dataset, or a small sample shipped with the package).

Prompt length is measured in characters, not tokens, so a class means the same prompts for
every model's tokenizer (English text runs at about 4 characters per token).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

WorkloadName = Literal["short", "medium", "long"]
SAMPLE_FILE = "sample_prompts.jsonl"


@dataclass(frozen=True)
class Workload:
    """Prompts of ``min_chars <= len(prompt) < max_chars``, each answered with ``max_tokens``."""

    name: WorkloadName
    min_chars: int
    max_chars: int
    max_tokens: int
    about: str


WORKLOADS: dict[WorkloadName, Workload] = {
    "short": Workload("short", 1, 200, 64, "< 200 characters (≈ up to 50 tokens), 64 tokens out"),
    "medium": Workload(
        "medium", 200, 1000, 128, "200-999 characters (≈ 50-250 tokens), 128 tokens out"
    ),
    "long": Workload(
        "long", 1000, 6000, 256, "1000-5999 characters (≈ 250-1500 tokens), 256 tokens out"
    ),
}


class LoadPrompt(BaseModel):
    """One prompt as the load test needs it; other dataset fields are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str = Field(min_length=1)
    category: str
    prompt: str = Field(min_length=1)


class PromptFileError(ValueError):
    """A prompt file is unreadable or has no prompt of the workload's class."""


def read_prompt_file(lines: list[str], name: str) -> list[LoadPrompt]:
    """The prompts of JSONL ``lines`` (``name`` is for messages); blank lines are skipped."""
    prompts = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                prompts.append(LoadPrompt.model_validate_json(line))
            except ValidationError as exc:
                raise PromptFileError(f"{name}:{number}: {exc}") from None
    return prompts


def sample_prompts() -> list[LoadPrompt]:
    """The sample shipped with the package (written for the load test, not from any dataset)."""
    text = resources.files("polyllm.bench").joinpath(SAMPLE_FILE).read_text(encoding="utf-8")
    return read_prompt_file(text.splitlines(), SAMPLE_FILE)


def default_dataset() -> Path:
    """The built prompt dataset (``polyllm data build``; ``$POLYLLM_DATASET`` moves it)."""
    from polyllm.training.dataset import DatasetSettings

    settings = DatasetSettings()
    return settings.path(settings.output)


def prompt_pool(
    workload: Workload, seed: int, dataset: Path | None = None
) -> tuple[list[LoadPrompt], str]:
    """The workload's prompts in a seeded order, and where they came from. ``dataset`` (default:
    :func:`default_dataset`) is used when it exists, else the shipped sample."""
    path = dataset or default_dataset()
    if path.is_file():
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise PromptFileError(f"cannot read {path}: {exc.strerror}") from exc
        prompts, source = read_prompt_file(lines, str(path)), str(path)
    elif dataset is not None:
        raise PromptFileError(f"{dataset}: no such file")
    else:
        prompts, source = sample_prompts(), f"the package's {SAMPLE_FILE} ({path} is absent)"
    pool = sorted(
        (p for p in prompts if workload.min_chars <= len(p.prompt) < workload.max_chars),
        key=lambda p: p.id,
    )
    if not pool:
        raise PromptFileError(f"{source} has no {workload.name} prompt ({workload.about})")
    random.Random(seed).shuffle(pool)
    return pool, source
