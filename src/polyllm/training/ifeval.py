"""IFEval's verifiable-instruction checks (via PyPI's ``if-verifiable``), offline.

The library asks NLTK for its ``punkt`` data, which cannot be downloaded here. While a check
runs, :func:`check_instructions` gives the library an untrained ``PunktSentenceTokenizer`` for
sentences and ``word_tokenize(..., preserve_line=True)`` for words, neither of which needs data.
Verdicts on sentence-count instructions can differ slightly from the official scorer. Language
detection (``langdetect``) is seeded so a verdict is the same on every run. A letter-frequency
instruction about a character that is not a letter ("the # should appear at least 4 times") is
checked for that character: the library would count a letter it draws at random.
"""

from __future__ import annotations

import contextlib
import threading
import types
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

_PATCH_LOCK = threading.Lock()


@dataclass(frozen=True)
class InstructionVerdicts:
    """Per-instruction strict and loose verdicts (loose as in the IFEval paper)."""

    instruction_ids: tuple[str, ...]
    strict: tuple[bool, ...]
    loose: tuple[bool, ...]
    unknown: tuple[str, ...]


def check_instructions(
    response: str,
    instruction_ids: Sequence[str],
    kwargs_list: Sequence[Mapping[str, Any]],
    prompt: str,
) -> InstructionVerdicts:
    """Check ``response`` against each instruction; ids the library does not know are listed in
    ``unknown`` (and count as not followed), never skipped silently."""
    from if_verifiable.common import evaluate_instructions  # type: ignore[import-untyped]
    from if_verifiable.ifeval.instructions_registry import INSTRUCTION_DICT  # type: ignore[import-untyped]

    unknown = tuple(i for i in instruction_ids if i not in INSTRUCTION_DICT)
    with _offline_and_repeatable():
        results, _scores = evaluate_instructions(
            response=response,
            instruction_id_list=list(instruction_ids),
            kwargs_list=[dict(kwargs) for kwargs in kwargs_list],
            prompt=prompt,
            instruction_registry=INSTRUCTION_DICT,
        )
    by_id = {result.instruction_id: result for result in results}
    ids = tuple(instruction_ids)
    strict = tuple(bool(i in by_id and by_id[i].strict_pass) for i in ids)
    loose = tuple(bool(i in by_id and by_id[i].loose_pass) for i in ids)
    return InstructionVerdicts(ids, strict, loose, unknown)


@contextlib.contextmanager
def _offline_and_repeatable() -> Iterator[None]:
    """While a check runs: the library's NLTK entry points swapped for data-free ones, its
    language detection seeded, its letter-frequency check made to count the character asked for."""
    import langdetect  # type: ignore[import-untyped]
    import nltk  # type: ignore[import-untyped]
    from if_verifiable.ifeval import instructions_util  # type: ignore[import-untyped]
    from if_verifiable.ifeval.instructions import (  # type: ignore[import-untyped]
        LetterFrequencyChecker,
    )

    build_letter_check = LetterFrequencyChecker.build_description

    def literal_letter_check(self: Any, *, letter: str | None = None, **kwargs: Any) -> str:
        description: str = build_letter_check(self, letter=letter, **kwargs)
        if letter and len(letter.strip()) == 1:
            self._letter = letter.strip().lower()
        return description

    sentence_tokenizer = nltk.tokenize.punkt.PunktSentenceTokenizer()

    def word_tokenize(text: str) -> list[str]:
        words: list[str] = nltk.word_tokenize(text, preserve_line=True)
        return words

    offline = types.SimpleNamespace(tokenize=nltk.tokenize, word_tokenize=word_tokenize)
    with _PATCH_LOCK:
        saved = (instructions_util.nltk, instructions_util._get_sentence_tokenizer)
        saved_seed = langdetect.DetectorFactory.seed
        instructions_util.nltk = offline
        instructions_util._get_sentence_tokenizer = lambda: sentence_tokenizer
        langdetect.DetectorFactory.seed = 0
        LetterFrequencyChecker.build_description = literal_letter_check
        try:
            yield
        finally:
            instructions_util.nltk, instructions_util._get_sentence_tokenizer = saved
            langdetect.DetectorFactory.seed = saved_seed
            LetterFrequencyChecker.build_description = build_letter_check
