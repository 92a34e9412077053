"""Every scorer, with right and wrong answers, on tiny hand-written records."""

from __future__ import annotations

from typing import Any

import pytest

from polyllm.training.score import (
    SCORERS,
    ScoreResult,
    UnknownScorer,
    normalize_latex,
    normalize_squad,
    parse_number,
    score,
)


def record(scorer: str, reference: Any, prompt: str = "a prompt") -> dict[str, Any]:
    return {"id": "t/1", "scorer": scorer, "reference": reference, "prompt": prompt, "meta": {}}


def verdict(scorer: str, reference: Any, response: str) -> bool | None:
    return score(record(scorer, reference), response).correct


def test_registry_covers_every_scorer_in_the_data() -> None:
    names = {"unit_test", "numeric", "math_boxed", "mc_letter", "alias_em", "exact_match"}
    assert names | {"ifeval", "judge"} == set(SCORERS)


def test_unknown_scorer_is_an_error() -> None:
    with pytest.raises(UnknownScorer):
        score(record("vibes", "x"), "y")


@pytest.mark.parametrize(
    ("reference", "response", "correct"),
    [
        ("12", "She pays 3 * 4 = 12 dollars.", True),
        ("1200", "The total is $1,200.", True),
        ("25", "That is 25%.", True),
        (17.0, "He deleted 17 apps", True),
        ("0.75", "3/4", True),
        ("5", "The answer is 5 apples, since 2 + 3 = 5.", True),
        ("12", "It is 13.", False),
        ("12", "I cannot tell.", False),
        ("12", "It is " + "9" * 400 + ".", False),  # beyond a float: wrong, not a crash
        ("12", "It is 1e999999999.", False),  # not expanded into a billion digits
        ("0.1", "It is 0.1000000001.", True),
    ],
)
def test_numeric(reference: Any, response: str, correct: bool) -> None:
    assert verdict("numeric", reference, response) is correct


@pytest.mark.parametrize(
    ("reference", "response", "correct"),
    [
        ("-8", r"So $xy = \boxed{-8}$.", True),
        (r"\dfrac{1}{4}", r"\boxed{\frac14}", True),
        (r"\frac{1}{2}", r"\boxed{0.5}", True),
        (r"85\text{ feet}", r"\boxed{85}", True),
        ("30", r"\boxed{30^\circ}", True),
        (r"\left( 3, \frac{1}{2} \right)", r"\boxed{(3,\frac{1}{2})}", True),
        ("6x^2 + 30x + 36", r"\boxed{6x^2+30x+36}", True),
        ("12441600", r"\boxed{12,441,600}", True),
        ("5", "no box, but the answer is 5", True),
        ("-8", r"\boxed{8}", False),
        (r"\frac{1}{2}", r"\boxed{\frac{1}{3}}", False),
        ("5", "no idea", False),
    ],
)
def test_math_boxed(reference: str, response: str, correct: bool) -> None:
    assert verdict("math_boxed", reference, response) is correct


def test_math_boxed_reason_says_when_no_box_was_used() -> None:
    assert "no \\boxed" in score(record("math_boxed", "5"), "It is 5").reason


def test_normalize_latex() -> None:
    assert normalize_latex(r"\left( \dfrac{1}{2}, 3 \right)") == normalize_latex(r"(\frac12,3)")
    assert normalize_latex("x = 4.0") == "4"
    assert normalize_latex(r"10\%") == "10"


@pytest.mark.parametrize(
    ("response", "correct"),
    [
        ("Answer: C", True),
        ("Let me think... the answer is (C).", True),
        ("C", True),
        ("**C**", True),
        ("Answer: B", False),
        ("I would rather not say.", False),
    ],
)
def test_mc_letter(response: str, correct: bool) -> None:
    assert verdict("mc_letter", "C", response) is correct


GREEK = (
    "What is the third letter of the Greek alphabet?\n"
    "A. delta\nB. gamma\nC. gamma ray\nD. alpha beta\n"
    "Answer with the letter of the correct option."
)


@pytest.mark.parametrize(
    ("response", "letter"),
    [
        # Small models answer with the option's text instead of its letter.
        ("The third letter of the Greek alphabet is gamma.", "B"),
        ("gamma ray", "C"),
        ("It was, in the end, a gamma ray.", "C"),  # "gamma" inside "gamma ray" is no 2nd choice
        ("First: delta is wrong.\nThe answer is gamma.", "B"),  # the last sentence states it
        # Not statements of a choice:
        ("Delta or gamma.", None),  # two options
        ("Options:\nA. delta\nB. gamma\nC. gamma ray\nD. alpha beta", None),  # repeats them
        ("Let us look at delta. It comes fourth. Gamma is third.\nThe letter is", None),
        ("The answer is gamma, the letter that comes third in the order of the", None),  # cut off
        ("The third letter of the Greek alphabet?", None),
    ],
)
def test_mc_letter_reads_an_option_stated_by_its_text(response: str, letter: str | None) -> None:
    result = score(record("mc_letter", "B", GREEK), response)
    assert result.extracted == letter
    assert result.correct is (letter == "B")


def test_mc_letter_ignores_option_text_that_is_in_the_question() -> None:
    prompt = "How many edges has a complete graph with 10 vertices?\nA. 10\nB. 45\nAnswer."
    assert score(record("mc_letter", "B", prompt), "It is 45.").extracted == "B"
    assert score(record("mc_letter", "B", prompt), "It is 10.").extracted is None


