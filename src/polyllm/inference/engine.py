"""The llama.cpp engine of one model service.

One ``Llama`` context decodes one sequence at a time, so generations run one after another on a
single worker thread, in arrival order. Callers are admitted to a bounded queue in front of it
(``queue_max`` waiting behind the running one); beyond that :class:`Overloaded` is raised at once.
Tokens travel from the worker thread to the caller's coroutine through an ``asyncio.Queue``; the
caller leaving (a client disconnect) sets a cancel flag that the worker checks before every token.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polyllm.common.errors import InvalidRequest, NotReady, Overloaded, PromptTooLong
from polyllm.common.schemas import FinishReason, GenerationStats, TokenEvent
from polyllm.inference.gpu import GpuUnavailable, describe_devices, read_gpus, require_gpu_offload
from polyllm.inference.metrics import ModelMetrics
from polyllm.inference.settings import InferenceSettings
from polyllm.inference.stops import StopMatcher
from polyllm.models.fetch import file_sha256, model_status

log = logging.getLogger(__name__)

Event = TokenEvent | GenerationStats
ChatMessage = dict[str, str]


class EngineError(RuntimeError):
    """The engine cannot start (missing file, no GPU, a file llama.cpp cannot load)."""


@dataclass(frozen=True)
class SamplingParams:
    """How to sample one completion."""

    max_tokens: int
    temp: float
    top_p: float
    stop: list[str]
    seed: int | None
    ignore_eos: bool = False


@dataclass(frozen=True)
class Prompt:
    """A prompt ready to decode: its tokens and the stop strings its template adds."""

    tokens: list[int]
    stops: list[str] = field(default_factory=list)


@dataclass
class _Job:
    prompt: Prompt
    params: SamplingParams
    request_id: str
    prompt_hash: str
    admitted_at: float
    emit: Callable[[Event | BaseException], None]
    cancel: threading.Event = field(default_factory=threading.Event)
    started_at: float = 0.0
    """When the worker picked the job up (queue wait = started_at - admitted_at)."""


class Generation:
    """A queued or running generation: its events, and a way to stop it."""

    def __init__(self, cancel: threading.Event, queue: asyncio.Queue[Event | BaseException]):
        self._cancel = cancel
        self._queue = queue

    def cancel(self) -> None:
        """Stop at the next token (or before starting, if still queued)."""
        self._cancel.set()

    async def events(self) -> AsyncIterator[Event]:
        """Token events in order, then the final stats. Leaving early cancels the generation."""
        try:
            while True:
                item = await self._queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if isinstance(item, GenerationStats):
                    return
        finally:
            self._cancel.set()


class LlamaEngine:
    """One GGUF model in llama.cpp, generating for one caller at a time behind a bounded queue."""

    def __init__(self, settings: InferenceSettings, metrics: ModelMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.model_id = settings.model_id
        self.backend = "gpu" if settings.use_gpu else "cpu"
        self.n_ctx = settings.effective_n_ctx
        self.sha256: str | None = None
        self.device: str | None = None
        self._llm: Any = None
        self._chat: Any = None
        self._ready = threading.Event()
        self._inflight = 0
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"llama-{self.model_id}"
        )

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """True once the model is loaded and has generated its warm-up."""
        return self._ready.is_set()

    @property
    def queue_depth(self) -> int:
        """Requests admitted and not finished (the running one included)."""
        return self._inflight

    async def start(self) -> None:
        """Load the model and warm it up on the engine's own worker thread.

        Every llama.cpp decode must come from that one thread: llama.cpp's OpenMP keeps a team
        of compute threads per calling thread, and a second team left spinning after a warm-up
        on another thread cost ~40% of decode speed on 2 cores (docs/architecture.md).
        """
        await asyncio.get_running_loop().run_in_executor(self._executor, self.load)

    def load(self) -> None:
        """Load the model (blocking: seconds) and, if configured, generate a warm-up.

        Call it on the thread that will decode (see :meth:`start`)."""
        path = self.settings.resolved_model_path
        if not path.is_file():
            raise EngineError(
                f"model file {path} does not exist (run: polyllm models fetch {self.model_id})"
            )
        if self.settings.use_gpu:
            self.device = self._gpu_device()
        self.sha256 = self._file_sha256()
        started = time.perf_counter()
        self._llm = self._open(path)
        self._chat = self._chat_formatter()
        log.info(
            "model loaded",
            extra={
                "fields": {
                    "model_id": self.model_id,
                    "path": str(path),
                    "load_s": round(time.perf_counter() - started, 3),
                    "n_ctx": self.n_ctx,
                    "n_threads": self.settings.n_threads,
                    "backend": self.backend,
                    "device": self.device,
                    "chat_template": self._chat is not None,
                }
            },
        )
        if self.settings.warmup:
            self._warmup()
        self._ready.set()

    def _open(self, path: Path, n_ctx: int | None = None, n_batch: int | None = None) -> Any:
        """The ``Llama`` object: the model and a context of ``n_ctx`` cells [the engine's]."""
        from llama_cpp import Llama

        try:
            return Llama(
                model_path=str(path),
                n_ctx=n_ctx or self.n_ctx,
                n_threads=self.settings.n_threads,
                n_threads_batch=self.settings.n_threads,
                n_batch=n_batch or self.settings.n_batch,
                n_gpu_layers=-1 if self.settings.use_gpu else 0,
                flash_attn=self.settings.flash_attn,
                verbose=False,
            )
        except ValueError as exc:  # llama-cpp-python's way of saying "failed to load"
            raise EngineError(f"llama.cpp could not load {path}: {exc}") from exc

    def _gpu_device(self) -> str | None:
        """Check that llama.cpp can offload, and name the device(s) for /health."""
        try:
            require_gpu_offload()
        except GpuUnavailable as exc:
            raise EngineError(str(exc)) from exc
        device = describe_devices(read_gpus())
        if device is None:
            log.warning(
                "on the GPU, but nvidia-smi cannot name it: no device name, no GPU metrics",
                extra={"fields": {"model_id": self.model_id}},
            )
        return device

    def _chat_formatter(self) -> Any:
        """The GGUF's own chat template, for models the catalog lists as instruct models."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = self._llm.metadata.get("tokenizer.chat_template")
        if not (template and self.settings.spec.chat_template):
            return None
        model = self._llm._model  # llama-cpp-python exposes token texts only here
        eos, bos = model.token_eos(), model.token_bos()
        return Jinja2ChatFormatter(
            template=template,
            eos_token=model.token_get_text(eos) if eos != -1 else "",
            bos_token=model.token_get_text(bos) if bos != -1 else "",
        )

    def _file_sha256(self) -> str:
        """The served file's sha256 (cached by the fetcher for files in the models dir);
        a file that differs from the catalog is served, with a warning, as the user asked."""
        spec = self.settings.spec
        if self.settings.model_path is None:
            sha = model_status(spec, self.settings.models_dir).sha256
        else:
            sha = None
        sha = sha or file_sha256(self.settings.resolved_model_path)
        if sha != spec.sha256:
            log.warning(
                "model file differs from the catalog",
                extra={
                    "fields": {"model_id": self.model_id, "sha256": sha, "catalog": spec.sha256}
                },
            )
        return sha

    def _warmup(self) -> None:
        prompt = self.prepare("Say hello.", raw=False, max_tokens=4)
        params = SamplingParams(max_tokens=4, temp=0.0, top_p=1.0, stop=[], seed=0)
        now = time.perf_counter()
        job = _Job(prompt, params, "warmup", "-", now, lambda _: None, started_at=now)
        stats = self._generate(job)
        log.info(
            "warm-up done", extra={"fields": {"model_id": self.model_id, "ttft_s": stats.ttft_s}}
        )

    def close(self) -> None:
        """Stop accepting work and free the model."""
        self._ready.clear()
        self._executor.shutdown(wait=True, cancel_futures=True)
        if self._llm is not None:
            self._llm.close()
            self._llm = None

    # -- requests ----------------------------------------------------------------------------

    def prepare(
        self,
        prompt: str | None = None,
        *,
        messages: list[ChatMessage] | None = None,
        raw: bool = False,
        max_tokens: int,
    ) -> Prompt:
        """Tokenize a prompt (through the chat template unless ``raw``) and check it fits.

        Raises :class:`PromptTooLong` or :class:`InvalidRequest` naming the field at fault.
        """
        if self._llm is None:
            raise NotReady(f"model {self.model_id} is still loading")
        stops: list[str] = []
        if messages is None:
            assert prompt is not None
            messages = [{"role": "user", "content": prompt}]
        if self._chat is not None and not raw:
            try:
                formatted = self._chat(messages=messages)
            except Exception as exc:  # a template raising on odd input is the caller's problem
                raise InvalidRequest(
                    f"chat template rejected the messages: {exc}", param="messages"
                ) from exc
            text, add_bos, special = formatted.prompt, not formatted.added_special, True
            stops = [s for s in (formatted.stop or []) if isinstance(s, str) and s]
        else:
            text = prompt if prompt is not None else "\n".join(m["content"] for m in messages)
            add_bos, special = True, False  # user text never smuggles in control tokens
        tokens = self._llm.tokenize(text.encode(), add_bos=add_bos, special=special)
        param = "messages" if prompt is None else "prompt"
        if len(tokens) >= self.n_ctx:
            raise PromptTooLong(
                f"the prompt is {len(tokens)} tokens; this model's context is {self.n_ctx}",
                param=param,
            )
        if len(tokens) + max_tokens > self.n_ctx:
            raise PromptTooLong(
                f"prompt ({len(tokens)} tokens) + max_tokens ({max_tokens}) exceeds the context "
                f"of {self.n_ctx}; ask for at most {self.n_ctx - len(tokens)} tokens",
                param="max_tokens",
            )
        return Prompt(tokens=tokens, stops=stops)

    def submit(
        self, prompt: Prompt, params: SamplingParams, *, request_id: str, prompt_hash: str
    ) -> Generation:
        """Admit a request and queue its generation; raises :class:`Overloaded` when full.

        The generation starts as soon as the worker is free, whether or not anyone reads it;
        reading :meth:`Generation.events` to the end or cancelling it releases the slot.
        """
        if not self.ready:
            raise NotReady(f"model {self.model_id} is still loading")
        if self._inflight >= self._capacity:
            self.metrics.observe_request("rejected")
            raise Overloaded(
                f"model {self.model_id} is busy: {self._inflight} requests in flight "
                f"(queue_max={self.settings.queue_max})",
                retry_after=max(1, self._inflight),
            )
        self._inflight += 1
        self.metrics.queue_depth.labels(self.model_id).set(self._inflight)
        queue: asyncio.Queue[Event | BaseException] = asyncio.Queue()
        emit = self._emitter(asyncio.get_running_loop(), queue)
        job = _Job(prompt, params, request_id, prompt_hash, time.perf_counter(), emit)
        self._dispatch(job)
        return Generation(job.cancel, queue)

    def _emitter(
        self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Event | BaseException]
    ) -> Callable[[Event | BaseException], None]:
        """How the worker thread hands a request's events to its reader on the event loop."""

        def emit(item: Event | BaseException) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        return emit

    @property
    def _capacity(self) -> int:
        """Requests admitted at most: the running one and ``queue_max`` waiting."""
        return 1 + self.settings.queue_max

    def _dispatch(self, job: _Job) -> None:
        """Hand an admitted job to the worker; the slot is released when it is done."""
        future = asyncio.get_running_loop().run_in_executor(self._executor, self._run, job)
        future.add_done_callback(lambda _: self._release())

    def _release(self) -> None:
        self._inflight -= 1
        self.metrics.queue_depth.labels(self.model_id).set(self._inflight)

    # -- the worker thread -------------------------------------------------------------------

    def _run(self, job: _Job) -> None:
        """Worker-thread entry: generate, record the outcome, hand the result to the caller."""
        job.started_at = time.perf_counter()
        try:
            stats = self._generate(job)
        except Exception as exc:
            self._report_failure(job, exc)
            return
        self._report(job, stats)

    def _report_failure(self, job: _Job, exc: Exception) -> None:
        """Log (call it in the ``except`` block), count, and hand the error to the caller."""
        log.exception("generation failed", extra={"fields": self._log_fields(job, "error")})
        self.metrics.observe_request("error")
        job.emit(exc)

    def _report(self, job: _Job, stats: GenerationStats) -> None:
        """Count and log a finished generation, and hand its stats to the caller."""
        status = "cancelled" if stats.finish_reason == "cancelled" else "ok"
        self.metrics.observe_request(status)
        if status == "ok":
            m = self.model_id
            self.metrics.latency.labels(m).observe(stats.latency_s)
            self.metrics.ttft.labels(m).observe(stats.ttft_s)
            if stats.completion_tokens > 1:
                self.metrics.tokens_per_s.labels(m).observe(stats.tokens_per_s)
        self.metrics.tokens_generated.labels(self.model_id).inc(stats.completion_tokens)
        self.metrics.prompt_tokens.labels(self.model_id).inc(stats.prompt_tokens)
        fields = self._log_fields(job, status) | stats.model_dump(exclude={"model"})
        log.info("generation", extra={"fields": fields})
        job.emit(stats)

    def _log_fields(self, job: _Job, status: str) -> dict[str, Any]:
        return {
            "request_id": job.request_id,
            "prompt_hash": job.prompt_hash,
            "model_id": self.model_id,
            "status": status,
        }

    def _generate(self, job: _Job) -> GenerationStats:
        """Decode one completion, emitting text as it becomes final. Runs on the worker thread."""
        from llama_cpp import llama_vocab_is_eog

        llm, params = self._llm, job.params
        out = _TextOut(job.emit, [*params.stop, *job.prompt.stops])
        first_at = last_at = 0.0
        n_tokens = 0
        finish: FinishReason = "cancelled" if job.cancel.is_set() else "length"
        if finish != "cancelled":  # else the caller left while waiting in the queue
            llm.set_seed(params.seed if params.seed is not None else secrets.randbelow(2**31))
            vocab = llm._model.vocab  # end-of-generation tokens are only exposed on the vocab
            for token in llm.generate(
                job.prompt.tokens, temp=params.temp, top_p=params.top_p, reset=True
            ):
                if job.cancel.is_set():
                    finish = "cancelled"
                    break
                if not params.ignore_eos and llama_vocab_is_eog(vocab, token):
                    finish = "stop"
                    break
                n_tokens += 1
                last_at = time.perf_counter()
                first_at = first_at or last_at
                if out.token(llm.detokenize([token])):
                    finish = "stop"
                    break
                if n_tokens >= params.max_tokens:
                    break
            if finish != "cancelled":
                out.finish()
        return self._stats(job, finish, n_tokens, first_at, last_at)

    def _stats(
        self, job: _Job, finish: FinishReason, n_tokens: int, first_at: float, last_at: float
    ) -> GenerationStats:
        end = time.perf_counter()
        decode_s = last_at - first_at
        rate = (n_tokens - 1) / decode_s if n_tokens > 1 and decode_s > 0 else 0.0
        return GenerationStats(
            model=self.model_id,
            finish_reason=finish,
            prompt_tokens=len(job.prompt.tokens),
            completion_tokens=n_tokens,
            ttft_s=round((first_at or end) - job.admitted_at, 6),
            latency_s=round(end - job.admitted_at, 6),
            tokens_per_s=round(rate, 3),
            queue_s=round(job.started_at - job.admitted_at, 6),
        )


class _TextOut:
    """Token bytes in, text events out: only complete UTF-8, and never a stop string."""

    def __init__(self, emit: Callable[[Event | BaseException], None], stops: list[str]) -> None:
        self._emit = emit
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._matcher = StopMatcher(stops)
        self._index = 0

    def token(self, piece: bytes) -> bool:
        """Add one token's bytes; True when a stop string has ended the text."""
        self._send(self._matcher.feed(self._decoder.decode(piece)))
        return self._matcher.stopped

    def finish(self) -> None:
        """Emit what was held back, at the end of generation."""
        if not self._matcher.stopped:
            self._send(self._matcher.feed(self._decoder.decode(b"", final=True)))
            self._send(self._matcher.flush())

    def _send(self, text: str) -> None:
        if text:
            self._emit(TokenEvent(text=text, index=self._index))
            self._index += 1
