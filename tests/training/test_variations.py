"""Variations keep a correct reference: arithmetic answers are recomputed here independently."""

from __future__ import annotations

import math
import random
import re
from typing import Any

import pytest

from polyllm.training.records import SourcePrompt
from polyllm.training.variations import (
    VARIATIONS,
    VERBOSE_PREAMBLES,
    VariationQuota,
    make_variations,
    strip_politeness,
)


def prompt(pid: str, text: str, **fields: Any) -> SourcePrompt:
    base: dict[str, Any] = {
        "id": pid,
        "source": "bigbench/arithmetic",
        "category": "math",
        "prompt": text,
        "scorer": "numeric",
        "reference": "0",
        "meta": {},
    }
    return SourcePrompt(**(base | fields))


ARITHMETIC = [
    ("What is 7 plus 2?", "9"),
    ("What is 2447 minus 3134?", "-687"),
    ("What is 258 times 732?", "188856"),
    ("What is 79611 divided by 7?", "11373"),
    ("What is 6 minus 9?", "-3"),
]


@pytest.mark.parametrize(("text", "answer"), ARITHMETIC)
def test_bigbench_arithmetic_answers_are_recomputed(text: str, answer: str) -> None:
    original = prompt("bigbench/arithmetic/x/1", text, reference=answer)
    variants = VARIATIONS["numbers"].vary(original, random.Random(1), 5)
    assert len(variants) == 5
    assert len({v.prompt for v in variants} | {text}) == 6
    op = re.fullmatch(r"What is \d+ (\D+) \d+\?", text)
    assert op is not None
    for variant in variants:
        m = re.fullmatch(r"What is (\d+) (plus|minus|times|divided by) (\d+)\?", variant.prompt)
        assert m is not None and m[2] == op[1]
        a, b = int(m[1]), int(m[3])
        expected = {
            "plus": a + b,
            "minus": a - b,
            "times": a * b,
            "divided by": a // b,
        }[m[2]]
        if m[2] == "divided by":
            assert a % b == 0
        assert variant.reference == str(expected)


@pytest.mark.parametrize(
    ("text", "compute"),
    [
        ("What is the highest common divisor of 24 and 3884?", math.gcd),
        ("Calculate the greatest common factor of 33 and 539.", math.gcd),
        ("What is the smallest common multiple of 84 and 68?", math.lcm),
        ("What is the remainder when 3094389 is divided by 293?", lambda a, b: a % b),
    ],
)
def test_mathematics_dataset_answers_are_recomputed(text: str, compute: Any) -> None:
    original = prompt(
        "mathematics_dataset/1", text, source="mathematics_dataset", scorer="exact_match"
    )
    variants = VARIATIONS["numbers"].vary(original, random.Random(7), 3)
    assert len(variants) == 3
    for variant in variants:
        a, b = (int(n) for n in re.findall(r"\d+", variant.prompt))
        assert variant.reference == str(compute(a, b))
        assert re.sub(r"\d+", "N", variant.prompt) == re.sub(r"\d+", "N", text)


def test_word_problems_are_never_renumbered() -> None:
    for source in ("gsm8k/train", "svamp"):
        original = prompt(f"{source}/1", "What is 7 plus 2?", source=source)
        assert VARIATIONS["numbers"].vary(original, random.Random(0), 3) == []


def test_paraphrase_rewords_the_instruction_and_keeps_the_answer() -> None:
    original = prompt(
        "mmlu/test/x/1",
        "Which is red?\nA. sky\nB. blood\nAnswer with the letter of the correct option.",
        source="mmlu/test",
        category="knowledge",
        scorer="mc_letter",
        reference="B",
    )
    variants = VARIATIONS["paraphrase"].vary(original, random.Random(3), 2)
    assert len(variants) == 2
    for variant in variants:
        assert variant.reference == "B"
        assert variant.prompt.startswith("Which is red?\nA. sky\nB. blood\n")
        assert variant.prompt != original.prompt


def test_verbose_prefixes_and_short_strips() -> None:
    original = prompt(
        "alpaca_eval/1",
        "Can you explain the Doppler effect?",
        source="alpaca_eval",
        category="chat",
        scorer="judge",
        reference="It is …",
    )
    (verbose,) = VARIATIONS["verbose"].vary(original, random.Random(0), 1)
    assert verbose.prompt.endswith(original.prompt)
    assert verbose.prompt[: -len(original.prompt)] in VERBOSE_PREAMBLES
    (short,) = VARIATIONS["short"].vary(original, random.Random(0), 1)
    assert short.prompt == "Explain the Doppler effect."
    assert short.reference == verbose.reference == original.reference


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello! Please write a poem about rain. Thanks!", "Write a poem about rain."),
        (
            "What is a levee? Please respond only in Korean.",
            "What is a levee? Respond only in Korean.",
        ),
        ("Summarise this, please.", "Summarise this."),
        ("Write a haiku.", "Write a haiku."),
    ],
)
def test_strip_politeness(text: str, expected: str) -> None:
    assert strip_politeness(text) == expected


def test_repeat_prompt_instructions_are_never_varied() -> None:
    original = prompt(
        "ifeval/1",
        "Please write a story. First repeat the request word for word without change.",
        source="ifeval",
        category="instruction_following",
        scorer="ifeval",
        reference={"instruction_id_list": ["combination:repeat_prompt"], "kwargs": [{}]},
    )
    for kind in VARIATIONS:
        assert VARIATIONS[kind].vary(original, random.Random(0), 2) == []


def test_make_variations_is_deterministic_and_rejects_unknown_kinds() -> None:
    originals = [
        prompt(f"bigbench/arithmetic/x/{i}", f"What is {i} plus {i + 1}?") for i in range(20)
    ]
    quotas = {"numbers": VariationQuota(1.0, 2), "verbose": VariationQuota(0.5, 1)}
    first = make_variations(originals, 3, quotas)
    assert first == make_variations(list(originals), 3, quotas)
    assert first != make_variations(originals, 4, quotas)
    with pytest.raises(ValueError, match="unknown variation"):
        make_variations(originals, 0, {"nope": VariationQuota(1.0, 1)})
