"""The engine with continuous batching: up to ``n_parallel`` requests decode together.

Same contract as :class:`LlamaEngine` (``prepare``, ``submit``, a :class:`Generation` per
request, ``Overloaded`` beyond ``n_parallel + queue_max`` requests in flight), but the worker
thread runs one loop for every request instead of one generation at a time:

    take new arrivals → drop cancelled ones → admit waiting ones → one decode step → sample

A request joins the running batch between two steps, samples with its own chain (temperature,
top-p, seed), matches its own stop strings, and leaves the step it finishes or is cancelled,
freeing its KV cells for the next one. The step plan (chunked prefill, the shared KV pool) is
:mod:`polyllm.inference.scheduler`; the llama.cpp calls are :mod:`polyllm.inference.decoder`.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from polyllm.common.schemas import FinishReason, GenerationStats
from polyllm.inference.decoder import BatchDecoder
from polyllm.inference.engine import EngineError, Event, LlamaEngine, _Job, _TextOut
from polyllm.inference.metrics import ModelMetrics
from polyllm.inference.scheduler import Scheduler, Sequence, Step
from polyllm.inference.settings import InferenceSettings

log = logging.getLogger(__name__)

# ``Llama`` always creates a context of its own; the batching engine only uses that object for
# the model, the tokenizer and the chat template, so its context is kept as small as llama.cpp
# allows (it is never decoded).
_IDLE_CTX, _IDLE_BATCH = 256, 8


@dataclass(eq=False)
class _Live:
    """A request's state beyond its tokens: text output, timings, how to report the end."""

    job: _Job
    out: _TextOut
    release: Callable[[], None]
    report: bool = True
    """False for the warm-up: no metrics, no log line, stats kept in ``stats``."""
    first_at: float = 0.0
    last_at: float = 0.0
    stats: GenerationStats | None = None
    error: Exception | None = None


