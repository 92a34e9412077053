"""The request contract: defaults, bounds, and the forms callers actually send."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from polyllm.common.openai_api import ChatCompletionRequest, CompletionRequest
from polyllm.common.schemas import MAX_STOP_SEQUENCES, GenerateRequest


def test_defaults_stream_and_use_the_chat_template() -> None:
    req = GenerateRequest(prompt="hi")
    assert req.stream is True
    assert req.raw is False
    assert req.stop == []


def test_a_single_stop_string_is_accepted() -> None:
    assert GenerateRequest(prompt="hi", stop="END").stop == ["END"]  # type: ignore[arg-type]


def test_too_many_stop_strings_are_rejected() -> None:
    with pytest.raises(ValidationError):
        GenerateRequest(prompt="hi", stop=["x"] * (MAX_STOP_SEQUENCES + 1))


def test_openai_requests_ignore_unknown_fields_but_reject_n() -> None:
    req = ChatCompletionRequest.model_validate(
        {"model": "m1", "messages": [{"role": "user", "content": "hi"}], "user": "u1", "stop": None}
    )
    assert req.stop == []
    assert req.token_budget is None
    with pytest.raises(ValidationError):
        ChatCompletionRequest.model_validate(
            {"model": "m1", "messages": [{"role": "user", "content": "hi"}], "n": 2}
        )


def test_completion_prompt_list_of_one_is_unwrapped() -> None:
    assert CompletionRequest.model_validate({"model": "m1", "prompt": ["abc"]}).prompt == "abc"
    with pytest.raises(ValidationError):
        CompletionRequest.model_validate({"model": "m1", "prompt": ["a", "b"]})
