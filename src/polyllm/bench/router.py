"""``polyllm bench router``: what the router itself costs, on this machine.

Three figures, in one run, against processes the bench starts for itself (Redis, the m1 model
service, the router):

- **overhead**: TTFT (and total latency) through the router minus calling the model service
  directly, request for request. Router and direct requests alternate one at a time (which goes
  first flips every pair), so machine drift hits both alike; the figure is the percentiles of the
  per-pair differences.
- **cache hit**: request sent → final ``done`` event of an answer the router replays from Redis.
- **rate-limit decision**: one :meth:`TokenBucket.take` against the same Redis, in-process.
"""

from __future__ import annotations

import asyncio
import csv
import math
import os
import platform
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx

from polyllm import __version__
from polyllm.bench.processes import model_service, redis_server, router_service, sigterm_as_exit
from polyllm.bench.sse_client import StreamResult, stream_generate

MODEL = "m1"
PROMPT = "Name one colour of the sky."
PAUSE_S = 0.05  # between requests, so one request's tail (logging, bookkeeping) never overlaps
WARMUP = 3
TARGET_OVERHEAD_P50_MS = 3.0
TARGET_CACHE_HIT_P50_MS = 5.0
ROUTER_ONLY_FIELDS = frozenset({"model", "cache", "prefer_backend"})
# The bench must never be rate limited, and the router polls health at its default pace.
ROUTER_SETTINGS = {"RATE_CAPACITY": "1000000", "RATE_REFILL_PER_S": "1000000"}


@dataclass(frozen=True)
class RouterBenchConfig:
    """What to measure and how."""

    requests: int = 40
    rate_calls: int = 2000
    max_tokens: int = 8
    n_threads: int = 2
    models_dir: Path = Path("models")
    out_dir: Path = Path("docs/benchmarks")
    log_dir: Path = Path(".run")


@dataclass(frozen=True)
class Sample:
    """One measurement. ``kind``: ``direct`` / ``router`` (``index`` is the pair, ``order`` 0 if
    it went first in it), ``cache_hit`` or ``rate_limit`` (no TTFT)."""

    kind: str
    index: int
    order: int
    ttft_ms: float | None
    total_ms: float


@dataclass(frozen=True)
class Row:
    """One line of the results table; ``met`` is None for a figure without a target."""

    measurement: str
    n: int
    p50_ms: float
    p99_ms: float
    target: str = ""
    met: bool | None = None


@dataclass(frozen=True)
class RunInfo:
    """The conditions of a run, for the report."""

    date: str
    cores: int | None
    config: RouterBenchConfig
    versions: dict[str, str] = field(default_factory=dict)


# -- the pure part: percentiles, pairs, rows, report ---------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) by linear interpolation between the closest ranks: the
    value at position ``(n - 1) * q / 100`` of the sorted values. This is
    ``statistics.quantiles(method="inclusive")`` and numpy's default ``linear`` method."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be within 0..100, got {q}")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def paired_differences(
    samples: Sequence[Sample], metric: str, minuend: str = "router", subtrahend: str = "direct"
) -> list[float]:
    """``minuend - subtrahend`` of ``metric`` (``ttft_ms`` or ``total_ms``) for every pair index,
    in index order. Raises ValueError when a pair lacks one side or a value."""
    sides: dict[str, dict[int, Sample]] = {minuend: {}, subtrahend: {}}
    for s in samples:
        if s.kind in sides:
            sides[s.kind][s.index] = s
    if set(sides[minuend]) != set(sides[subtrahend]):
        raise ValueError(f"unpaired samples: {minuend} and {subtrahend} indexes differ")
    diffs = []
    for index in sorted(sides[minuend]):
        a, b = getattr(sides[minuend][index], metric), getattr(sides[subtrahend][index], metric)
        if a is None or b is None:
            raise ValueError(f"pair {index} has no {metric}")
        diffs.append(a - b)
    return diffs


def _row(measurement: str, values: Sequence[float], target_p50_ms: float | None = None) -> Row:
    p50 = percentile(values, 50)
    if target_p50_ms is None:
        return Row(measurement, len(values), p50, percentile(values, 99))
    return Row(
        measurement, len(values), p50, percentile(values, 99),
        f"p50 ≤ {target_p50_ms:g} ms", p50 <= target_p50_ms,
    )  # fmt: skip


