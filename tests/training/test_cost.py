"""Calibrated latency: token counts at each model's idle-machine speeds."""

from __future__ import annotations

import pytest

from polyllm.training.cost import SPEEDS, calibrated_latency


def test_latency_is_prefill_plus_decode_at_the_models_speeds() -> None:
    answer = {"model": "m3", "prompt_tokens": 203, "completion_tokens": 94, "latency_s": 99.0}
    assert calibrated_latency(answer) == pytest.approx(1.0 + 2.0)
    m5 = {**answer, "model": "m5"}
    assert calibrated_latency(m5) == calibrated_latency({**answer, "model": "m4"})
    assert SPEEDS["m1"].decode > SPEEDS["m4"].decode


def test_unknown_model_or_missing_counts_keep_the_measured_latency() -> None:
    assert calibrated_latency({"model": "m9", "prompt_tokens": 1, "latency_s": 2.5}) == 2.5
    assert calibrated_latency({"model": "m1", "latency_s": 1.5}) == 1.5
