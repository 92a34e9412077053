"""``polyllm bench models --concurrency 1,2,4,8``: what continuous batching buys, per model.

Each model's service runs twice, alone on the machine: one request at a time (``n_parallel`` 1,
the default engine) and with continuous batching (``n_parallel`` = the highest concurrency);
then, when it is built (scripts/build-llama-server.sh), llama.cpp's own ``llama-server`` with as
many slots, as the reference.
At each concurrency ``c``, ``c`` clients send requests back to back (a closed loop) until the
level's requests are answered. With ``runs`` > 1 the engines take turns (serial, batching,
llama-server, serial, …), so a slow spell of the machine falls on every engine alike, and the
report gives each figure's median and the ratio's range over the runs. Request ``i`` of every
level and engine has the same prompt (greedy, end-of-sequence ignored, a fixed number of
tokens), so the texts also tell whether batching changes what a request gets: each is compared
with the one-at-a-time engine's text.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import statistics
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import httpx

from polyllm.bench.latency import SHORT_PROMPT, distinct_models, write_csv
from polyllm.bench.processes import llama_server, model_service
from polyllm.bench.router import percentile
from polyllm.bench.sse_client import StreamResult, stream_completion, stream_generate
from polyllm.models.catalog import ModelSpec

ENGINES = ("serial", "batching", "llama-server")
PAUSE_S = 1.0
# llama.cpp's own llama-server, measured on this machine when the issue was filed (m3, 2
# threads, -np 4, 96 tokens per request): aggregate tok/s by concurrency.
LLAMA_SERVER_M3 = {1: 47.6, 2: 54.4, 4: 76.8}


@dataclass(frozen=True)
class ConcurrencyConfig:
    """What to measure and how."""

    models: list[str]
    levels: list[int]
    requests: int = 8
    """Requests per level at least; every level sends the same ``per_level`` prompts."""
    max_tokens: int = 96
    n_threads: int = max(1, os.cpu_count() or 1)
    prefill_chunk: int = 128
    models_dir: Path = Path("models")
    out_dir: Path = Path("docs/benchmarks")
    llama_server: Path | None = None
    """llama.cpp's server binary; None: measure our two engines only."""
    runs: int = 1
    """Times every engine is measured, taking turns."""

    @property
    def engines(self) -> list[str]:
        """What runs: ours, and llama-server when there is a binary."""
        return [e for e in ENGINES if e != "llama-server" or self.llama_server is not None]


@dataclass(frozen=True)
class RequestSample:
    """One request as its client saw it."""

    model: str
    engine: str
    concurrency: int
    index: int
    prompt_tokens: int
    completion_tokens: int
    ttft_ms: float
    decode_tok_s: float
    latency_ms: float
    queue_ms: float
    text_sha: str


@dataclass(frozen=True)
class Level:
    """The samples of one (model, engine, concurrency) and its steady-state throughput."""

    model: str
    engine: str
    concurrency: int
    window_s: float
    """The time every client had a request in flight."""
    window_tokens: float
    """Completion tokens streamed within that window."""
    samples: list[RequestSample]
    run: int = 0


@dataclass(frozen=True)
class _Run:
    """One request on the level's clock (seconds since the level started)."""

    sent: float
    ended: float
    token_times: list[float]
    sample: RequestSample


def built_llama_server() -> Path | None:
    """The llama-server scripts/build-llama-server.sh built for the installed llama-cpp-python
    (the same llama.cpp), else one on PATH, else None."""
    from importlib.metadata import version

    built = Path(".cache/llama-server") / version("llama-cpp-python") / "bin/llama-server"
    if built.is_file():
        return built
    found = shutil.which("llama-server")
    return Path(found) if found else None


def prompt(index: int) -> str:
    """Request ``index``'s prompt: the same at every level, different from its neighbours'."""
    return f"Request {index + 1}. {SHORT_PROMPT}"


def room(engine: str, cfg: ConcurrencyConfig) -> tuple[int, int]:
    """(sequences decoded together, context cells) of each engine: room for every request of
    the busiest level."""
    n_parallel = 1 if engine == "serial" else max(cfg.levels)
    return n_parallel, max(2048, n_parallel * (64 + cfg.max_tokens))


