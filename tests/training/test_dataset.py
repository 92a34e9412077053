"""The build pipeline: groups never straddle splits, the build is deterministic, splits are pinned
by the committed map, and that map holds no prompt text."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from polyllm.training.dataset import (
    DatasetFileError,
    DatasetSettings,
    build_dataset,
    load_dataset,
    load_prompts,
    run_build,
)
from polyllm.training.records import CATEGORIES, SPLITS, SourcePrompt
from polyllm.training.splits import read_splits

SHARED = Path(__file__).resolve().parents[2] / "../shared/data/prompts/train.jsonl"


def synthetic_prompts() -> list[SourcePrompt]:
    """Per category, 30 distinct prompts of the shapes the variations know, plus two duplicates."""
    rows: list[dict[str, Any]] = []
    for i in range(30):
        rows += [
            {
                "id": f"bigbench/arithmetic/{i}",
                "source": "bigbench/arithmetic",
                "category": "math",
                "prompt": f"What is {i + 10} plus {3 * i + 7}?",
                "scorer": "numeric",
                "reference": str(4 * i + 17),
            },
            {
                "id": f"mmlu/test/{i}",
                "source": "mmlu/test",
                "category": "knowledge",
                "prompt": f"Question number {i} about topic {i * 7}?\nA. yes\nB. no\n"
                "Answer with the letter of the correct option.",
                "scorer": "mc_letter",
                "reference": "A",
            },
            {
                "id": f"mbpp/{i}",
                "source": "mbpp",
                "category": "coding",
                "prompt": f"Write a function f{i} returning {i}.\n"
                f"Your code should pass these tests:\nassert f{i}() == {i}",
                "scorer": "unit_test",
                "reference": {"tests": [f"assert f{i}() == {i}"], "setup": ""},
            },
            {
                "id": f"alpaca_eval/{i}",
                "source": "alpaca_eval",
                "category": "chat",
                "prompt": f"Can you tell me fact {i} about animal {i * 13}?",
                "scorer": "judge",
                "reference": "…",
            },
            {
                "id": f"bigbench/strategyqa/{i}",
                "source": "bigbench/strategyqa",
                "category": "reasoning",
                "prompt": f"Is thing {i} bigger than thing {i * 3 + 1}?",
                "scorer": "mc_letter",
                "reference": "B",
            },
            {
                "id": f"ifeval/{i}",
                "source": "ifeval",
                "category": "instruction_following",
                "prompt": f"Write {i + 2} sentences about city {i}. Please use no commas.",
                "scorer": "ifeval",
                "reference": {"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]},
            },
        ]
    rows.append(rows[0] | {"id": "dup/exact", "prompt": rows[0]["prompt"].upper()})
    rows.append(rows[2] | {"id": "dup/near", "prompt": rows[2]["prompt"] + "\nThanks"})
    return [SourcePrompt.model_validate(r) for r in rows]


def test_groups_never_straddle_splits_and_every_category_is_in_every_split() -> None:
    result = build_dataset(synthetic_prompts(), seed=1)
    split_of_group: dict[str, set[str]] = defaultdict(set)
    for record in result.records:
        split_of_group[record.group].add(record.split)
        if record.variation is not None:
            assert re.fullmatch(rf"[^#]+#{record.variation}[1-9]", record.id)
    assert all(len(s) == 1 for s in split_of_group.values())
    present = {(r.category, r.split) for r in result.records}
    assert present == {(c, s) for c in CATEGORIES for s in SPLITS}
    assert {d.id for d in result.dropped} >= {"dup/exact", "dup/near"}
    assert set(result.variations) >= {"numbers", "short"}


def test_variations_keep_scorer_and_group() -> None:
    originals = {p.id: p for p in synthetic_prompts()}
    for record in build_dataset(list(originals.values()), seed=2).records:
        if record.variation is None:
            assert record.group == record.id or record.group in originals
            continue
        source = originals[record.id.split("#")[0]]
        assert record.scorer == source.scorer and record.category == source.category
        if record.variation != "numbers":
            assert record.reference == source.reference


def test_same_input_same_output() -> None:
    first = build_dataset(synthetic_prompts(), seed=3)
    again = build_dataset(synthetic_prompts(), seed=3)
    assert [r.model_dump() for r in first.records] == [r.model_dump() for r in again.records]
    other = build_dataset(synthetic_prompts(), seed=4)
    assert [r.split for r in other.records] != [r.split for r in first.records]


def test_pinned_ids_keep_their_split() -> None:
    prompts = synthetic_prompts()
    first = build_dataset(prompts, seed=5)
    flipped = {
        r.id: ("test" if r.split == "train" else "train")
        for r in first.records
        if r.variation is None
    }
    pinned = build_dataset(prompts, seed=6, pinned=flipped)
    for record in pinned.records:
        if record.id in flipped and record.group == record.id:
            assert record.split == flipped[record.id]


def write_jsonl(path: Path, prompts: list[SourcePrompt]) -> None:
    path.write_text("".join(p.model_dump_json() + "\n" for p in prompts), encoding="utf-8")


def test_run_build_writes_dataset_and_a_text_free_split_map(tmp_path: Path) -> None:
    prompts = synthetic_prompts()
    write_jsonl(tmp_path / "train.jsonl", prompts)
    settings = DatasetSettings(
        source=tmp_path / "train.jsonl",
        output=tmp_path / "out" / "dataset.jsonl",
        splits=tmp_path / "data" / "splits.json",
    )
    result = run_build(settings)
    records = load_dataset(settings.output)
    assert [r.model_dump() for r in records] == [r.model_dump() for r in result.records]
    assert load_dataset(settings.output, split="test") == [r for r in records if r.split == "test"]

    raw = (tmp_path / "data" / "splits.json").read_text(encoding="utf-8")
    texts = {r.prompt for r in records} | {p.prompt for p in prompts}
    assert not any(text in raw for text in texts)
    body = json.loads(raw)
    assert set(body) == {"format", "seed", "splits"}
    assert read_splits(settings.splits) == {r.id: r.split for r in records}

    # A second build with another seed makes other variations, but every id of the first build
    # keeps its split, and the map keeps the first build's ids.
    again = run_build(settings.model_copy(update={"seed": 9}))
    first = {r.id: r.split for r in records}
    assert all(first[r.id] == r.split for r in again.records if r.id in first)
    assert read_splits(settings.splits).items() >= first.items()


def test_env_var_names_the_source(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("POLYLLM_PROMPTS", str(tmp_path / "p.jsonl"))
    monkeypatch.setenv("POLYLLM_DATASET", str(tmp_path / "d.jsonl"))
    settings = DatasetSettings()
    assert settings.source == tmp_path / "p.jsonl"
    assert settings.output == tmp_path / "d.jsonl"


def test_malformed_input_is_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "category": "poetry"}\n', encoding="utf-8")
    with pytest.raises(DatasetFileError, match=r"bad.jsonl:1"):
        load_prompts(bad)
    with pytest.raises(DatasetFileError, match="no such file"):
        load_prompts(tmp_path / "missing.jsonl")


@pytest.mark.skipif(not SHARED.is_file(), reason="shared prompt file not present")
def test_build_from_the_shared_prompts() -> None:
    result = build_dataset(load_prompts(SHARED))
    assert 4000 <= len(result.records) <= 5000
    assert 500 <= sum(result.variations.values()) <= 900
    present = {(r.category, r.split) for r in result.records}
    assert present == {(c, s) for c in CATEGORIES for s in SPLITS}
    groups: dict[str, set[str]] = defaultdict(set)
    for record in result.records:
        groups[record.group].add(record.split)
    assert all(len(s) == 1 for s in groups.values())
