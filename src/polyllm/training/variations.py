"""Synthetic variations of the public prompts, each with a reference that is still correct.

One small interface, :class:`Variation`, and a registry, :data:`VARIATIONS`, of its
implementations by name. Every implementation returns new prompt texts (and references) for one
original, or nothing when it cannot vary that original safely:

- ``numbers``: arithmetic prompts of a known shape with new numbers and the answer recomputed
  (BIG-bench arithmetic "What is A plus B?", and mathematics_dataset gcd / lcm / remainder items).
  GSM8K and SVAMP are never varied: their answers come from reasoning that cannot be recomputed.
- ``paraphrase``: the instruction part reworded from templates (answer-format line, MBPP's test
  header, "What is …?"); the task and its answer are unchanged.
- ``verbose``: a polite preamble before the unchanged task.
- ``short``: politeness stripped (greetings, "please", "Can you …?" turned into an imperative).

IFEval prompts that ask the model to repeat the request word for word are never varied: their check
compares the answer with the original text.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from pydantic import JsonValue

from polyllm.training.records import SourcePrompt


@dataclass(frozen=True)
class Variant:
    """One varied prompt and the reference that is correct for it."""

    prompt: str
    reference: JsonValue


class Variation(Protocol):
    """Makes up to ``count`` distinct variants of one prompt; ``[]`` where it does not apply."""

    def vary(self, original: SourcePrompt, rng: random.Random, count: int) -> list[Variant]:
        """Variants of ``original``, none equal to it or to each other."""
        ...


def _repeats_prompt(original: SourcePrompt) -> bool:
    reference = original.reference
    if not isinstance(reference, dict):
        return False
    ids = reference.get("instruction_id_list")
    return isinstance(ids, list) and "combination:repeat_prompt" in ids


def _with_digits(rng: random.Random, like: int) -> int:
    """A random positive integer with as many digits as ``abs(like)`` (1-9 for one digit)."""
    digits = len(str(abs(like)))
    return rng.randint(1 if digits == 1 else 10 ** (digits - 1), 10**digits - 1)


_NumberRule = Callable[[re.Match[str], random.Random], tuple[str, str] | None]


def _bigbench_arithmetic(match: re.Match[str], rng: random.Random) -> tuple[str, str] | None:
    a, op, b = int(match["a"]), match["op"], int(match["b"])
    if op == "divided by":
        if b == 0:
            return None
        divisor, quotient = _with_digits(rng, b), _with_digits(rng, a // b or 1)
        x, y, answer = divisor * quotient, divisor, quotient
    else:
        x, y = _with_digits(rng, a), _with_digits(rng, b)
        answer = {"plus": x + y, "minus": x - y, "times": x * y}[op]
    return f"What is {x} {op} {y}?", str(answer)


def _two_numbers(compute: Callable[[int, int], int]) -> _NumberRule:
    def rule(match: re.Match[str], rng: random.Random) -> tuple[str, str] | None:
        x, y = _with_digits(rng, int(match["a"])), _with_digits(rng, int(match["b"]))
        text = f"{match['head']}{x}{match['mid']}{y}{match['tail']}"
        return text, str(compute(x, y))

    return rule


def _remainder(x: int, y: int) -> int:
    return x % y


@dataclass(frozen=True)
class _NumberTemplate:
    source: str
    pattern: re.Pattern[str]
    rule: _NumberRule


_NUMBER_TEMPLATES = (
    _NumberTemplate(
        "bigbench/arithmetic",
        re.compile(r"What is (?P<a>\d+) (?P<op>plus|minus|times|divided by) (?P<b>\d+)\?"),
        _bigbench_arithmetic,
    ),
    _NumberTemplate(
        "mathematics_dataset",
        re.compile(
            r"(?P<head>(?:What is|Calculate) the (?:highest|greatest) common"
            r" (?:divisor|factor) of )"
            r"(?P<a>\d+)(?P<mid> and )(?P<b>\d+)(?P<tail>[.?])"
        ),
        _two_numbers(math.gcd),
    ),
    _NumberTemplate(
        "mathematics_dataset",
        re.compile(
            r"(?P<head>What is the (?:smallest|lowest|least) common multiple of )"
            r"(?P<a>\d+)(?P<mid> and )(?P<b>\d+)(?P<tail>\?)"
        ),
        _two_numbers(math.lcm),
    ),
    _NumberTemplate(
        "mathematics_dataset",
        re.compile(
            r"(?P<head>What is the remainder when )(?P<a>\d+)(?P<mid> is divided by )(?P<b>\d+)"
            r"(?P<tail>\?)"
        ),
        _two_numbers(_remainder),
    ),
)


def _distinct(
    original: str, count: int, make: Callable[[], Variant | None], tries: int = 20
) -> list[Variant]:
    seen = {original}
    out: list[Variant] = []
    for _ in range(count * tries):
        if len(out) == count:
            break
        variant = make()
        if variant is not None and variant.prompt not in seen:
            seen.add(variant.prompt)
            out.append(variant)
    return out


class NumberVariation:
    """New numbers in an arithmetic prompt of a known shape, with the answer recomputed."""

    def vary(self, original: SourcePrompt, rng: random.Random, count: int) -> list[Variant]:
        """Up to ``count`` variants with recomputed references; ``[]`` for any other prompt."""
        for template in _NUMBER_TEMPLATES:
            match = template.pattern.fullmatch(original.prompt)
            if original.source == template.source and match is not None:
                rule = template.rule

                def make(m: re.Match[str] = match, r: _NumberRule = rule) -> Variant | None:
                    made = r(m, rng)
                    return None if made is None else Variant(made[0], made[1])

                return _distinct(original.prompt, count, make)
        return []


@dataclass(frozen=True)
class _Rewording:
    pattern: re.Pattern[str]
    alternatives: tuple[str, ...]
    sources: tuple[str, ...] = ()


_REWORDINGS = (
    _Rewording(
        re.compile(r"\nAnswer with the letter of the correct option\.$"),
        (
            "\nReply with only the letter of the correct option.",
            "\nGive just the letter of the right answer.",
            "\nRespond with the letter of the option you choose.",
        ),
    ),
    _Rewording(
        re.compile(r"\nAnswer with a short phrase\.$"),
        (
            "\nReply with a short phrase.",
            "\nGive a brief answer of a few words.",
            "\nAnswer in just a few words.",
        ),
    ),
    _Rewording(
        re.compile(r"\nPut your final answer in \\boxed\{\}\.$"),
        (
            "\nWrite the final answer inside \\boxed{}.",
            "\nGive your final answer enclosed in \\boxed{}.",
            "\nPlace the final result in \\boxed{}.",
        ),
    ),
    _Rewording(
        re.compile(r"\nYour code should pass these tests:\n"),
        (
            "\nThe code must pass the following tests:\n",
            "\nMake sure these tests pass:\n",
            "\nYour solution will be checked with these tests:\n",
        ),
    ),
    _Rewording(
        re.compile(r"^What is (?P<task>.+)\?$"),
        ("Compute \\g<task>.", "Calculate \\g<task>.", "Work out \\g<task>."),
        sources=("bigbench/arithmetic",),
    ),
)


class ParaphraseVariation:
    """The instruction part reworded from templates; the task and its answer unchanged."""

    def vary(self, original: SourcePrompt, rng: random.Random, count: int) -> list[Variant]:
        """Up to ``count`` rewordings by the first template that matches; ``[]`` if none does."""
        if _repeats_prompt(original):
            return []
        for rewording in _REWORDINGS:
            if rewording.sources and original.source not in rewording.sources:
                continue
            if rewording.pattern.search(original.prompt) is None:
                continue
            chosen = rng.sample(rewording.alternatives, min(count, len(rewording.alternatives)))
            return [
                Variant(rewording.pattern.sub(alt, original.prompt, count=1), original.reference)
                for alt in chosen
            ]
        return []


VERBOSE_PREAMBLES = (
    "Please answer the following carefully.\n\n",
    "Take your time and read the task below before you respond.\n\n",
    "I would be grateful for your help with the following. Thank you in advance!\n\n",
    "Here is something I need help with; please give it your full attention.\n\n",
)


class VerboseVariation:
    """A polite preamble before the unchanged task."""

    def vary(self, original: SourcePrompt, rng: random.Random, count: int) -> list[Variant]:
        """Up to ``count`` variants, each with a different preamble."""
        if _repeats_prompt(original):
            return []
        chosen = rng.sample(VERBOSE_PREAMBLES, min(count, len(VERBOSE_PREAMBLES)))
        return [Variant(preamble + original.prompt, original.reference) for preamble in chosen]


def _upper(match: re.Match[str]) -> str:
    return match.group(1).upper()


# Applied in order; each removes politeness around the request and capitalises what then starts
# the sentence.
_STRIP_RULES: tuple[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]], ...] = (
    (re.compile(r"^(?:hi|hello|hey)(?: there)?[,!.]*\s+(\w)", re.IGNORECASE), _upper),
    (re.compile(r"^(?:please|kindly),?\s+(\w)", re.IGNORECASE), _upper),
    (re.compile(r"(?<=[.!?] )(?:please|kindly),? (\w)", re.IGNORECASE), _upper),
    (re.compile(r",? please(?=[.?!]$)", re.IGNORECASE), ""),
    (re.compile(r"\s*(?:thanks|thank you)(?: so much| in advance)?[.!]*$", re.IGNORECASE), ""),
)
_CAN_YOU = re.compile(
    r"(?:can|could|would) you (?:please )?(?P<first>[a-z])(?P<rest>[^\n?]*)\?", re.IGNORECASE
)


def strip_politeness(text: str) -> str:
    """``text`` without greetings, "please" and thanks; a one-sentence "Can you x?" becomes "X."."""
    out = text
    for pattern, replacement in _STRIP_RULES:
        out = pattern.sub(replacement, out)
    whole = _CAN_YOU.fullmatch(out)
    if whole is not None:
        out = whole["first"].upper() + whole["rest"] + "."
    return out


class ShortVariation:
    """The same task with the politeness stripped."""

    def vary(self, original: SourcePrompt, rng: random.Random, count: int) -> list[Variant]:
        """One terser variant where there is politeness to strip; ``[]`` otherwise."""
        if _repeats_prompt(original) or count < 1:
            return []
        shorter = strip_politeness(original.prompt)
        if shorter == original.prompt or len(shorter) < 8:
            return []
        return [Variant(shorter, original.reference)]


VARIATIONS: dict[str, Variation] = {
    "numbers": NumberVariation(),
    "paraphrase": ParaphraseVariation(),
    "verbose": VerboseVariation(),
    "short": ShortVariation(),
}


@dataclass(frozen=True)
class VariationQuota:
    """How often a variation is tried (share of originals, drawn per original) and how many
    variants each try makes."""

    share: float
    count: int


DEFAULT_QUOTAS: dict[str, VariationQuota] = {
    "numbers": VariationQuota(share=1.0, count=3),
    "paraphrase": VariationQuota(share=0.1, count=1),
    "verbose": VariationQuota(share=0.05, count=1),
    "short": VariationQuota(share=1.0, count=1),
}


def variation_rng(seed: int, kind: str, prompt_id: str) -> random.Random:
    """The random stream for one (kind, original): independent of order and of other prompts."""
    return random.Random(f"{seed}/{kind}/{prompt_id}")


def make_variations(
    originals: Sequence[SourcePrompt], seed: int, quotas: dict[str, VariationQuota] | None = None
) -> list[tuple[SourcePrompt, str, list[Variant]]]:
    """For every original and kind drawn for it, ``(original, kind, variants)`` (non-empty)."""
    quotas = DEFAULT_QUOTAS if quotas is None else quotas
    unknown = set(quotas) - set(VARIATIONS)
    if unknown:
        raise ValueError(f"unknown variation kinds: {sorted(unknown)}")
    out: list[tuple[SourcePrompt, str, list[Variant]]] = []
    for kind, quota in quotas.items():
        for original in originals:
            rng = variation_rng(seed, kind, original.id)
            if rng.random() >= quota.share:
                continue
            variants = VARIATIONS[kind].vary(original, rng, quota.count)
            if variants:
                out.append((original, kind, variants))
    return out