def service_flags(engine: str, cfg: ConcurrencyConfig) -> tuple[str, ...]:
    """``serve-model`` flags of our engines."""
    top = max(cfg.levels)
    n_parallel, n_ctx = room(engine, cfg)
    return (
        "--n-parallel", str(n_parallel), "--queue-max", str(max(2 * top, cfg.requests)),
        "--n-ctx", str(n_ctx), "--prefill-chunk", str(cfg.prefill_chunk),
    )  # fmt: skip


Send = Callable[[httpx.AsyncClient, int], Awaitable[StreamResult]]
"""Sends request ``index`` to the engine under test and streams its answer."""


async def measure_level(
    send: Send, model: str, engine: str, concurrency: int, cfg: ConcurrencyConfig, spacing_s: float
) -> Level:
    """``concurrency`` clients in a closed loop sending the level's prompts (client ``j``:
    prompts ``j``, ``j + c``, …) back to back; client ``j`` starts ``j * spacing_s`` late, so
    arrivals are spread as independent users' would be rather than in lockstep."""
    started = time.perf_counter()

    async def client(http: httpx.AsyncClient, j: int) -> list[_Run]:
        await asyncio.sleep(j * spacing_s)
        runs = []
        for index in range(j, per_level(cfg), concurrency):
            sent = time.perf_counter() - started
            result = await send(http, index)
            if result.stats is None or result.ttft_s is None:
                raise RuntimeError(f"{model} {engine} c={concurrency}: {result.error}")
            sample = RequestSample(
                model, engine, concurrency, index, result.stats.prompt_tokens,
                result.stats.completion_tokens, result.ttft_s * 1000,
                result.decode_tokens_per_s or 0.0, result.latency_s * 1000,
                result.stats.queue_s * 1000, hashlib.sha256(result.text.encode()).hexdigest()[:12],
            )  # fmt: skip
            times = [sent + t for t in result.token_times]
            runs.append(_Run(sent, sent + result.latency_s, times, sample))
        return runs

    async with httpx.AsyncClient(timeout=900) as http:
        clients = await asyncio.gather(*(client(http, j) for j in range(concurrency)))
    window = (max(runs[0].sent for runs in clients), min(runs[-1].ended for runs in clients))
    if window[1] <= window[0]:
        raise RuntimeError(
            f"{model} {engine} c={concurrency}: the clients were never all busy at once (the "
            "machine's speed changed during the level?): rerun on a quieter machine"
        )
    tokens = sum(in_window(run, *window) for runs in clients for run in runs)
    samples = sorted((run.sample for runs in clients for run in runs), key=lambda s: s.index)
    return Level(model, engine, concurrency, window[1] - window[0], tokens, samples)


def per_level(cfg: ConcurrencyConfig) -> int:
    """Requests per level: the same prompts at every level, at least two per client."""
    return max(cfg.requests, 2 * max(cfg.levels))


def in_window(run: _Run, start: float, end: float) -> float:
    """Completion tokens ``run`` streamed between ``start`` and ``end`` (each SSE token event
    weighs completion tokens / events: a held-back character merges two tokens into one)."""
    if not run.token_times:
        return 0.0
    weight = run.sample.completion_tokens / len(run.token_times)
    return weight * sum(1 for t in run.token_times if start <= t <= end)


def request_body(index: int, cfg: ConcurrencyConfig) -> dict[str, object]:
    """Request ``index``: greedy, a fixed number of tokens."""
    return {
        "prompt": prompt(index), "max_tokens": cfg.max_tokens, "temp": 0.0, "raw": True,
        "ignore_eos": True,
    }  # fmt: skip


def llama_server_body(index: int, cfg: ConcurrencyConfig) -> dict[str, object]:
    """The same request for llama-server's ``/completion``."""
    return {
        "prompt": prompt(index), "n_predict": cfg.max_tokens, "temperature": 0.0,
        "ignore_eos": True,
    }  # fmt: skip