def summarise(samples: Sequence[Sample]) -> list[Row]:
    """The results table: overheads first (the figures with targets), then each path alone."""

    def values(kind: str, metric: str) -> list[float]:
        found = [getattr(s, metric) for s in samples if s.kind == kind]
        return [v for v in found if v is not None]

    return [
        _row(
            "router overhead, TTFT (router - direct)",
            paired_differences(samples, "ttft_ms"),
            TARGET_OVERHEAD_P50_MS,
        ),
        _row("router overhead, total latency", paired_differences(samples, "total_ms")),
        _row("TTFT, direct to the model service", values("direct", "ttft_ms")),
        _row("TTFT, through the router", values("router", "ttft_ms")),
        _row("total latency, direct", values("direct", "total_ms")),
        _row("total latency, through the router", values("router", "total_ms")),
        _row(
            "cache hit, end to end (sent → done)",
            values("cache_hit", "total_ms"),
            TARGET_CACHE_HIT_P50_MS,
        ),
        _row("rate-limit decision (TokenBucket.take)", values("rate_limit", "total_ms")),
    ]


def _met(met: bool | None) -> str:
    return "" if met is None else ("yes" if met else "**no**")


def markdown_table(rows: Sequence[Row]) -> str:
    """The rows as a Markdown table, milliseconds to two decimals."""
    lines = [
        "| measurement | N | p50 (ms) | p99 (ms) | target | met |",
        "|---|---:|---:|---:|---|---|",
    ]
    lines += [
        f"| {r.measurement} | {r.n} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.target} | "
        f"{_met(r.met)} |"
        for r in rows
    ]
    return "\n".join(lines) + "\n"


def render_markdown(rows: Sequence[Row], info: RunInfo) -> str:
    """``router.md``: how the figures were taken, the table, whether the targets are met."""
    cfg = info.config
    versions = ", ".join(f"{name} {v}" for name, v in info.versions.items())
    targeted = [r for r in rows if r.met is not None]
    verdict = "; ".join(f"{r.measurement}: {'met' if r.met else 'NOT met'}" for r in targeted)
    return (
        "# Router overhead, cache-hit latency, rate-limit decision\n\n"
        f"Written by `polyllm bench router` on {info.date}: {info.cores} cores; {versions}.\n"
        f"Everything ran on this one machine: Redis, the {MODEL} model service "
        f"({cfg.n_threads} llama.cpp threads), the router (default settings, INFO logs, rate "
        "limit set too high to ever refuse) and the client.\n\n"
        "## Method\n\n"
        f"- **Router overhead**: {cfg.requests} pairs of one request through the router "
        f"(`model: {MODEL}` forced, `cache: false`) and the same request straight to the model "
        "service's `/generate` (without the router-only fields). Prompt "
        f'"{PROMPT}", `temp` 0, `max_tokens` {cfg.max_tokens}, end-of-sequence ignored, every '
        "request identical so each gets the same prompt-cache treatment from llama.cpp. One "
        "request at a time, the two paths alternating, and which path goes first flips every "
        f"pair; {WARMUP} unrecorded warm-up requests per path first. TTFT is request sent → first "
        "`token` event, total is request sent → `done` event, both timed by the client "
        "(`polyllm.bench.sse_client`, `time.perf_counter`). The overhead rows are percentiles "
        "of the per-pair differences (router - direct), so drift hits both sides alike.\n"
        f"- **Cache hit**: one request (as above, but `cache` on) stores the answer; then "
        f"{cfg.requests} identical requests are answered from Redis, each checked as a hit by the "
        "router's `polyllm_router_cache_hits_total`. Timed by the client from request sent to "
        "the final `done` event received.\n"
        f"- **Rate-limit decision**: {cfg.rate_calls} sequential calls of "
        "`TokenBucket.take` (the router's Lua token bucket, `EVALSHA`) in-process against the "
        "same Redis, after 50 warm-up calls; one call is one decision.\n"
        "- **Percentiles**: linear interpolation between closest ranks (position "
        '(n - 1)·q/100 of the sorted samples; `statistics.quantiles(method="inclusive")`, '
        f"numpy's default). With N = {cfg.requests} the overhead and cache-hit p99 sits at rank "
        f"{(cfg.requests - 1) * 0.99 + 1:.2f} of {cfg.requests}: next to the largest sample.\n"
        f"- Targets: router overhead p50 ≤ {TARGET_OVERHEAD_P50_MS:g} ms (TTFT), cache hit p50 "
        f"≤ {TARGET_CACHE_HIT_P50_MS:g} ms end to end.\n\n"
        "## Results\n\n" + markdown_table(rows) + f"\nTargets: {verdict}.\n\n"
        "Every sample: `router-samples.csv` (`kind`, pair `index`, `order` in the pair, "
        "`ttft_ms`, `total_ms`).\n"
    )


