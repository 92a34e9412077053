"""``polyllm bench models``: TTFT and decode tokens/s of every model, through the HTTP service
and directly through llama-cpp-python in-process, on the same prompts and settings.

Each model is measured alone (its service is the only one running), so the two paths compete
for nothing but the same cores. Every repeat uses a fresh prompt prefix, so neither path can
reuse a cached prompt (llama-cpp-python keeps the previous prompt's KV cache).
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import logging
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from polyllm.bench.processes import model_service
from polyllm.bench.sse_client import stream_generate
from polyllm.models.catalog import CATALOG, ModelSpec

log = logging.getLogger(__name__)

# ~20 and ~300 tokens of plain English for every tokenizer in the catalog.
SHORT_PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."
_MEDIUM_PARAGRAPH = (
    "The history of the printing press is a history of cheap copies. Before movable type, a "
    "book was copied by hand, one page at a time, and a library of a few hundred volumes was a "
    "fortune. Gutenberg's presses changed the cost of a page, and with it who could read, what "
    "was written, and how fast an idea could cross a continent. "
)
MEDIUM_PROMPT = (
    _MEDIUM_PARAGRAPH * 4
    + "Summarise the passage above, then continue it with a story of your own."
)
PROMPTS = {"short": SHORT_PROMPT, "medium": MEDIUM_PROMPT}
PAUSE_S = 0.5


@dataclass(frozen=True)
class Sample:
    """One measured generation."""

    model: str
    prompt: str
    path: str  # "service" or "in-process"
    repeat: int
    prompt_tokens: int
    completion_tokens: int
    ttft_ms: float
    decode_tok_s: float
    engine_ttft_ms: float  # time to the first token, text or not (service: as its engine reports)
    engine_tok_s: float  # the decode rate the service's engine itself reports (server side)


@dataclass(frozen=True)
class BenchConfig:
    """What to measure and how."""

    models: list[str]
    repeats: int = 5
    max_tokens: int = 128
    n_threads: int = max(1, os.cpu_count() or 1)
    n_ctx: int = 2048
    models_dir: Path = Path("models")
    out_dir: Path = Path("docs/benchmarks")


def _prompt_text(kind: str, repeat: int) -> str:
    return f"Note {repeat + 1}. {PROMPTS[kind]}"


async def _service_sample(
    client: httpx.AsyncClient, url: str, spec: ModelSpec, kind: str, repeat: int, cfg: BenchConfig
) -> Sample:
    """One generation as an HTTP client of the model service sees it."""
    body = {
        "prompt": _prompt_text(kind, repeat), "max_tokens": cfg.max_tokens, "temp": 0.0,
        "raw": True, "ignore_eos": True,
    }  # fmt: skip
    result = await stream_generate(client, f"{url}/generate", body)
    if result.stats is None or result.ttft_s is None:
        raise RuntimeError(f"{spec.id}: {result.error or 'no tokens'}")
    return Sample(
        spec.id, kind, "service", repeat, result.stats.prompt_tokens,
        result.stats.completion_tokens, result.ttft_s * 1000,
        result.decode_tokens_per_s or 0.0, result.stats.ttft_s * 1000, result.stats.tokens_per_s,
    )  # fmt: skip


def _in_process_sample(
    llm: Any, spec: ModelSpec, kind: str, repeat: int, cfg: BenchConfig
) -> Sample:
    """The same generation through llama-cpp-python directly: the floor the service is held to."""
    tokens = llm.tokenize(_prompt_text(kind, repeat).encode(), add_bos=True)
    llm.reset()  # no reuse of the previous prompt's KV cache
    ttft, times = _generate_once(llm, tokens, cfg.max_tokens)
    decode = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
    return Sample(
        spec.id, kind, "in-process", repeat, len(tokens), len(times), ttft * 1000, decode,
        times[0] * 1000, decode,
    )  # fmt: skip


def measure_model(spec: ModelSpec, cfg: BenchConfig, log_path: Path) -> list[Sample]:
    """Both paths for one model, interleaved sample by sample so machine drift hits both alike.

    Only one path decodes at a time: the idle one sleeps (``PAUSE_S`` lets the service's
    compute threads settle before the in-process run starts, and back).
    """
    from llama_cpp import Llama

    samples: list[Sample] = []

    async def run(url: str, llm: Any) -> None:
        async with httpx.AsyncClient(timeout=600) as client:
            for kind in PROMPTS:
                for repeat in range(cfg.repeats):
                    samples.append(await _service_sample(client, url, spec, kind, repeat, cfg))
                    await asyncio.sleep(PAUSE_S)
                    samples.append(_in_process_sample(llm, spec, kind, repeat, cfg))
                    await asyncio.sleep(PAUSE_S)

    with model_service(
        spec.id,
        log_path,
        models_dir=cfg.models_dir,
        n_threads=cfg.n_threads,
        n_ctx=cfg.n_ctx,
        log_level="WARNING",
    ) as url:
        llm: Any = Llama(
            model_path=str(cfg.models_dir / f"{spec.id}.gguf"), n_ctx=cfg.n_ctx,
            n_threads=cfg.n_threads, n_threads_batch=cfg.n_threads, verbose=False,
        )  # fmt: skip
        try:
            _generate_once(llm, "Hello", 4)  # warm-up, as the service does
            asyncio.run(run(url, llm))
        finally:
            llm.close()
    return samples


def _generate_once(llm: Any, prompt: str | list[int], max_tokens: int) -> tuple[float, list[float]]:
    """Greedy-decode ``max_tokens`` tokens (end-of-sequence ignored, as the service is asked to).

    Returns the time to the first *visible* text (what a streaming client can see: a token that
    decodes to nothing, or to half a UTF-8 character, shows up with the next one) and each
    token's time since the start.
    """
    tokens = llm.tokenize(prompt.encode()) if isinstance(prompt, str) else prompt
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    started = time.perf_counter()
    first_text_at: float | None = None
    times: list[float] = []
    for token in llm.generate(tokens, temp=0.0, top_p=1.0, reset=True):
        text = decoder.decode(llm.detokenize([token]))
        times.append(time.perf_counter() - started)
        if first_text_at is None and text:
            first_text_at = times[-1]
        if len(times) >= max_tokens:
            break
    return (first_text_at if first_text_at is not None else times[-1]), times


def summarise(samples: list[Sample]) -> list[dict[str, Any]]:
    """Medians per (model, prompt, path), and the service's cost over in-process as the median
    of the per-repeat differences (each pair ran back to back, so drift cancels out)."""
    rows: list[dict[str, Any]] = []
    by_key = {(s.model, s.prompt, s.path, s.repeat): s for s in samples}
    keys = sorted({(s.model, s.prompt) for s in samples}, key=lambda k: (k[0], k[1] != "short"))
    for model, prompt in keys:
        row: dict[str, Any] = {"model": model, "prompt": prompt}
        pairs = [
            (by_key[(model, prompt, "in-process", r)], by_key[(model, prompt, "service", r)])
            for r in sorted({s.repeat for s in samples if (s.model, s.prompt) == (model, prompt)})
        ]
        row["prompt_tokens"] = pairs[0][1].prompt_tokens
        row["repeats"] = len(pairs)
        for index, path in enumerate(("in-process", "service")):
            row[f"{path}_ttft_ms"] = round(statistics.median(p[index].ttft_ms for p in pairs), 1)
            row[f"{path}_tok_s"] = round(statistics.median(p[index].decode_tok_s for p in pairs), 1)
        row["ttft_added_ms"] = round(statistics.median(s.ttft_ms - i.ttft_ms for i, s in pairs), 1)
        loss = statistics.median(1 - s.decode_tok_s / i.decode_tok_s for i, s in pairs)
        row["tok_s_loss_pct"] = round(100 * loss, 1)
        rows.append(row)
    return rows


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """``rows`` as a CSV file, the first row's keys as the header."""
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def write_report(rows: list[dict[str, Any]], samples: list[Sample], cfg: BenchConfig) -> Path:
    """``cpu-latency.csv`` (every sample), ``cpu-latency-summary.csv`` and ``cpu-latency.md``."""
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    write_csv(cfg.out_dir / "cpu-latency.csv", [asdict(s) for s in samples])
    write_csv(cfg.out_dir / "cpu-latency-summary.csv", rows)
    report = cfg.out_dir / "cpu-latency.md"
    report.write_text(_markdown(rows, cfg))
    return report


