"""The ``judge`` scorer: embedding similarity of an open-ended answer to the reference."""

from __future__ import annotations

import pytest

from polyllm.models.embedder import EMBEDDER_DIR
from polyllm.training.score import JUDGE_CORRECT, score

pytestmark = pytest.mark.skipif(
    not (EMBEDDER_DIR / "tokenizer.json").exists(),
    reason="no embedder in models/embedder: run `polyllm models embedder` (make test does)",
)
RECORD = {
    "scorer": "judge",
    "reference": "To boil an egg, place it in boiling water for about nine minutes, then cool it.",
}


def test_an_answer_saying_the_same_scores_higher_than_an_unrelated_one() -> None:
    close = score(RECORD, "Put the egg into boiling water, wait around 9 minutes, and cool it.")
    far = score(RECORD, "The French Revolution began in 1789 with the storming of the Bastille.")
    assert close.score is not None and far.score is not None
    assert close.score > far.score
    assert close.correct is (close.score >= JUDGE_CORRECT)
    assert 0.0 <= far.score <= 1.0 and "similarity" in far.reason


def test_an_empty_answer_scores_zero() -> None:
    result = score(RECORD, "   ")
    assert result.score == 0.0 and result.correct is False
