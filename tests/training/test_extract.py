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
    ],
)
def test_choice_letter(response: str, letter: str | None) -> None:
    assert extract.choice_letter(response, "ABCDE") == letter


def test_final_answer_prefers_answer_lead_then_box_then_last_line() -> None:
    assert extract.final_answer("work\nThe answer is 42.\nThanks!") == "42"
    assert extract.final_answer(r"so \boxed{7}" + "\nDone") == "7"
    assert extract.final_answer("work\n**Paris**") == "Paris"
    assert extract.final_answer("  \n ") is None