class BatchingEngine(LlamaEngine):
    """One GGUF model decoding up to ``n_parallel`` requests per llama.cpp step."""

    def __init__(self, settings: InferenceSettings, metrics: ModelMetrics) -> None:
        super().__init__(settings, metrics)
        self._inbox: queue.SimpleQueue[Sequence[_Live] | None] = queue.SimpleQueue()
        self._scheduler: Scheduler[_Live] = Scheduler(
            n_parallel=settings.n_parallel,
            n_cells=self.n_ctx,
            n_batch=settings.n_batch,
            prefill_chunk=settings.prefill_chunk,
        )
        self._decoder: BatchDecoder | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._outbox: list[Callable[[], None]] = []
        """Event-loop work of the current step (events, slot releases), handed over at its end."""
        metrics.active_sequences.labels(self.model_id).set(0)

    # -- lifecycle (worker thread) -----------------------------------------------------------

    def _open(self, path: Path, n_ctx: int | None = None, n_batch: int | None = None) -> Any:
        llm = super()._open(path, _IDLE_CTX, _IDLE_BATCH)
        try:
            self._decoder = BatchDecoder(
                llm, n_ctx=self.n_ctx, n_seq=self.settings.n_parallel, n_batch=self.settings.n_batch
            )
        except Exception as exc:
            llm.close()
            raise EngineError(f"no batching context for {path}: {exc}") from exc
        return llm

    def load(self) -> None:
        """Load and warm up (see :meth:`LlamaEngine.load`), then start the batching loop on
        this same thread: it holds the thread until :meth:`close`."""
        super().load()
        self._executor.submit(self._serve)

    def close(self) -> None:
        """End the loop (requests still running end as cancelled), free the context, the model."""
        self._ready.clear()  # submit() refuses from now on
        self._inbox.put(None)
        self._executor.shutdown(wait=True, cancel_futures=True)
        if self._decoder is not None:
            self._decoder.close()
            self._decoder = None
        super().close()

    # -- requests (event loop) ---------------------------------------------------------------

    @property
    def _capacity(self) -> int:
        """Requests admitted at most: ``n_parallel`` running and ``queue_max`` waiting."""
        return self.settings.n_parallel + self.settings.queue_max

    def _emitter(
        self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Event | BaseException]
    ) -> Callable[[Event | BaseException], None]:
        """Buffered: a step's events reach the event loop in one wake-up (:meth:`_flush`), not
        one per token and stream: each wake-up takes a core from llama.cpp's threads."""
        self._loop = loop
        return lambda item: self._outbox.append(partial(queue.put_nowait, item))

    def _dispatch(self, job: _Job) -> None:
        def release() -> None:  # on the worker thread; the count lives on the event loop
            self._outbox.append(self._release)

        self._inbox.put(self._sequence(job, release))

    def _sequence(
        self, job: _Job, release: Callable[[], None], report: bool = True
    ) -> Sequence[_Live]:
        out = _TextOut(job.emit, [*job.params.stop, *job.prompt.stops])
        live = _Live(job, out, release, report)
        return Sequence(live, job.prompt.tokens, job.params.max_tokens)

    # -- the worker thread -------------------------------------------------------------------

    def _generate(self, job: _Job) -> GenerationStats:
        """Run one job alone to its end: the warm-up, before :meth:`_serve` takes the thread."""
        seq = self._sequence(job, release=lambda: None, report=False)
        self._scheduler.enqueue(seq)
        while seq.state.stats is None and seq.state.error is None:
            self._tick()
        if seq.state.error is not None:
            raise EngineError(f"warm-up failed: {seq.state.error}") from seq.state.error
        assert seq.state.stats is not None
        return seq.state.stats

    def _serve(self) -> None:
        """The batching loop: one decode step per turn; blocks while there is nothing to do."""
        while self._take_arrivals(block=self._scheduler.idle):
            self._tick()
        for seq in self._scheduler.sequences():
            self._end(seq, "cancelled")
        self._flush()

    def _take_arrivals(self, block: bool) -> bool:
        """Move submitted requests into the waiting line; False once :meth:`close` was called."""
        try:
            item = self._inbox.get(block=block)
            while item is not None:
                self._scheduler.enqueue(item)
                item = self._inbox.get_nowait()
            return False
        except queue.Empty:
            return True

    def _tick(self) -> None:
        """Drop cancelled requests, admit waiting ones, decode one step."""
        for seq in self._scheduler.sequences():
            if seq.state.job.cancel.is_set():
                self._end(seq, "cancelled")
        for seq in self._scheduler.admit():
            self._begin(seq)
        if self._scheduler.active:
            self._step(self._scheduler.plan())
        self.metrics.active_sequences.labels(self.model_id).set(len(self._scheduler.active))
        self._flush()

    def _flush(self) -> None:
        """Hand the step's events and releases to the event loop, in order, in one call."""
        if self._outbox and self._loop is not None:
            work, self._outbox = self._outbox, []
            self._loop.call_soon_threadsafe(_run_all, work)

    def _begin(self, seq: Sequence[_Live]) -> None:
        params = seq.state.job.params
        seed = params.seed if params.seed is not None else secrets.randbelow(2**31)
        assert self._decoder is not None
        self._decoder.start(seq.seq_id, temp=params.temp, top_p=params.top_p, seed=seed)
        seq.state.job.started_at = time.perf_counter()

    def _step(self, step: Step[_Live]) -> None:
        """Decode ``step`` and hand each sampled token to its sequence."""
        assert self._decoder is not None
        try:
            self._decoder.decode(step.entries)
            self._scheduler.commit(step)
            self.metrics.batch_size.labels(self.model_id).observe(step.n_sequences)
            for seq, index in step.outputs:
                self._on_token(seq, self._decoder.sample(seq.seq_id, index))
        except Exception as exc:
            for seq, _ in step.advances:
                if seq in self._scheduler.active:
                    self._fail(seq, exc)

    def _on_token(self, seq: Sequence[_Live], token: int) -> None:
        """Emit a sampled token's text, or end the sequence (cancel, end token, stop, budget)."""
        assert self._decoder is not None
        live, params = seq.state, seq.state.job.params
        if live.job.cancel.is_set():
            self._end(seq, "cancelled")
            return
        if not params.ignore_eos and self._decoder.is_end(token):
            self._end(seq, "stop")
            return
        seq.accept(token)
        live.last_at = time.perf_counter()
        live.first_at = live.first_at or live.last_at
        if live.out.token(self._llm.detokenize([token])):
            self._end(seq, "stop")
        elif seq.n_generated >= params.max_tokens:
            self._end(seq, "length")

    def _end(self, seq: Sequence[_Live], finish: FinishReason) -> None:
        """Take a sequence out (its cells are free for the next step) and report its end."""
        live = seq.state
        self._leave(seq)
        if finish != "cancelled":
            live.out.finish()
        live.job.started_at = live.job.started_at or time.perf_counter()  # left while waiting
        live.stats = self._stats(live.job, finish, seq.n_generated, live.first_at, live.last_at)
        if live.report:
            self._report(live.job, live.stats)
        live.release()

    def _fail(self, seq: Sequence[_Live], exc: Exception) -> None:
        """End a sequence with an error (call it in the ``except`` block: it logs the trace)."""
        live = seq.state
        self._leave(seq)
        live.error = exc
        if live.report:
            self._report_failure(live.job, exc)
        live.release()

    def _leave(self, seq: Sequence[_Live]) -> None:
        if seq.seq_id >= 0 and seq in self._scheduler.active:
            assert self._decoder is not None
            self._decoder.finish(seq.seq_id)
        self._scheduler.remove(seq)


def _run_all(work: list[Callable[[], None]]) -> None:
    for item in work:
        item()
