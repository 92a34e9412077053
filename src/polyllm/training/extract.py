"""Pull the answer out of a model's free-form response.

Each function finds one kind of answer (a code block, the last ``\\boxed{}``, the last number, an
option letter, the final answer line) and returns it as text, or ``None`` when the response has
none. They only extract; comparing with a reference is :mod:`polyllm.training.score`'s job.

Small models rarely follow an answer format to the letter, so the extractors accept the common
styles (documented on each function) rather than one exact template.
"""

from __future__ import annotations

import re

_FENCE = re.compile(r"```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
_PYTHON_TAGS = {"python", "py", "python3", ""}
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)

# A number as people write it: optional sign, thousands separators, decimals, a fraction, or
# scientific notation. Currency signs and percent signs around it are dropped by the caller.
_NUMBER = re.compile(
    r"(?<![\w.])-?\s?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?(?:\s?/\s?\d+)?"
    r"|(?<![\w.])-?\.\d+"
)

_HTML_TAG = re.compile(r"</?[a-zA-Z][^<>]*>")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_COPULA = re.compile(r"\b(?:is|are|was|were)\s+", re.IGNORECASE)

_ANSWER_LEAD = re.compile(
    r"(?:final\s+answer|the\s+answer|answer|correct\s+(?:option|choice|answer))"
    r"\s*(?:is|:|=|would\s+be|should\s+be)?\s*:?\s*",
    re.IGNORECASE,
)


def strip_thinking(response: str) -> str:
    """Drop ``<think>…</think>`` blocks (reasoning models put scratch work there)."""
    without = _THINK.sub("", response)
    # An unclosed <think> means the model never got to an answer outside it.
    return without.split("<think>", 1)[0] if "<think>" in without else without


def extract_code(response: str) -> str | None:
    """The Python program in ``response``.

    Fenced blocks tagged ``python``/``py`` (or untagged) win; when several exist they are joined in
    order, since models often split helpers and the main function over blocks. Without fences,
    the whole response is taken as code when it looks like code (has a ``def``/``import``/
    ``class`` line); otherwise ``None``.
    """
    text = strip_thinking(response)
    blocks = [body for tag, body in _FENCE.findall(text) if tag.lower() in _PYTHON_TAGS]
    if blocks:
        return "\n\n".join(block.rstrip() for block in blocks) + "\n"
    if re.search(r"^(?:def |class |import |from \S+ import )", text, re.MULTILINE):
        return text.strip() + "\n"
    return None


def last_boxed(response: str) -> str | None:
    """Content of the last ``\\boxed{…}`` (or ``\\fbox{…}``), with nested braces balanced."""
    text = strip_thinking(response)
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    while start >= 0:
        brace = text.find("{", start)
        if brace >= 0 and text[start:brace].strip() in {"\\boxed", "\\fbox"}:
            depth = 0
            for index in range(brace, len(text)):
                if text[index] == "{":
                    depth += 1
                elif text[index] == "}":
                    depth -= 1
                    if depth == 0:
                        return text[brace + 1 : index].strip()
        # An unbalanced or bare \boxed: look at the one before it.
        before = text[:start]
        start = max(before.rfind("\\boxed"), before.rfind("\\fbox"))
    return None


def last_number(response: str) -> str | None:
    """The last number in ``response`` as written (``1,234``, ``-3.5``, ``3/4``, ``2e-5``)."""
    matches = _NUMBER.findall(strip_thinking(response))
    return matches[-1].replace(" ", "") if matches else None


def choice_letter(response: str, letters: str = "ABCDEFGHIJ") -> str | None:
    """The option letter the response chooses, or ``None``.

    Strongest evidence first, first match wins: a boxed letter (``\\boxed{C}``, Qwen's habit);
    ``Answer: C`` / ``The answer is (C)`` / ``correct option is C``; then a line that is only the
    letter (``C``, ``(C)``, ``C)``, ``**C**``); then ``(C)`` anywhere; finally a response that
    *starts* with the letter followed by punctuation (``C. Paris``). Markdown and HTML emphasis
    (``<strong>Answer:</strong> C``) is ignored. A letter mentioned in passing ("option A is
    wrong") is not a choice.
    """
    text = _HTML_TAG.sub(" ", strip_thinking(response)).replace("*", "")
    # Letters match case-sensitively, so "the answer is a bit" does not choose A.
    options = f"(?-i:[{letters}])"
    boxed = last_boxed(text)
    if boxed is not None:
        boxed = re.sub(r"\\text(?:bf)?\{([^{}]*)\}", r"\1", boxed).strip()
        match = re.fullmatch(rf"\(?({options})\)?(?:[.:)]\s*.*)?", boxed, re.DOTALL)
        if match:
            return match.group(1)
    patterns = [
        rf"{_ANSWER_LEAD.pattern}\(?({options})\)?(?![\w])",
        rf"^\s*\(?({options})\)?[.:]?\s*$",
        rf"\(({options})\)",
        rf"\A\s*({options})[.:)](?:\s|$)",
    ]
    for pattern in patterns:
        match = re.search(pattern, text, re.IGNORECASE | re.MULTILINE)
        if match:
            return match.group(1)
    return None


def first_sentence(response: str) -> str | None:
    """The response's first sentence (of its first non-empty line), or ``None``."""
    lines = strip_thinking(response).strip().splitlines()
    return _SENTENCE_END.split(lines[0].strip())[0] if lines else None


def last_sentence(response: str) -> str | None:
    """The response's last sentence (of its last non-empty line), or ``None``."""
    lines = strip_thinking(response).strip().splitlines()
    return _SENTENCE_END.split(lines[-1].strip())[-1] if lines else None


def predicate(sentence: str) -> str | None:
    """What a one-sentence answer says its subject is: the text after its first is/are/was/were
    ("The outer layer of the skin is the epidermis." → "the epidermis."), or ``None``."""
    match = _COPULA.search(sentence)
    return sentence[match.end() :].strip() if match else None


def final_answer(response: str) -> str | None:
    """The final answer as a short string.

    The text after the last ``Answer:``/``The answer is`` when there is one; else the last
    ``\\boxed{}``; else the last non-empty line. Markdown emphasis, code ticks, ``$…$`` and a
    trailing period around it are removed.
    """
    text = strip_thinking(response)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    for line in reversed(lines):
        leads = list(_ANSWER_LEAD.finditer(line))
        if leads and leads[-1].group(0).strip():
            tail = line[leads[-1].end() :].strip()
            if tail:
                return _tidy(tail)
    boxed = last_boxed(text)
    if boxed is not None:
        return _tidy(boxed)
    return _tidy(lines[-1])


def _tidy(answer: str) -> str:
    # Markdown emphasis and code ticks around the answer ("**Answer:** `42`"), not inside it:
    # "x**2" is Python's power.
    answer = answer.strip(" \t*`").lstrip(":").strip(" \t*`")
    if answer.startswith("$") and answer.endswith("$") and len(answer) > 1:
        answer = answer.strip("$").strip()
    return answer.rstrip(".").strip()