def sender(engine: str, url: str, model: str, cfg: ConcurrencyConfig) -> Send:
    """How requests reach ``engine`` at ``url``."""
    if engine == "llama-server":
        return lambda http, i: stream_completion(
            http, f"{url}/completion", llama_server_body(i, cfg), model
        )
    return lambda http, i: stream_generate(http, f"{url}/generate", request_body(i, cfg))


async def probe(send: Send) -> float:
    """The latency of one request alone (not counted): the clients' start spacing is based
    on it."""
    async with httpx.AsyncClient(timeout=900) as http:
        result = await send(http, -1)
    if result.stats is None:
        raise RuntimeError(f"probe request failed: {result.error}")
    return result.latency_s


def measure_model(
    spec: ModelSpec, cfg: ConcurrencyConfig, log_dir: Path, echo: Callable[[str], None]
) -> list[Level]:
    """Every level on every engine, one server at a time, ``cfg.runs`` times."""
    levels: list[Level] = []
    for run in range(cfg.runs):
        for engine in cfg.engines:
            suffix = f"-run{run + 1}" if cfg.runs > 1 else ""  # each run's log is kept
            log_path = log_dir / f"bench-batching-{spec.id}-{engine}{suffix}.log"
            with server(engine, spec, cfg, log_path) as url:
                send = sender(engine, url, spec.id, cfg)
                alone_s = asyncio.run(probe(send))
                for c in cfg.levels:
                    time.sleep(PAUSE_S)
                    level = asyncio.run(measure_level(send, spec.id, engine, c, cfg, alone_s / c))
                    levels.append(replace(level, run=run))
                    rate = level.window_tokens / level.window_s
                    echo(f"  run {run + 1}/{cfg.runs} {engine} c={c}: {rate:.1f} tok/s")
    return levels


def server(
    engine: str, spec: ModelSpec, cfg: ConcurrencyConfig, log_path: Path
) -> AbstractContextManager[str]:
    """The running server of ``engine``; yields its base URL."""
    if engine == "llama-server":
        assert cfg.llama_server is not None
        n_parallel, n_ctx = room(engine, cfg)
        return llama_server(
            cfg.llama_server, cfg.models_dir / f"{spec.id}.gguf", log_path,
            n_threads=cfg.n_threads, n_parallel=n_parallel, n_ctx=n_ctx,
        )  # fmt: skip
    return model_service(
        spec.id, log_path, models_dir=cfg.models_dir, n_threads=cfg.n_threads,
        log_level="WARNING", extra=service_flags(engine, cfg),
    )  # fmt: skip


def summarise(levels: list[Level]) -> list[dict[str, Any]]:
    """One row per level and run: aggregate and per-request rates, TTFT percentiles, ratios to
    the first (lowest) level of the same engine in the same run, and how many texts equal the
    same prompt's text at that first level of the first run (alone, for c=1) and on the serial
    engine."""
    first_level: dict[tuple[str, str], int] = {}
    first_text: dict[tuple[str, str, int], str] = {}
    for level in levels:
        lowest = first_level.setdefault((level.model, level.engine), level.concurrency)
        if level.concurrency == lowest and level.run == 0:
            first_text |= {(s.model, s.engine, s.index): s.text_sha for s in level.samples}
    base: dict[tuple[str, str, int], dict[str, Any]] = {}
    rows = []
    for level in levels:
        samples = level.samples
        ttfts = [s.ttft_ms for s in samples]
        row: dict[str, Any] = {
            "model": level.model,
            "engine": level.engine,
            "concurrency": level.concurrency,
            "run": level.run + 1,
            "requests": len(samples),
            "window_s": round(level.window_s, 2),
            "aggregate_tok_s": round(level.window_tokens / level.window_s, 1),
            "per_request_tok_s_p50": round(statistics.median(s.decode_tok_s for s in samples), 1),
            "ttft_p50_ms": round(percentile(ttfts, 50), 1),
            "ttft_p95_ms": round(percentile(ttfts, 95), 1),
            "latency_p50_ms": round(statistics.median(s.latency_ms for s in samples), 1),
            "same_text_as_first": _same(samples, first_text, level.engine),
            "same_text_as_serial": _same(samples, first_text, "serial"),
        }
        first = base.setdefault((level.model, level.engine, level.run), row)
        row["aggregate_x"] = round(row["aggregate_tok_s"] / first["aggregate_tok_s"], 2)
        row["ttft_p95_x"] = round(row["ttft_p95_ms"] / first["ttft_p95_ms"], 2)
        rows.append(row)
    return rows


