"""The batching engine's loop with a stand-in for llama.cpp: joining, leaving, stopping, limits.

The fake decoder "continues counting": after a token ``t`` it samples ``t + 1``; 999 is the
end-of-generation token; token ``t`` reads as ``<t>``. Each decode waits for a permit of
``gate``, so a test decides how many steps run.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from polyllm.common.errors import Overloaded
from polyllm.common.schemas import GenerationStats, TokenEvent
from polyllm.inference.batching import BatchingEngine
from polyllm.inference.decoder import DecodeError
from polyllm.inference.engine import Generation, Prompt, SamplingParams
from polyllm.inference.metrics import ModelMetrics
from polyllm.inference.scheduler import Entry
from polyllm.inference.settings import InferenceSettings

END = 999


@dataclass
class FakeDecoder:
    steps: list[list[Entry]] = field(default_factory=list)
    started: dict[int, tuple[float, float, int]] = field(default_factory=dict)
    finished: list[int] = field(default_factory=list)
    gate: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))
    fail_next: bool = False
    _last: dict[int, int] = field(default_factory=dict)

    def start(self, seq_id: int, *, temp: float, top_p: float, seed: int) -> None:
        self.started[seq_id] = (temp, top_p, seed)

    def decode(self, entries: list[Entry]) -> None:
        assert self.gate.acquire(timeout=10), "the test never let this step run"
        if self.fail_next:
            self.fail_next = False
            raise DecodeError("llama_decode returned -3")
        self.steps.append(list(entries))
        for entry in entries:
            if entry.logits:
                self._last[entry.seq_id] = entry.token

    def sample(self, seq_id: int, index: int) -> int:
        return self._last[seq_id] + 1

    def is_end(self, token: int) -> bool:
        return token == END

    def finish(self, seq_id: int) -> None:
        self.finished.append(seq_id)
        self._last.pop(seq_id, None)

    def close(self) -> None:
        pass


class FakeLlama:
    def detokenize(self, tokens: list[int]) -> bytes:
        return "".join(f"<{t}>" for t in tokens).encode()

    def close(self) -> None:
        pass


@pytest.fixture
def served() -> Iterator[tuple[BatchingEngine, FakeDecoder]]:
    """A batching engine (2 running + 1 waiting) whose loop runs on its worker thread."""
    settings = InferenceSettings(
        model_id="m1", n_parallel=2, queue_max=1, warmup=False, n_ctx=512, n_batch=16,
        prefill_chunk=8,
    )  # fmt: skip
    engine = BatchingEngine(settings, ModelMetrics("m1", "cpu"))
    fake = FakeDecoder()
    engine._decoder = fake
    engine._llm = FakeLlama()
    engine._ready.set()
    engine._executor.submit(engine._serve)
    yield engine, fake
    fake.gate.release(10_000)
    engine.close()


def submit(
    engine: BatchingEngine, tokens: list[int], max_tokens: int = 3, **params: Any
) -> Generation:
    sampling = SamplingParams(
        max_tokens=max_tokens,
        temp=params.get("temp", 0.0),
        top_p=params.get("top_p", 1.0),
        stop=params.get("stop", []),
        seed=params.get("seed", 1),
        ignore_eos=params.get("ignore_eos", False),
    )
    return engine.submit(Prompt(tokens), sampling, request_id="r", prompt_hash="h")


async def collect(generation: Generation) -> tuple[str, GenerationStats]:
    parts = []
    async for event in generation.events():
        if isinstance(event, TokenEvent):
            parts.append(event.text)
        else:
            return "".join(parts), event
    raise AssertionError("no stats")


async def until(condition: Callable[[], object], timeout_s: float = 5) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110 (the condition is on another thread)
            await asyncio.sleep(0.002)


def metric(engine: BatchingEngine, name: str, **labels: str) -> float:
    value = engine.metrics.registry.get_sample_value(name, {"model": "m1", **labels})
    return value or 0.0


def test_two_requests_decode_in_the_same_steps(
    served: tuple[BatchingEngine, FakeDecoder],
) -> None:
    engine, fake = served

    async def scenario() -> list[tuple[str, GenerationStats]]:
        a, b = submit(engine, [10, 11]), submit(engine, [20])
        fake.gate.release(100)
        return await asyncio.gather(collect(a), collect(b))

    (text_a, stats_a), (text_b, stats_b) = asyncio.run(scenario())
    assert (text_a, text_b) == ("<12><13><14>", "<21><22><23>")
    assert stats_a.finish_reason == stats_b.finish_reason == "length"
    assert (stats_a.completion_tokens, stats_a.prompt_tokens) == (3, 2)
    assert max(len({e.seq_id for e in step}) for step in fake.steps) == 2
    assert metric(engine, "polyllm_model_batch_size_count") == len(fake.steps)
    assert metric(engine, "polyllm_model_batch_size_sum") == sum(
        len({e.seq_id for e in step}) for step in fake.steps
    )
    assert metric(engine, "polyllm_model_requests_total", status="ok") == 2
    assert sorted(fake.finished) == [0, 1]  # both sequences gave their KV cells back


@pytest.mark.parametrize(
    ("tokens", "params", "text", "finish"),
    [
        ([10], {"stop": ["<13>"], "max_tokens": 9}, "<11><12>", "stop"),
        ([10], {"stop": ["2><1"], "max_tokens": 9}, "<11><1", "stop"),
        ([997], {"max_tokens": 5}, "<998>", "stop"),
        ([997], {"max_tokens": 3, "ignore_eos": True}, "<998><999><1000>", "length"),
    ],
)
def test_each_sequence_ends_on_its_own_terms(
    served: tuple[BatchingEngine, FakeDecoder],
    tokens: list[int],
    params: dict[str, object],
    text: str,
    finish: str,
) -> None:
    engine, fake = served
    fake.gate.release(100)

    async def scenario() -> tuple[tuple[str, GenerationStats], tuple[str, GenerationStats]]:
        other = submit(engine, [50], max_tokens=6)  # runs alongside, unaffected
        return await asyncio.gather(collect(submit(engine, tokens, **params)), collect(other))

    (got, stats), (other_text, _) = asyncio.run(scenario())
    assert (got, stats.finish_reason) == (text, finish)
    assert other_text == "<51><52><53><54><55><56>"


def test_each_sequence_gets_its_own_sampler(served: tuple[BatchingEngine, FakeDecoder]) -> None:
    engine, fake = served

    async def scenario() -> None:
        a = submit(engine, [1], max_tokens=20, temp=0.7, top_p=0.9, seed=42)
        b = submit(engine, [2], max_tokens=20, temp=0.0, top_p=1.0, seed=7)
        await until(lambda: len(fake.started) == 2)
        assert sorted(fake.started.values()) == [(0.0, 1.0, 7), (0.7, 0.9, 42)]
        fake.gate.release(100)
        await asyncio.gather(collect(a), collect(b))

    asyncio.run(scenario())


def test_a_cancelled_request_leaves_at_once_and_a_waiting_one_takes_its_place(
    served: tuple[BatchingEngine, FakeDecoder],
) -> None:
    engine, fake = served

    async def scenario() -> None:
        a, b, c = (submit(engine, [t], max_tokens=200) for t in (100, 200, 300))
        fake.gate.release(3)
        await until(lambda: len(fake.steps) == 3)
        assert {e.seq_id for e in fake.steps[-1]} == {0, 1}  # c waits: only two run
        assert engine.queue_depth == 3
        a.cancel()
        fake.gate.release(1)
        _, stats = await collect(a)
        assert stats.finish_reason == "cancelled" and stats.completion_tokens <= 4
        await until(lambda: engine.queue_depth == 2)
        assert fake.finished == [0]  # a's cells are free before the next step
        fake.gate.release(1)
        await until(lambda: len(fake.steps) == 5)
        # Whether a was dropped before step 4 or after it, it is gone by step 5, and c
        # prefills in a's place (sequence 0).
        assert not [e for e in fake.steps[4] if 100 <= e.token < 200]
        assert Entry(0, 300, 0, True) in [e for step in fake.steps[3:] for e in step]
        b.cancel()
        c.cancel()
        fake.gate.release(1)
        await asyncio.gather(collect(b), collect(c))

    asyncio.run(scenario())
    assert metric(engine, "polyllm_model_requests_total", status="cancelled") == 3


def test_a_request_cancelled_while_waiting_is_never_decoded(
    served: tuple[BatchingEngine, FakeDecoder],
) -> None:
    engine, fake = served

    async def scenario() -> GenerationStats:
        running = [submit(engine, [t], max_tokens=50) for t in (1, 2)]
        waiting = submit(engine, [300])
        waiting.cancel()
        fake.gate.release(1)
        _, stats = await collect(waiting)
        fake.gate.release(200)
        await asyncio.gather(*(collect(g) for g in running))
        return stats

    stats = asyncio.run(scenario())
    assert stats.finish_reason == "cancelled" and stats.completion_tokens == 0
    assert stats.queue_s >= 0
    assert all(e.token != 300 for step in fake.steps for e in step)


def test_beyond_running_plus_queue_max_requests_are_refused(
    served: tuple[BatchingEngine, FakeDecoder],
) -> None:
    engine, fake = served

    async def scenario() -> None:
        admitted = [submit(engine, [t], max_tokens=5) for t in (1, 2, 3)]
        with pytest.raises(Overloaded) as refused:
            submit(engine, [4])
        assert refused.value.retry_after >= 1
        fake.gate.release(100)
        await asyncio.gather(*(collect(g) for g in admitted))
        await until(lambda: engine.queue_depth == 0)
        await collect(submit(engine, [4]))  # room again
        await until(lambda: engine.queue_depth == 0)

    asyncio.run(scenario())
    assert metric(engine, "polyllm_model_requests_total", status="rejected") == 1
    assert metric(engine, "polyllm_model_queue_depth") == 0
    assert metric(engine, "polyllm_model_active_sequences") == 0


def test_a_failed_decode_fails_that_step_and_the_engine_carries_on(
    served: tuple[BatchingEngine, FakeDecoder],
) -> None:
    engine, fake = served

    async def scenario() -> tuple[str, GenerationStats]:
        fake.fail_next = True
        broken = submit(engine, [1])
        fake.gate.release(1)
        with pytest.raises(DecodeError):
            await collect(broken)
        fake.gate.release(100)
        return await collect(submit(engine, [5]))

    assert asyncio.run(scenario())[0] == "<6><7><8>"
    assert metric(engine, "polyllm_model_requests_total", status="error") == 1
    assert 0 in fake.finished  # the broken sequence's cells were freed


def test_closing_ends_running_requests_as_cancelled(
    served: tuple[BatchingEngine, FakeDecoder],
) -> None:
    engine, fake = served

    async def scenario() -> GenerationStats:
        running = submit(engine, [1], max_tokens=200)
        fake.gate.release(2)
        await until(lambda: len(fake.steps) == 2)
        closing = asyncio.create_task(asyncio.to_thread(engine.close))
        await until(lambda: engine._inbox.qsize() == 1)  # close() has asked the loop to end
        fake.gate.release(1)  # the step in progress finishes, then the loop ends
        _, stats = await collect(running)
        await closing
        return stats

    assert asyncio.run(scenario()).finish_reason == "cancelled"