def write_samples_csv(samples: Sequence[Sample], path: Path) -> None:
    """Every sample, one per line (an empty ``ttft_ms`` where there is none)."""
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[column.name for column in fields(Sample)])
        writer.writeheader()
        for s in samples:
            row = asdict(s)
            row["ttft_ms"] = "" if s.ttft_ms is None else round(s.ttft_ms, 4)
            row["total_ms"] = round(s.total_ms, 4)
            writer.writerow(row)


# -- the measuring part -------------------------------------------------------------------------


def _router_body(max_tokens: int, *, cache: bool) -> dict[str, object]:
    return {
        "prompt": PROMPT, "max_tokens": max_tokens, "temp": 0.0, "ignore_eos": True,
        "model": MODEL, "cache": cache,
    }  # fmt: skip


def _direct_body(router_body: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in router_body.items() if k not in ROUTER_ONLY_FIELDS}


async def _timed(client: httpx.AsyncClient, url: str, body: dict[str, object]) -> StreamResult:
    result = await stream_generate(client, url, body)
    if result.status_code != 200 or result.error or result.done_s is None:
        raise RuntimeError(f"{url}: HTTP {result.status_code}: {result.error or 'no done event'}")
    if result.ttft_s is None:
        raise RuntimeError(f"{url}: the answer had no token")
    await asyncio.sleep(PAUSE_S)
    return result


def _sample(kind: str, index: int, order: int, result: StreamResult) -> Sample:
    ttft = None if result.ttft_s is None else result.ttft_s * 1000
    return Sample(kind, index, order, ttft, (result.done_s or result.latency_s) * 1000)


async def _overhead(
    client: httpx.AsyncClient, router_url: str, model_url: str, cfg: RouterBenchConfig
) -> list[Sample]:
    body = _router_body(cfg.max_tokens, cache=False)
    paths = {
        "router": (f"{router_url}/generate", body),
        "direct": (f"{model_url}/generate", _direct_body(body)),
    }
    for _ in range(WARMUP):
        for url, path_body in paths.values():
            await _timed(client, url, path_body)
    samples = []
    for index in range(cfg.requests):
        kinds = ("router", "direct") if index % 2 == 0 else ("direct", "router")
        for order, kind in enumerate(kinds):
            url, path_body = paths[kind]
            samples.append(_sample(kind, index, order, await _timed(client, url, path_body)))
    return samples


async def _cache_hits_total(client: httpx.AsyncClient, router_url: str) -> float:
    text = (await client.get(f"{router_url}/metrics")).text
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == "polyllm_router_cache_hits_total":
            return float(value)
    raise RuntimeError("the router has no polyllm_router_cache_hits_total metric")


async def _cache_hits(
    client: httpx.AsyncClient, router_url: str, cfg: RouterBenchConfig
) -> list[Sample]:
    url, body = f"{router_url}/generate", _router_body(cfg.max_tokens, cache=True)
    await _timed(client, url, body)  # a miss: the model answers and the router stores it
    for _ in range(WARMUP):
        await _timed(client, url, body)
    before = await _cache_hits_total(client, router_url)
    samples = [
        _sample("cache_hit", index, 0, await _timed(client, url, body))
        for index in range(cfg.requests)
    ]
    hits = await _cache_hits_total(client, router_url) - before
    if hits != cfg.requests:
        raise RuntimeError(f"{hits:g} of {cfg.requests} repeated requests were cache hits")
    return samples


