"""Score a model's response to a training prompt against the prompt's reference.

:func:`score` looks up ``record["scorer"]`` in :data:`SCORERS`; every scorer has the same
signature, ``(record, response) -> ScoreResult``. The record is one line of the shared prompts
file (``scorer``, ``reference``, ``prompt``…). Choices made to be fair to small models:

- ``unit_test``: the extracted code runs with ``reference.setup`` and ``reference.tests`` in
  :mod:`polyllm.training.sandbox`; 1.0 when every test passes.
- ``numeric``: the last number of the final answer (the text after the last "answer is" /
  "Answer:", else the whole response) equals the reference; commas, ``$``, ``%``, trailing
  ``.0`` and fractions (``3/4`` against ``0.75``) are tolerated (relative tolerance 1e-6).
- ``math_boxed``: the last ``\\boxed{}`` equals the reference after LaTeX normalisation; without a
  box, the last number of the response is compared instead (the reason says so), since small
  models often state a right answer without boxing it.
- ``mc_letter``: the chosen option letter (:func:`~polyllm.training.extract.choice_letter`);
  without a letter, the one option whose text the response states (:func:`named_option`).
- ``alias_em``: SQuAD-normalised exact match of the final answer, or of the whole response,
  against any alias; a short response (≤ 10 words) also counts when it contains an alias as a
  whole phrase ("It was Joseph Heller."), and so does a one-sentence answer whose predicate
  (after its first is/are/was/were) contains one ("The outer layer of the skin is the
  epidermis."). A numeric alias also matches a number within 0.1 %.
- ``exact_match``: the final answer (or the right-hand side of its last ``=``, or what it says
  something *is*) equals the reference after lower-casing and removing spaces, quotes and a
  trailing period; numbers compare by value.
- ``ifeval``: IFEval's checks with the paper's *loose* criterion (the response also passes when
  its first/last line or markdown asterisks are removed): score = fraction of instructions
  followed, correct = all followed. The strict counts are in the reason.
- ``judge``: open-ended; the cosine similarity of the response's and the reference answer's
  all-MiniLM-L6-v2 embeddings (the sentence-transformers model, run in NumPy by
  :mod:`polyllm.router.embedding`; both texts cut to its first 128 tokens), clipped to [0, 1].
  ``correct`` when it reaches :data:`JUDGE_CORRECT`. A similarity says the answer is *about*
  what the reference says, not that it is right: a weak judge, used because nothing else
  scores open-ended answers offline.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from polyllm.training import extract
from polyllm.training.ifeval import check_instructions
from polyllm.training.sandbox import run_python

if TYPE_CHECKING:
    from polyllm.router.embedding import Embedder


@dataclass(frozen=True)
class ScoreResult:
    """One verdict: ``score`` in [0, 1] (``None`` when not automatically scorable), ``correct``,
    the answer the scorer extracted, and a short human-readable reason."""

    score: float | None
    correct: bool | None
    extracted: str | None
    reason: str


class UnknownScorer(ValueError):
    """A record names a scorer that :data:`SCORERS` does not have."""


Scorer = Callable[[Mapping[str, Any], str], ScoreResult]


def _verdict(correct: bool, extracted: str | None, reason: str) -> ScoreResult:
    return ScoreResult(1.0 if correct else 0.0, correct, extracted, reason)


def _no_answer(what: str) -> ScoreResult:
    return ScoreResult(0.0, False, None, f"no {what} found")


# ---- numbers -------------------------------------------------------------------------------------


def parse_number(text: str) -> Fraction | None:
    """A number written as ``1,234``, ``$5``, ``25%``, ``-3.50``, ``3/4``, ``2e-5``; else None."""
    cleaned = re.sub(r"[\s$€£]|\\\$|\\%|%|\\!", "", text).rstrip(".")
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", cleaned):
        cleaned = cleaned.replace(",", "")
    frac = re.fullmatch(r"(-?)\\[dt]?frac\{(-?\d+)\}\{(\d+)\}", cleaned)
    if frac:
        cleaned = f"{frac.group(1)}{frac.group(2)}/{frac.group(3)}"
    if re.search(r"[eE][+-]?\d{4,}", cleaned):  # 1e999999999 would be a billion-digit integer
        return None
    try:
        value = Fraction(cleaned)
    except (ValueError, ZeroDivisionError):
        return None
    return value


def _same_number(left: Fraction, right: Fraction, rel: Fraction = Fraction(1, 10**6)) -> bool:
    """Equal within ``rel`` (absolute below 1), in exact arithmetic: a model's 400-digit answer
    is wrong, not a float overflow."""
    return abs(left - right) <= rel * max(Fraction(1), abs(right))


def score_numeric(record: Mapping[str, Any], response: str) -> ScoreResult:
    """Last number of the final answer equals the reference number."""
    reference = parse_number(str(record["reference"]))
    if reference is None:
        raise ValueError(f"numeric reference is not a number: {record['reference']!r}")
    answer = extract.final_answer(response) or ""
    found = extract.last_number(answer) or extract.last_number(response)
    if found is None:
        return _no_answer("number")
    value = parse_number(found)
    correct = value is not None and _same_number(value, reference)
    return _verdict(correct, found, f"{found} vs {record['reference']}")


# ---- LaTeX ---------------------------------------------------------------------------------------


def normalize_latex(text: str) -> str:
    """Canonical form of a short LaTeX answer, for equality (in the spirit of MATH's
    ``strip_string``): no spacing commands, ``\\left``/``\\right``, ``$``, degrees, percent,
    trailing unit words; ``dfrac``→``frac``; ``\\frac12``→``\\frac{1}{2}``; ``x=3``→``3``;
    thousands separators and trailing ``.0`` removed."""
    s = text.strip().replace("\n", "")
    for token in ("\\!", "\\,", "\\;", "\\:", "\\ ", "\\left", "\\right", "\\displaystyle"):
        s = s.replace(token, "")
    s = s.replace("dfrac", "frac").replace("tfrac", "frac").replace("\\$", "").replace("$", "")
    s = re.sub(r"\^\{?\\circ\}?|°|\\%|%", "", s)
    # Units at the end: "85\text{ feet}", "5 \mbox{cm}"; elsewhere \text{x} is just x.
    s = re.sub(r"(?<=\S)\s*\\(?:text|mbox|mathrm)\{\s*[a-zA-Z][a-zA-Z ]*\}\s*$", "", s)
    s = re.sub(r"\\(?:text|mbox|mathrm|textbf)\{([^{}]*)\}", r"\1", s)
    s = s.replace(" ", "")
    s = re.sub(r"\\frac(\d)(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\frac\{([^{}]*)\}(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\sqrt(\w)", r"\\sqrt{\1}", s)
    s = re.sub(r"^[a-zA-Z]\w*=", "", s)  # "x=3" → "3"
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", s):
        s = s.replace(",", "")
    s = re.sub(r"(?<![\d.])\.(\d)", r"0.\1", s)
    s = re.sub(r"(\d+)\.0+(?!\d)", r"\1", s)
    return s


def _latex_equal(answer: str, reference: str) -> bool:
    left, right = normalize_latex(answer), normalize_latex(reference)
    if left == right:
        return True
    left_value, right_value = parse_number(left), parse_number(right)
    return left_value is not None and right_value is not None and left_value == right_value


def score_math_boxed(record: Mapping[str, Any], response: str) -> ScoreResult:
    """Last ``\\boxed{}`` equals the reference after LaTeX normalisation."""
    reference = str(record["reference"])
    boxed = extract.last_boxed(response)
    if boxed is not None:
        correct = _latex_equal(boxed, reference)
        return _verdict(correct, boxed, f"boxed {boxed!r} vs {reference!r}")
    number = extract.last_number(response)
    if number is None:
        return _no_answer("\\boxed{} or number")
    correct = _latex_equal(number, reference)
    return _verdict(correct, number, f"no \\boxed{{}}; last number {number} vs {reference!r}")


# ---- letters and short text ----------------------------------------------------------------------


def normalize_squad(text: str) -> str:
    """SQuAD's answer normalisation: lower case, no punctuation, no articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


