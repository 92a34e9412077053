"""What an answer costs in time, calibrated rather than measured under load.

The collection ran the models side by side on two shared cores, so its wall-clock latencies
mix each model's speed with whatever else was running. Routing labels and the evaluation use
instead each answer's own token counts at the speeds each model reaches on an idle machine
(``polyllm bench models``, docs/benchmarks/cpu-latency.md: prefill = prompt tokens ÷ TTFT for
the 313-token prompt, decode = tokens/s after the first token, 2 llama.cpp threads).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["SPEEDS", "Speed", "calibrated_latency"]


@dataclass(frozen=True)
class Speed:
    """Tokens per second of one model: reading the prompt, and writing the answer."""

    prefill: float
    decode: float


SPEEDS = {
    "m1": Speed(prefill=265.0, decode=97.0),
    "m2": Speed(prefill=531.0, decode=67.0),
    "m3": Speed(prefill=203.0, decode=47.0),
    "m4": Speed(prefill=97.0, decode=31.0),
}
SPEEDS["m5"] = SPEEDS["m4"]  # m5 serves the m4 file by default


def calibrated_latency(answer: dict[str, Any]) -> float:
    """Seconds the answer takes on an idle machine: prompt tokens at the model's prefill speed
    plus completion tokens at its decode speed; the measured latency for an unknown model or
    an answer without token counts."""
    speed = SPEEDS.get(str(answer["model"]))
    if speed is None or answer.get("prompt_tokens") is None:
        return float(answer["latency_s"])
    return (
        float(answer["prompt_tokens"]) / speed.prefill
        + float(answer["completion_tokens"]) / speed.decode
    )