MEDIANS = (
    "window_s", "aggregate_tok_s", "per_request_tok_s_p50", "ttft_p50_ms", "ttft_p95_ms",
    "latency_p50_ms", "aggregate_x", "ttft_p95_x",
)  # fmt: skip


def combine(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (model, engine, concurrency) over its runs: the median of each figure (of
    the runs' own ratios, for the ratios), the aggregate ratio's range and the TTFT ratio's
    highest, the texts summed."""
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for level_row in rows:
        group = (level_row["model"], level_row["engine"], level_row["concurrency"])
        groups.setdefault(group, []).append(level_row)
    combined = []
    for (model, engine, concurrency), runs in groups.items():
        row: dict[str, Any] = {
            "model": model, "engine": engine, "concurrency": concurrency, "runs": len(runs),
            "requests": sum(r["requests"] for r in runs),
        }  # fmt: skip
        row |= {key: round(statistics.median(r[key] for r in runs), 2) for key in MEDIANS}
        ratios = [r["aggregate_x"] for r in runs]
        row["aggregate_x_range"] = f"{min(ratios)}-{max(ratios)}"
        row["ttft_p95_x_max"] = max(r["ttft_p95_x"] for r in runs)
        for key in ("same_text_as_first", "same_text_as_serial"):
            counts = [tuple(map(int, r[key].split("/"))) for r in runs]
            row[key] = f"{sum(k for k, _ in counts)}/{sum(n for _, n in counts)}"
        combined.append(row)
    return combined


def _same(samples: list[RequestSample], texts: dict[tuple[str, str, int], str], engine: str) -> str:
    """ "k/n": of the n samples with a reference text on ``engine``, k have exactly it."""
    refs = [(s, texts.get((s.model, engine, s.index))) for s in samples]
    same = [s.text_sha == ref for s, ref in refs if ref is not None]
    return f"{sum(same)}/{len(same)}"


def write_report(
    rows: list[dict[str, Any]], levels: list[Level], cfg: ConcurrencyConfig, conditions: str
) -> Path:
    """``batching.csv`` (every request), ``batching-runs.csv`` (every level of every run),
    ``batching-summary.csv`` (``rows``: over the runs) and ``batching.md``."""
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    write_csv(
        cfg.out_dir / "batching.csv",
        [{"run": level.run + 1, **asdict(s)} for level in levels for s in level.samples],
    )
    write_csv(cfg.out_dir / "batching-runs.csv", summarise(levels))
    write_csv(cfg.out_dir / "batching-summary.csv", rows)
    report = cfg.out_dir / "batching.md"
    report.write_text(markdown(rows, cfg, conditions))
    return report


def markdown(rows: list[dict[str, Any]], cfg: ConcurrencyConfig, conditions: str) -> str:
    """The report: conditions, one table (``rows`` from :func:`combine`), the anchor and the
    targets."""
    import llama_cpp

    columns = [
        ("model", "model"), ("engine", "engine"), ("concurrency", "c"), ("requests", "requests"),
        ("aggregate_tok_s", "aggregate tok/s"), ("aggregate_x", f"x c={cfg.levels[0]}"),
        ("aggregate_x_range", "x range"),
        ("per_request_tok_s_p50", "per-request tok/s p50"), ("ttft_p50_ms", "TTFT p50 ms"),
        ("ttft_p95_ms", "TTFT p95 ms"), ("ttft_p95_x", f"TTFT p95 x c={cfg.levels[0]}"),
        ("same_text_as_first", f"same text as c={cfg.levels[0]}"),
        ("same_text_as_serial", "same text as serial"),
    ]  # fmt: skip
    head = "| " + " | ".join(title for _, title in columns) + " |\n"
    head += "|" + "---|" * len(columns) + "\n"
    body = "\n".join("| " + " | ".join(str(r[key]) for key, _ in columns) + " |" for r in rows)
    anchor = ", ".join(f"{rate} at c={c}" for c, rate in LLAMA_SERVER_M3.items())
    return (
        "# Continuous batching: aggregate and per-request rates by concurrency\n\n"
        f"Written by `polyllm bench models --concurrency {','.join(map(str, cfg.levels))}` on "
        f"{time.strftime('%Y-%m-%d')}: {os.cpu_count()} cores, {cfg.n_threads} llama.cpp "
        f"threads, llama-cpp-python {llama_cpp.__version__}, greedy decoding of "
        f"{cfg.max_tokens} tokens per request (end-of-sequence ignored), a short prompt "
        f"(~20 tokens), at least {cfg.requests} requests per level and 2 per client, "
        f"prefill chunk {cfg.prefill_chunk}; {cfg.runs} run(s) per engine, the engines taking "
        f"turns.\n\n{conditions}\n\n"
        "- **serial**: the default engine (`N_PARALLEL=1`): one request at a time, the others "
        "queue. **batching**: `N_PARALLEL` = the highest concurrency. **llama-server**: "
        "llama.cpp's own server built from the same llama.cpp source "
        "(`scripts/build-llama-server.sh`), as many slots, its defaults otherwise, streaming "
        "`/completion` (its TTFT has no separate queue time).\n"
        "- **c** clients in a closed loop (each sends its next request when the last one "
        "ends); client j starts j/c of a lone request's latency late, so arrivals are spread "
        "rather than in lockstep.\n"
        "- **aggregate tok/s**: completion tokens streamed while every client had a request "
        "in flight / that time (steady state). **per-request tok/s**: each stream's decode rate "
        "after its first token. **TTFT**: request sent → first token event, queue included. "
        "All client side. With several runs: the median over the runs (of each run's own "
        "ratio, for `x c=1`); **x range**: the lowest and highest run.\n"
        "- **same text as c=1**: requests whose text is identical to the same engine's text "
        "for the same prompt at the lowest concurrency (alone, at c=1). **same text as "
        "serial**: identical to the serial engine's text at the lowest concurrency (its "
        "prompt-prefix reuse changes the numerics of a prompt too).\n\n"
        + head
        + body
        + "\n\n"
        + (
            f"llama-server: `{cfg.llama_server}`. "
            if cfg.llama_server
            else "llama-server was not built on this machine (`scripts/build-llama-server.sh`). "
        )
        + f"The issue's anchor for it (m3, 2 threads, `-np 4`, 96 tokens): {anchor} "
        "aggregate tok/s (1.14x at c=2, 1.61x at c=4).\n\n"
        "Targets (m3): aggregate at c=4 ≥ 1.6x c=1; TTFT p95 at c=4 ≤ 2x c=1.\n\n"
        "Every request: `batching.csv`; every level of every run: `batching-runs.csv`; the "
        "table: `batching-summary.csv`.\n"
    )


def run(cfg: ConcurrencyConfig, echo: Callable[[str], None]) -> list[dict[str, Any]]:
    """Measure every present model and write the report."""
    log_dir = Path(".run")
    log_dir.mkdir(exist_ok=True)
    load_before = os.getloadavg()
    levels: list[Level] = []
    for spec in distinct_models(cfg.models):
        if not (cfg.models_dir / f"{spec.id}.gguf").is_file():
            echo(f"skip {spec.id}: {cfg.models_dir / spec.id}.gguf is not there")
            continue
        echo(f"{spec.id}: concurrency {cfg.levels}, {' then '.join(cfg.engines)} …")
        levels += measure_model(spec, cfg, log_dir, echo)
    if not levels:
        raise RuntimeError("no model files found: run `polyllm models fetch --all`")
    conditions = (
        f"Load average (1 min) before the run: {load_before[0]:.2f} (near 0: nothing else was "
        "running; during the run the servers themselves keep every core busy)."
    )
    rows = combine(summarise(levels))
    echo(f"wrote {write_report(rows, levels, cfg, conditions)}")
    return rows