_OPTION = re.compile(r"^\s*([A-J])[.)]\s+(.+?)\s*$", re.MULTILINE)


def named_option(prompt: str, response: str) -> str | None:
    """The letter of the one option whose text the response states as its answer ("The third
    letter of the Greek alphabet is gamma." → the letter of "gamma"); ``None`` when it states
    none or several.

    Read as statements: a response that is one short or complete sentence ("Crossover study"),
    and what the first and the last sentence say something *is* (after is/are/was/were), when
    the sentence is complete. Not read: lines that repeat an option ("A. gamma"), the sentences
    in between (often a walk through every option), a sentence cut off by the token budget, and
    an option whose text is in the question too ("a graph with 10 vertices", option "10").
    """
    options = {letter: normalize_squad(text) for letter, text in _OPTION.findall(prompt)}
    text = _OPTION.sub("", extract.strip_thinking(response)).strip()
    stated = []
    for sentence in {extract.first_sentence(text) or "", extract.last_sentence(text) or ""}:
        complete = sentence.rstrip("*_`\"')").endswith((".", "!", "?"))
        if sentence == text and (complete or len(sentence.split()) <= 10):
            stated.append(extract.predicate(sentence) or sentence)
        elif complete:
            stated.append(extract.predicate(sentence) or "")
    said = " ".join(f" {normalize_squad(statement)} " for statement in stated)
    asked = f" {normalize_squad(_OPTION.sub('', prompt))} "
    named = {
        letter
        for letter, text in options.items()
        if text and f" {text} " in said and f" {text} " not in asked
    }
    # "gamma" inside a named "gamma ray" is not a second choice.
    named = {a for a in named if not any(b != a and options[a] in options[b] for b in named)}
    return named.pop() if len(named) == 1 else None