def _markdown(rows: list[dict[str, Any]], cfg: BenchConfig) -> str:
    import llama_cpp

    head = (
        "| model | prompt | prompt tokens | TTFT in-process (ms) | TTFT service (ms) | "
        "added (ms) | tok/s in-process | tok/s service | tok/s lost |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    lines = [
        f"| {r['model']} | {r['prompt']} | {r['prompt_tokens']} | {r['in-process_ttft_ms']} | "
        f"{r['service_ttft_ms']} | {r['ttft_added_ms']} | {r['in-process_tok_s']} | "
        f"{r['service_tok_s']} | {r['tok_s_loss_pct']}% |"
        for r in rows
    ]
    return (
        "# CPU latency: model service vs in-process llama-cpp-python\n\n"
        f"Written by `polyllm bench models` on {time.strftime('%Y-%m-%d')}: {os.cpu_count()} "
        f"cores, {cfg.n_threads} llama.cpp threads, n_ctx {cfg.n_ctx}, llama-cpp-python "
        f"{llama_cpp.__version__}, greedy decoding of {cfg.max_tokens} tokens (end-of-sequence "
        f"ignored), {cfg.repeats} repeats per prompt.\n\n"
        "- **TTFT**: request → first visible text. For the service, an HTTP client reading the "
        "SSE stream on the same machine measures it; in-process, the time from `generate()` "
        "to the first token that decodes to text.\n"
        "- **tok/s**: decode rate after the first token.\n"
        "- Service and in-process samples alternate, one decoding at a time; *added* and *lost* "
        "are medians of the per-repeat differences, so machine drift hits both alike.\n"
        "- Targets: the service adds ≤ 15 ms TTFT and loses ≤ 5% tok/s.\n\n"
        + head
        + "\n".join(lines)
        + "\n\nEvery sample: `cpu-latency.csv` (with the service engine's own TTFT and tok/s); "
        "medians: `cpu-latency-summary.csv`.\n"
    )


def distinct_models(ids: list[str]) -> list[ModelSpec]:
    """The requested models, skipping one whose file another already covers (m5 = m4)."""
    seen: set[str] = set()
    specs = []
    for model_id in ids:
        spec = CATALOG[model_id]
        if spec.sha256 not in seen:
            seen.add(spec.sha256)
            specs.append(spec)
    return specs


def run(cfg: BenchConfig, echo: Callable[[str], None]) -> list[dict[str, Any]]:
    """Measure every present model on both paths and write the report."""
    samples: list[Sample] = []
    log_dir = Path(".run")
    log_dir.mkdir(exist_ok=True)
    for spec in distinct_models(cfg.models):
        if not (cfg.models_dir / f"{spec.id}.gguf").is_file():
            echo(f"skip {spec.id}: {cfg.models_dir / spec.id}.gguf is not there")
            continue
        echo(f"{spec.id}: service and in-process, {cfg.repeats} repeats per prompt …")
        samples += measure_model(spec, cfg, log_dir / f"bench-{spec.id}.log")
    if not samples:
        raise RuntimeError("no model files found: run `polyllm models fetch --all`")
    rows = summarise(samples)
    report = write_report(rows, samples, cfg)
    echo(f"wrote {report}")
    return rows
