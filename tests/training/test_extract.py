"""Answer extraction from free-form responses."""

from __future__ import annotations

import pytest

from polyllm.training import extract


def test_extract_code_prefers_python_fences_and_joins_them() -> None:
    response = "Here:\n```python\ndef f():\n    return 1\n```\nand\n```py\nX = 2\n```\n"
    assert extract.extract_code(response) == "def f():\n    return 1\n\nX = 2\n"


def test_extract_code_skips_other_languages_and_takes_plain_code() -> None:
    assert extract.extract_code("```bash\nls\n```") is None
    assert extract.extract_code("def g(x):\n    return x\n") == "def g(x):\n    return x\n"
    assert extract.extract_code("I don't know.") is None


def test_extract_code_ignores_thinking() -> None:
    response = "<think>```python\nbad = 1\n```</think>```python\ngood = 1\n```"
    assert extract.extract_code(response) == "good = 1\n"


def test_last_boxed_balances_braces() -> None:
    assert extract.last_boxed(r"\boxed{1} then \boxed{\frac{1}{2}}") == r"\frac{1}{2}"
    assert extract.last_boxed(r"\boxed{x^{2}+1} and a broken \boxed{") == "x^{2}+1"
    assert extract.last_boxed("no box") is None


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("It costs $1,234.50 in total.", "1,234.50"),
        ("first 3 then -7", "-7"),
        ("about 3/4 of it", "3/4"),
        ("tiny: 2e-5", "2e-5"),
        ("none here", None),
    ],
)
def test_last_number(text: str, number: str | None) -> None:
    assert extract.last_number(text) == number


@pytest.mark.parametrize(
    ("response", "letter"),
    [
        ("Answer: C", "C"),
        ("The answer is (B) because of reasons.", "B"),
        ("The correct option is **D**.", "D"),
        ("Let me think.\nA\n", "A"),
        ("(C) is right", "C"),
        ("B. Paris is the capital", "B"),
        ("The answer is a bit unclear", None),
        ("I am not sure.", None),
        # Seen in the collected answers: Qwen boxes the letter, Gemma writes HTML emphasis.
        ("Therefore, the correct answer is \\(\\boxed{E}\\).", "E"),
        ("The correct answer is:\n\\[\n\\boxed{C}\n\\]", "C"),
        ("So \\boxed{\\text{(B) 30 swerts}}", "B"),
        ("<strong>Correct Answer:</strong> D\n\n<strong>Explanation:</strong>", "D"),
        ("The result is \\boxed{Even}.", None),
    ],
)
def test_choice_letter(response: str, letter: str | None) -> None:
    assert extract.choice_letter(response, "ABCDE") == letter


def test_first_and_last_sentence() -> None:
    response = "The answer is gamma. It is the third letter.\n\nSo: gamma! Done."
    assert extract.first_sentence(response) == "The answer is gamma."
    assert extract.last_sentence(response) == "Done."
    assert extract.first_sentence(" \n ") is None
    assert extract.last_sentence("") is None


def test_predicate_is_what_follows_the_first_copula() -> None:
    assert extract.predicate("The outer layer of the skin is the epidermis.") == "the epidermis."
    assert extract.predicate("Its parts were A and B, which is odd") == "A and B, which is odd"
    assert extract.predicate("Mount Olympus.") is None
    assert extract.predicate("This island has no name") is None  # "is" inside a word


def test_final_answer_prefers_answer_lead_then_box_then_last_line() -> None:
    assert extract.final_answer("work\nThe answer is 42.\nThanks!") == "42"
    assert extract.final_answer(r"so \boxed{7}" + "\nDone") == "7"
    assert extract.final_answer("work\n**Paris**") == "Paris"
    assert extract.final_answer("  \n ") is None
