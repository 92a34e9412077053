"""The router's prompt dataset: public prompts plus synthetic variations, de-duplicated and split by
group. :func:`build_dataset` is the pure pipeline; :func:`run_build` reads and writes the files;
:func:`load_dataset` is what other steps (``polyllm collect`` …) read.

The built dataset holds prompt text, so it goes to a git-ignored path (``.cache/data/``); only the
id → split map (``data/splits.json``) is committed.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self, TypeVar

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from polyllm.training.dedup import deduplicate
from polyllm.training.records import PromptRecord, SourcePrompt, Split
from polyllm.training.splits import assign_splits, read_splits, write_splits
from polyllm.training.variations import VariationQuota, make_variations

logger = logging.getLogger(__name__)

_Record = TypeVar("_Record", bound=SourcePrompt)

DEFAULT_SOURCE = Path("../shared/data/prompts/train.jsonl")
DEFAULT_DATASET = Path(".cache/data/dataset.jsonl")
DEFAULT_SPLITS = Path("data/splits.json")


def project_root(start: Path | None = None) -> Path:
    """The nearest directory at or above ``start`` (default: the working directory) holding a
    ``pyproject.toml``; ``start`` itself where there is none."""
    here = (start or Path.cwd()).resolve()
    return next((p for p in (here, *here.parents) if (p / "pyproject.toml").is_file()), here)


class DatasetSettings(BaseSettings):
    """Where ``polyllm data build`` reads and writes, and how it varies, de-duplicates and splits.
    Relative paths are taken from the project root (see :func:`project_root`)."""

    model_config = SettingsConfigDict(env_prefix="POLYLLM_DATA_", populate_by_name=True)

    source: Path = Field(
        default=DEFAULT_SOURCE,
        validation_alias="POLYLLM_PROMPTS",
        description="the public prompt file (JSONL: id, source, category, prompt, scorer, …)",
    )
    output: Path = Field(
        default=DEFAULT_DATASET,
        validation_alias="POLYLLM_DATASET",
        description="where the built dataset goes (holds prompt text: keep it git-ignored)",
    )
    splits: Path = Field(
        default=DEFAULT_SPLITS, description="the committed id → split map, reused if present"
    )
    seed: int = Field(default=0, ge=0, description="seed of the variations and the split")
    near_duplicate: float = Field(
        default=0.9, gt=0.0, le=1.0, description="shingle Jaccard at which a prompt is dropped"
    )
    related: float = Field(
        default=0.8, gt=0.0, le=1.0, description="shingle Jaccard at which two groups merge"
    )
    validation: float = Field(default=0.1, gt=0.0, lt=0.5, description="share of validation groups")
    test: float = Field(default=0.1, gt=0.0, lt=0.5, description="share of test groups")

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.related > self.near_duplicate:
            raise ValueError("related must not exceed near_duplicate")
        return self

    def path(self, path: Path) -> Path:
        """``path`` made absolute against the project root."""
        return path if path.is_absolute() else project_root() / path


class DatasetFileError(ValueError):
    """A prompt or dataset file is missing or has a malformed line."""


def _read_jsonl(path: Path, model: type[_Record]) -> list[_Record]:
    if not path.is_file():
        raise DatasetFileError(f"{path}: no such file")
    out: list[_Record] = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                out.append(model.model_validate_json(line))
            except ValidationError as exc:
                raise DatasetFileError(f"{path}:{number}: {exc}") from None
    ids = Counter(record.id for record in out)
    repeated = [i for i, n in ids.items() if n > 1]
    if repeated:
        raise DatasetFileError(f"{path}: repeated ids, e.g. {repeated[0]}")
    return out


def load_prompts(path: Path) -> list[SourcePrompt]:
    """The public prompts of ``path`` (JSONL), validated; repeated ids are an error."""
    return _read_jsonl(path, SourcePrompt)


def load_dataset(path: Path = DEFAULT_DATASET, split: Split | None = None) -> list[PromptRecord]:
    """The records of a built dataset (``polyllm data build``'s output), in file order; only those
    of ``split`` when it is given."""
    records = _read_jsonl(path, PromptRecord)
    return records if split is None else [r for r in records if r.split == split]


def write_dataset(path: Path, records: Iterable[PromptRecord]) -> None:
    """Write ``records`` as JSONL, atomically (a temporary file renamed over ``path``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with partial.open("w", encoding="utf-8") as out:
        for record in records:
            out.write(record.model_dump_json() + "\n")
    partial.replace(path)


@dataclass(frozen=True)
class DroppedPrompt:
    """A prompt left out as a duplicate of ``of`` (``kind``: exact or near)."""

    id: str
    of: str
    kind: str
    similarity: float


@dataclass(frozen=True)
class BuildResult:
    """The built records and what the build did to get them."""

    records: list[PromptRecord]
    originals: int
    variations: dict[str, int]
    dropped: list[DroppedPrompt]
    merged_groups: int
    stale_pins: int = 0
    splits: dict[str, Split] = field(default_factory=dict)

    def counts(self) -> Counter[tuple[str, str]]:
        """Records per (category, split)."""
        return Counter((r.category, r.split) for r in self.records)


def build_dataset(
    originals: Sequence[SourcePrompt],
    *,
    seed: int = 0,
    pinned: Mapping[str, Split] | None = None,
    near_duplicate: float = 0.9,
    related: float = 0.8,
    validation: float = 0.1,
    test: float = 0.1,
    quotas: dict[str, VariationQuota] | None = None,
) -> BuildResult:
    """Originals plus variations, de-duplicated (originals first, so an original is never dropped
    for a variation), grouped and split; the same input always gives the same result."""
    pinned = pinned or {}
    drafts: list[tuple[SourcePrompt, str, str | None]] = [(p, p.id, None) for p in originals]
    for original, kind, variants in make_variations(originals, seed, quotas):
        for n, variant in enumerate(variants, 1):
            varied = original.model_copy(
                update={
                    "id": f"{original.id}#{kind}{n}",
                    "prompt": variant.prompt,
                    "reference": variant.reference,
                }
            )
            drafts.append((varied, original.id, kind))
    result = deduplicate(
        [d.prompt for d, _, _ in drafts], [g for _, g, _ in drafts], near_duplicate, related
    )
    kept = [drafts[i] for i in result.kept]
    groups = [result.merged_group[g] for _, g, _ in kept]
    group_split = assign_splits(
        [d.id for d, _, _ in kept],
        groups,
        [d.category for d, _, _ in kept],
        pinned,
        seed,
        validation,
        test,
    )
    records = [
        PromptRecord(**d.model_dump(), group=g, split=group_split[g], variation=kind)
        for (d, _, kind), g in zip(kept, groups, strict=True)
    ]
    splits = {r.id: r.split for r in records}
    return BuildResult(
        records=records,
        originals=sum(1 for r in records if r.variation is None),
        variations=dict(Counter(r.variation for r in records if r.variation is not None)),
        dropped=[
            DroppedPrompt(drafts[d.index][0].id, drafts[d.of][0].id, d.kind, d.similarity)
            for d in result.dropped
        ],
        merged_groups=sum(1 for g, root in result.merged_group.items() if g != root),
        stale_pins=sum(1 for i in pinned if i not in splits),
        splits=splits,
    )


def run_build(settings: DatasetSettings, reuse_splits: bool = True) -> BuildResult:
    """Build from ``settings.source``, write the dataset and the id → split map (ids pinned by an
    existing map keep their split; ids it has that this build lacks are kept in it)."""
    splits_path = settings.path(settings.splits)
    pinned = read_splits(splits_path) if reuse_splits else {}
    result = build_dataset(
        load_prompts(settings.path(settings.source)),
        seed=settings.seed,
        pinned=pinned,
        near_duplicate=settings.near_duplicate,
        related=settings.related,
        validation=settings.validation,
        test=settings.test,
    )
    write_dataset(settings.path(settings.output), result.records)
    write_splits(splits_path, {**pinned, **result.splits}, settings.seed)
    logger.info("wrote %d records, %d split entries", len(result.records), len(result.splits))
    return result