@pytest.mark.parametrize(
    ("response", "correct"),
    [
        ("Joseph Heller", True),
        ("joseph heller.", True),
        ("It was written by Joseph Heller.", True),
        ("The Outback", True),
        ("Kurt Vonnegut", False),
        (
            "Many people think of Joseph Heller but I believe the real author of this "
            "book was somebody else entirely, possibly Kurt Vonnegut.",
            False,
        ),
        # A one-sentence answer (SmolLM's style) states the alias after its verb.
        ("The vast interior rural area of Australia is known as the Australian Outback.", True),
        ("The author of this famous 1961 war novel is widely said to be Joseph Heller.", True),
        ("Joseph Heller is a name people suggest, but the author was Kurt Vonnegut.", False),
        ("Is the author of the novel really Joseph Heller, or was it someone else?", False),
    ],
)
def test_alias_em(response: str, correct: bool) -> None:
    aliases = ["Joseph Heller", "American author Joseph Heller", "Outback"]
    assert verdict("alias_em", aliases, response) is correct


def test_alias_em_numeric_alias_tolerates_rounding() -> None:
    assert verdict("alias_em", ["88.19311663479922"], "About 88.19 calories") is True
    assert verdict("alias_em", ["88.19311663479922"], "About 91 calories") is False


def test_normalize_squad() -> None:
    assert normalize_squad("The  Cornett family!") == "cornett family"


@pytest.mark.parametrize(
    ("reference", "response", "correct"),
    [
        ("-7", "s(-45) = -7", True),
        ("{1, 2, 3}", "Working...\nThe answer is {1,2,3}.", True),
        ("True", "true", True),
        ("64*h**3", "Answer: `64*h**3`", True),
        ("-0.000022", "-2.2e-05", True),
        ("-7", "s(-45) = 7", False),
        ("True", "False", False),
        ("hello", "The value of `y` at line 4 is `'hello'`.", True),
        ("-0.000018", "Rounded to seven decimal places it is -0.000018.", True),
        ("hello", "The value of `y` at line 4 is `'world'`.", False),
    ],
)
def test_exact_match(reference: str, response: str, correct: bool) -> None:
    assert verdict("exact_match", reference, response) is correct


def test_unit_test_scorer_runs_extracted_code() -> None:
    reference = {"tests": ["assert double(2) == 4", "assert double(0) == 0"], "setup": ""}
    right = "Sure:\n```python\ndef double(x):\n    return 2 * x\n```"
    wrong = "```python\ndef double(x):\n    return x + 2\n```"
    good = score(record("unit_test", reference), right)
    assert (good.score, good.correct) == (1.0, True)
    bad = score(record("unit_test", reference), wrong)
    assert (bad.score, bad.correct) == (0.0, False)
    assert bad.reason.startswith("failed") and "test 1" in bad.reason
    assert score(record("unit_test", reference), "No code, sorry.").reason == "no Python code found"


def ifeval_reference(*checks: tuple[str, dict[str, Any]]) -> dict[str, Any]:
    return {"instruction_id_list": [c[0] for c in checks], "kwargs": [c[1] for c in checks]}


def test_ifeval_all_followed() -> None:
    reference = ifeval_reference(
        ("change_case:english_lowercase", {}),
        ("length_constraints:number_sentences", {"relation": "less than", "num_sentences": 3}),
        ("punctuation:no_comma", {}),
    )
    result = score(record("ifeval", reference), "all lower case here. only two sentences.")
    assert result == ScoreResult(1.0, True, None, "loose 3/3, strict 3/3")


def test_ifeval_partly_followed_scores_the_fraction() -> None:
    reference = ifeval_reference(
        ("change_case:english_lowercase", {}),
        ("keywords:existence", {"keywords": ["banana"]}),
    )
    response = "i really like eating apples and pears on every single day of the week."
    result = score(record("ifeval", reference), response)
    assert result.score == 0.5 and result.correct is False
    assert "keywords:existence" in result.reason


@pytest.mark.parametrize(("response", "correct"), [("# a # b # c #", True), ("# a # b", False)])
def test_ifeval_letter_frequency_counts_a_non_letter(response: str, correct: bool) -> None:
    # IFEval asks for "#" once; the library alone would count a randomly drawn letter instead.
    kwargs = {"letter": "#", "let_frequency": 4, "let_relation": "at least"}
    reference = ifeval_reference(("keywords:letter_frequency", kwargs))
    verdicts = {score(record("ifeval", reference), response).correct for _ in range(20)}
    assert verdicts == {correct}


def test_ifeval_loose_forgives_a_preamble_line() -> None:
    reference = ifeval_reference(("change_case:english_lowercase", {}))
    result = score(record("ifeval", reference), "Sure! Here it is:\nall lower case.")
    assert result.correct is True and result.reason == "loose 1/1, strict 0/1"


def test_ifeval_word_tokenizer_works_offline() -> None:
    reference = ifeval_reference(
        (
            "change_case:capital_word_frequency",
            {"capital_frequency": 2, "capital_relation": "at least"},
        )
    )
    assert verdict("ifeval", reference, "THIS is VERY important.") is True
    assert verdict("ifeval", reference, "This is quite important.") is False


def test_ifeval_language_detection() -> None:
    reference = ifeval_reference(("language:response_language", {"language": "de"}))
    german = "Das ist eine kurze Antwort auf Deutsch, und sie ist hoffentlich klar genug."
    assert verdict("ifeval", reference, german) is True
    assert verdict("ifeval", reference, "This answer is written in plain English words.") is False


def test_parse_number() -> None:
    assert parse_number("$1,234.50") == parse_number("1234.5")
    assert parse_number(r"\frac{3}{4}") == parse_number("0.75")
    assert parse_number("twelve") is None