def score_mc_letter(record: Mapping[str, Any], response: str) -> ScoreResult:
    """The chosen option letter equals the reference letter; without a letter, the one option
    whose text the response states is its choice."""
    reference = str(record["reference"]).strip().upper()
    letter = extract.choice_letter(response)
    how = "chose"
    if letter is None:
        letter, how = named_option(str(record.get("prompt", "")), response), "named the text of"
    if letter is None:
        return _no_answer("option letter or option text")
    return _verdict(letter == reference, letter, f"{how} {letter}, reference {reference}")


def score_alias_em(record: Mapping[str, Any], response: str) -> ScoreResult:
    """Normalised exact match against any alias (see the module docstring for the phrase rule)."""
    aliases = [str(alias) for alias in record["reference"]]
    answer = extract.final_answer(response)
    if answer is None:
        return _no_answer("answer")
    whole = normalize_squad(extract.strip_thinking(response))
    candidates = {normalize_squad(answer), whole}
    stated = _stated(response)
    for alias in aliases:
        norm = normalize_squad(alias)
        if not norm and alias.strip() and alias.strip() == answer.strip():
            return _verdict(True, answer, f"equals alias {alias!r}")  # all-punctuation alias
        if norm and norm in candidates:
            return _verdict(True, answer, f"matches alias {alias!r}")
        if norm and len(whole.split()) <= 10 and re.search(rf"\b{re.escape(norm)}\b", whole):
            return _verdict(True, answer, f"short response contains alias {alias!r}")
        if norm and stated and re.search(rf"\b{re.escape(norm)}\b", stated):
            return _verdict(True, answer, f"first sentence states alias {alias!r}")
        alias_value, found = parse_number(alias), extract.last_number(answer)
        value = parse_number(found) if found else None
        near = Fraction(1, 1000)
        if alias_value is not None and value is not None and _same_number(value, alias_value, near):
            return _verdict(True, answer, f"{found} matches numeric alias {alias!r}")
    return _verdict(False, answer, f"{answer!r} matches none of {len(aliases)} aliases")


def _stated(response: str) -> str | None:
    """What a one-sentence answer (its first sentence, ≤ 30 words) says its subject is,
    normalised: "The outer layer of the skin is the epidermis." → "epidermis". Small models
    answer a question in a sentence; an alias that is only *mentioned* before the verb, in a
    long hedge or in a question, does not count."""
    sentence = extract.first_sentence(response)
    if sentence is None or len(sentence.split()) > 30 or sentence.endswith("?"):
        return None
    stated = extract.predicate(sentence)
    return normalize_squad(stated) if stated else None


def _normalize_exact(text: str) -> str:
    text = text.strip().strip("`\"'").rstrip(".").strip().strip("`\"'")
    return re.sub(r"\s+", "", text.lower())