async def _rate_limit(redis_url: str, cfg: RouterBenchConfig) -> tuple[list[Sample], str]:
    """Samples of one ``take`` each, and the Redis server's version."""
    import redis.asyncio as aioredis

    from polyllm.router.ratelimit import TokenBucket

    redis = aioredis.Redis.from_url(redis_url)
    try:
        bucket = TokenBucket(redis, prefix="polyllm:rl:bench")
        await bucket.load()
        limits = {"capacity": 1e6, "refill_per_s": 1e6}
        for _ in range(50):
            await bucket.take("bench", **limits)
        samples = []
        for index in range(cfg.rate_calls):
            started = time.perf_counter()
            decision = await bucket.take("bench", **limits)
            elapsed_ms = (time.perf_counter() - started) * 1000
            if not decision.allowed:
                raise RuntimeError("the bench's own bucket refused a take")
            samples.append(Sample("rate_limit", index, 0, None, elapsed_ms))
        info: dict[str, Any] = await redis.info("server")
        return samples, str(info.get("redis_version", "?"))
    finally:
        await redis.aclose()


async def _measure(
    router_url: str, model_url: str, redis_url: str, cfg: RouterBenchConfig,
    echo: Callable[[str], None],
) -> tuple[list[Sample], str]:  # fmt: skip
    async with httpx.AsyncClient(timeout=120) as client:
        echo(f"router overhead: {cfg.requests} router/direct pairs …")
        samples = await _overhead(client, router_url, model_url, cfg)
        echo(f"cache hits: {cfg.requests} requests …")
        samples += await _cache_hits(client, router_url, cfg)
    echo(f"rate-limit decisions: {cfg.rate_calls} calls …")
    rate_samples, redis_version = await _rate_limit(redis_url, cfg)
    return samples + rate_samples, redis_version


def _versions(redis_version: str) -> dict[str, str]:
    found = {"polyllm": __version__, "Python": platform.python_version()}
    for package in ("llama-cpp-python", "fastapi", "uvicorn", "httpx", "redis"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "absent"
    found["redis-server"] = redis_version
    return found


def run(cfg: RouterBenchConfig, echo: Callable[[str], None]) -> list[Row]:
    """Start Redis, the model service and the router, measure, stop them all, write the report
    (``router.md``, ``router-samples.csv`` in ``cfg.out_dir``); returns the table's rows."""
    if not (cfg.models_dir / f"{MODEL}.gguf").is_file():
        raise RuntimeError(
            f"{cfg.models_dir / MODEL}.gguf is not there: run `polyllm models fetch {MODEL}`"
        )
    logs = cfg.log_dir
    with sigterm_as_exit(), tempfile.TemporaryDirectory(prefix="polyllm-bench-") as tmp:
        echo("starting redis-server, the m1 model service and the router …")
        with (
            redis_server(Path(tmp)) as redis_url,
            model_service(
                MODEL, logs / "bench-router-m1.log", models_dir=cfg.models_dir,
                n_threads=cfg.n_threads,
            ) as model_url,
            router_service(
                {MODEL: {"url": model_url, "backend": "cpu", "host": "cpu-node-1", "tier": 1,
                         "cost": 1}},
                redis_url, logs / "bench-router-router.log", settings=ROUTER_SETTINGS,
            ) as router_url,
        ):  # fmt: skip
            samples, redis_version = asyncio.run(
                _measure(router_url, model_url, redis_url, cfg, echo)
            )
    rows = summarise(samples)
    info = RunInfo(time.strftime("%Y-%m-%d"), os.cpu_count(), cfg, _versions(redis_version))
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    write_samples_csv(samples, cfg.out_dir / "router-samples.csv")
    report = cfg.out_dir / "router.md"
    report.write_text(render_markdown(rows, info))
    echo(f"wrote {report} and {cfg.out_dir / 'router-samples.csv'}")
    return rows
