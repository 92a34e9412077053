"""Train / validation / test assignment by group: seeded, deterministic, stratified by category,
and pinned by a committed id → split file so the split is the same on every machine."""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

from polyllm.training.records import SPLITS, Split

logger = logging.getLogger(__name__)

SPLITS_FORMAT = 1


def _hash_rank(seed: int, group: str) -> str:
    return hashlib.sha256(f"{seed}:{group}".encode()).hexdigest()


def stratified_assignment(
    groups: Mapping[str, str], seed: int, validation: float, test: float
) -> dict[str, Split]:
    """Split groups (group → category) within each category: groups are ranked by a seeded hash
    and the first ``round(test * n)`` go to test, the next ``round(validation * n)`` to validation,
    the rest to train; a category with at least three groups gets at least one of each."""
    by_category: dict[str, list[str]] = defaultdict(list)
    for group, category in groups.items():
        by_category[category].append(group)
    out: dict[str, Split] = {}
    for members in by_category.values():
        ranked = sorted(members, key=lambda g: (_hash_rank(seed, g), g))
        n = len(ranked)
        minimum = 1 if n >= 3 else 0
        n_test = max(minimum, round(test * n))
        n_validation = max(minimum, round(validation * n))
        for position, group in enumerate(ranked):
            if position < n_test:
                out[group] = "test"
            elif position < n_test + n_validation:
                out[group] = "validation"
            else:
                out[group] = "train"
    return out


def assign_splits(
    ids: Sequence[str],
    groups: Sequence[str],
    categories: Sequence[str],
    pinned: Mapping[str, Split],
    seed: int,
    validation: float = 0.1,
    test: float = 0.1,
) -> dict[str, Split]:
    """The split of every group (``ids[i]`` is in group ``groups[i]`` with ``categories[i]``).

    A group with a pinned id takes that id's split (the first such id in order, where they
    disagree); the other groups are split by :func:`stratified_assignment`, each under the
    category of its first member.
    """
    out: dict[str, Split] = {}
    fresh: dict[str, str] = {}
    for prompt_id, group, category in zip(ids, groups, categories, strict=True):
        if group in out:
            if prompt_id in pinned and pinned[prompt_id] != out[group]:
                logger.warning(
                    "%s was in %s, its group %s is in %s",
                    prompt_id,
                    pinned[prompt_id],
                    group,
                    out[group],
                )
            continue
        if prompt_id in pinned:
            out[group] = pinned[prompt_id]
            fresh.pop(group, None)
        else:
            fresh.setdefault(group, category)
    out.update(stratified_assignment(fresh, seed, validation, test))
    return out


def read_splits(path: Path) -> dict[str, Split]:
    """The id → split map of a splits file; ``{}`` if there is none; a malformed one is an
    error."""
    if not path.exists():
        return {}
    data: Any = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or data.get("format") != SPLITS_FORMAT:
        raise ValueError(f"{path}: not a format-{SPLITS_FORMAT} splits file")
    splits = data.get("splits")
    if not isinstance(splits, dict) or not all(
        isinstance(k, str) and v in SPLITS for k, v in splits.items()
    ):
        raise ValueError(f"{path}: 'splits' must map ids to one of {', '.join(SPLITS)}")
    return cast(dict[str, Split], splits)


def write_splits(path: Path, splits: Mapping[str, Split], seed: int) -> None:
    """Write the id → split map (sorted, one id a line: small diffs, no prompt text)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"format": SPLITS_FORMAT, "seed": seed, "splits": dict(sorted(splits.items()))}
    path.write_text(json.dumps(body, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