def score_exact_match(record: Mapping[str, Any], response: str) -> ScoreResult:
    """The final answer (or its part after the last ``=``) equals the reference."""
    reference = str(record["reference"])
    answer = extract.final_answer(response)
    if answer is None:
        return _no_answer("answer")
    candidates = [answer]
    if "=" in answer and "=" not in reference:
        candidates.append(answer.rsplit("=", 1)[1])
    stated = extract.predicate(answer)  # "The value of y at line 4 is 'hello'."
    if stated:
        candidates.append(stated)
    target = _normalize_exact(reference)
    target_value = parse_number(reference)
    for candidate in candidates:
        if _normalize_exact(candidate) == target:
            return _verdict(True, candidate.strip(), f"{candidate.strip()!r} equals reference")
        value = parse_number(candidate)
        if value is not None and target_value is not None and _same_number(value, target_value):
            return _verdict(True, candidate.strip(), f"{candidate.strip()!r} equals reference")
    return _verdict(False, answer, f"{answer!r} vs {reference!r}")


# ---- programs, instructions, open-ended ----------------------------------------------------------


def score_unit_test(record: Mapping[str, Any], response: str) -> ScoreResult:
    """Run the extracted code with the reference's setup and tests in the sandbox."""
    code = extract.extract_code(response)
    if code is None:
        return _no_answer("Python code")
    reference = record["reference"]
    result = run_python(code, list(reference["tests"]), str(reference.get("setup") or ""))
    return _verdict(result.status == "passed", code, f"{result.status}: {result.detail}")


def score_ifeval(record: Mapping[str, Any], response: str) -> ScoreResult:
    """Fraction of IFEval instructions followed (loose criterion)."""
    reference = record["reference"]
    ids = list(reference["instruction_id_list"])
    verdicts = check_instructions(response, ids, reference["kwargs"], str(record.get("prompt", "")))
    total = len(ids)
    loose, strict = sum(verdicts.loose), sum(verdicts.strict)
    missed = [i for i, ok in zip(ids, verdicts.loose, strict=True) if not ok]
    reason = f"loose {loose}/{total}, strict {strict}/{total}"
    if missed:
        reason += "; not followed: " + ", ".join(missed)
    if verdicts.unknown:
        reason += "; unknown to the checker: " + ", ".join(verdicts.unknown)
    score_value = loose / total if total else 0.0
    return ScoreResult(score_value, total > 0 and loose == total, None, reason)


JUDGE_CORRECT = 0.7


@functools.cache
def _judge_embedder() -> Embedder:
    """The full MiniLM, loaded once per process (fetched into models/embedder if missing).
    Scoring runs one process per core, so each uses one BLAS thread."""
    from threadpoolctl import threadpool_limits

    from polyllm.models.embedder import fetch_embedder
    from polyllm.router.embedding import Embedder

    threadpool_limits(limits=1, user_api="blas")

    return Embedder(fetch_embedder())


def score_judge(record: Mapping[str, Any], response: str) -> ScoreResult:
    """Embedding similarity between the response and the reference answer."""
    reference = str(record.get("reference") or "")
    if not response.strip() or not reference.strip():
        return ScoreResult(0.0, False, None, "empty response or reference")
    embedder = _judge_embedder()
    similarity = float(embedder.embed(response) @ embedder.embed(reference))
    value = min(1.0, max(0.0, similarity))
    return ScoreResult(value, value >= JUDGE_CORRECT, None, f"similarity {similarity:.3f}")


SCORERS: dict[str, Scorer] = {
    "unit_test": score_unit_test,
    "numeric": score_numeric,
    "math_boxed": score_math_boxed,
    "mc_letter": score_mc_letter,
    "alias_em": score_alias_em,
    "exact_match": score_exact_match,
    "ifeval": score_ifeval,
    "judge": score_judge,
}


def score(record: Mapping[str, Any], response: str) -> ScoreResult:
    """Score ``response`` to ``record`` with the scorer the record names."""
    name = record.get("scorer")
    scorer = SCORERS.get(str(name))
    if scorer is None:
        raise UnknownScorer(f"unknown scorer {name!r}; known: {', '.join(sorted(SCORERS))}")
    return scorer(record, response)
