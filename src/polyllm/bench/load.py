"""``polyllm bench load`` (also ``benchmarks/load_test.py``): a bounded, closed-loop load test.

For each concurrency level, ``concurrency`` client coroutines send ``requests`` streaming
``/generate`` requests between them, each starting the next as soon as its answer ends. Every
request gets the next prompt of the workload's pool (seeded order, wrapping around when the pool
is shorter than the run), is decoded greedily (``temp`` 0) to exactly ``max_tokens`` tokens
(end-of-sequence ignored, so every request of a workload does the same work), and is timed from
the SSE stream as the client sees it. A few unrecorded warm-up requests go first, one at a time.

The target is the router (``route`` event first, then ``token``s and ``done``) or one model
service (``token``s and ``done``); :func:`probe_target` tells them apart by their ``/health``.
The test stops by itself: a fixed number of requests, each bounded by a timeout.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import itertools
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Literal

import httpx
from rich.console import Console
from rich.progress import Progress

from polyllm import __version__
from polyllm.bench.host_metrics import utilisation
from polyllm.bench.load_plots import write_plots
from polyllm.bench.load_summary import (
    RequestRecord,
    SummaryRow,
    level_windows,
    summarise,
    write_requests_csv,
    write_summary_csv,
)
from polyllm.bench.sse_client import StreamResult, stream_generate
from polyllm.bench.workloads import LoadPrompt, Workload, prompt_pool
from polyllm.common.schemas import PreferBackend
from polyllm.stack.config import StackConfig

TargetKind = Literal["router", "model"]
ERROR_CHARS = 300


class LoadError(RuntimeError):
    """The load test cannot start or go on: bad target, arguments or prompts (the message says
    which)."""


@dataclass(frozen=True)
class Target:
    """Where the load goes: a router or one model service (its model and backend)."""

    url: str
    kind: TargetKind
    model: str | None = None
    backend: str | None = None


@dataclass(frozen=True)
class LoadConfig:
    """One load test: a workload, the concurrency levels, how many requests per level."""

    target: str
    workload: Workload
    concurrency: tuple[int, ...]
    requests: int
    out_dir: Path
    warmup: int = 2
    model: str | None = None
    prefer_backend: PreferBackend = "auto"
    cache: bool = False
    seed: int = 0
    max_tokens: int | None = None
    """Overrides the workload's completion budget."""
    request_timeout_s: float = 300.0
    prometheus_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    dataset: Path | None = None

    @property
    def tokens(self) -> int:
        """Tokens each request decodes."""
        return self.max_tokens or self.workload.max_tokens


# -- target -------------------------------------------------------------------------------------


def is_loopback(url: str) -> bool:
    """Whether ``url``'s host is this machine (127.0.0.0/8, ::1 or ``localhost``)."""
    host = httpx.URL(url).host
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_target(named: str | None, stack: StackConfig) -> str:
    """The base URL to load: ``named`` (the user's ``--target``, any host) without a trailing
    ``/generate``, else the router of ``stack``, which must be on loopback."""
    if named is not None:
        url = named.rstrip("/").removesuffix("/generate")
        if httpx.URL(url).scheme not in ("http", "https"):
            raise LoadError(f"--target must be an http(s) URL, got {named!r}")
        return url
    url = f"http://{stack.host}:{stack.router.port}"
    if not is_loopback(url):
        raise LoadError(
            f"the stack's router ({url}) is not on this machine: name it with --target to load it"
        )
    return url


def default_prometheus(stack: StackConfig) -> str | None:
    """``$PROMETHEUS_URL``, else the stack's Prometheus, else None (disabled)."""
    if os.environ.get("PROMETHEUS_URL"):
        return os.environ["PROMETHEUS_URL"].rstrip("/")
    if not stack.prometheus.enabled:
        return None
    return f"http://{stack.host}:{stack.prometheus.port}"


async def probe_target(client: httpx.AsyncClient, url: str) -> Target:
    """Ask ``url/health`` what it is: a router (``backends``) or a model service (``model``,
    ``backend``). Raises :class:`LoadError` when it is neither, or not ready."""
    try:
        reply = await client.get(f"{url}/health")
        body = reply.json()
    except httpx.HTTPError as exc:
        raise LoadError(f"cannot reach {url}: {exc}") from exc
    except ValueError:
        raise LoadError(f"{url}/health is not JSON: not a PolyLLM service") from None
    if isinstance(body, dict) and "backends" in body:
        if reply.status_code != 200:
            raise LoadError(f"the router at {url} is unhealthy: {body.get('problems')}")
        return Target(url, "router")
    if isinstance(body, dict) and {"model", "backend"} <= body.keys():
        if reply.status_code != 200:
            raise LoadError(f"the model service at {url} is not ready: {body.get('status')}")
        return Target(url, "model", str(body["model"]), str(body["backend"]))
    raise LoadError(f"{url}/health answered {body!r}: neither a router nor a model service")


def check_options(cfg: LoadConfig, target: Target) -> None:
    """Refuse router-only options against a model service (they would be silently ignored)."""
    if target.kind == "router":
        return
    if cfg.model is not None and cfg.model != target.model:
        raise LoadError(f"{target.url} serves {target.model}, not {cfg.model}")
    if cfg.cache:
        raise LoadError("a model service has no answer cache: use --cache off")
    if cfg.prefer_backend != "auto":
        raise LoadError("--prefer-backend applies to the router only")


def request_body(cfg: LoadConfig, target: Target, prompt: str) -> dict[str, object]:
    """The ``/generate`` body. Through the router, ``cache`` is the router's own switch: off
    means the request neither reads nor fills the answer cache."""
    body: dict[str, object] = {
        "prompt": prompt, "max_tokens": cfg.tokens, "temp": 0.0, "ignore_eos": True,
    }  # fmt: skip
    if target.kind == "router":
        body |= {"prefer_backend": cfg.prefer_backend, "cache": cfg.cache}
        if cfg.model is not None:
            body["model"] = cfg.model
    return body


# -- requests -----------------------------------------------------------------------------------


def to_record(
    result: StreamResult, target: Target, prompt: LoadPrompt, where: tuple[int, int],
    started: tuple[float, float],
) -> RequestRecord:  # fmt: skip
    """One answer as a record; ``where`` is (concurrency, index), ``started`` (Unix time, seconds
    since the run began)."""
    route, stats = result.route, result.stats
    return RequestRecord(
        concurrency=where[0], index=where[1], prompt_id=prompt.id, category=prompt.category,
        prompt_chars=len(prompt.prompt), started_at=started[0], start_s=started[1],
        latency_s=result.latency_s, ttft_s=result.ttft_s,
        itl_ms=tuple((b - a) * 1000 for a, b in itertools.pairwise(result.token_times)),
        prompt_tokens=stats.prompt_tokens if stats else None,
        completion_tokens=stats.completion_tokens if stats else None,
        tokens_per_s=result.decode_tokens_per_s,
        model=route.model if route else (stats.model if stats else target.model),
        backend=route.backend if route else target.backend,
        cache_hit=route.cache_hit if route else None,
        status=result.status_code, error=result.error[:ERROR_CHARS] if result.error else None,
    )  # fmt: skip


def failed_record(
    error: str, prompt: LoadPrompt, where: tuple[int, int], started: tuple[float, float],
    latency_s: float,
) -> RequestRecord:  # fmt: skip
    """A request that got no HTTP answer (status 0): refused, reset, timed out."""
    return RequestRecord(
        concurrency=where[0], index=where[1], prompt_id=prompt.id, category=prompt.category,
        prompt_chars=len(prompt.prompt), started_at=started[0], start_s=started[1],
        latency_s=latency_s, ttft_s=None, itl_ms=(), prompt_tokens=None, completion_tokens=None,
        tokens_per_s=None, model=None, backend=None, cache_hit=None, status=0,
        error=error[:ERROR_CHARS],
    )  # fmt: skip


async def one_request(
    client: httpx.AsyncClient, cfg: LoadConfig, target: Target, prompt: LoadPrompt,
    where: tuple[int, int], run_started: float,
) -> RequestRecord:  # fmt: skip
    """Send one request and time it; never raises for a failed request (it is a record)."""
    started = (time.time(), time.perf_counter() - run_started)
    body = request_body(cfg, target, prompt.prompt)
    try:
        async with asyncio.timeout(cfg.request_timeout_s):
            result = await stream_generate(client, f"{target.url}/generate", body)
    except TimeoutError:
        error = f"no complete answer in {cfg.request_timeout_s:g} s (request timeout)"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"
    except ValueError as exc:  # an event that breaks the contract (pydantic's ValidationError)
        error = f"malformed stream: {exc}"
    else:
        return to_record(result, target, prompt, where, started)
    latency = time.perf_counter() - run_started - started[1]
    return failed_record(error, prompt, where, started, latency)


async def run_level(
    client: httpx.AsyncClient, cfg: LoadConfig, target: Target, prompts: Sequence[LoadPrompt],
    concurrency: int, first: int, run_started: float, done: Callable[[], None],
) -> list[RequestRecord]:  # fmt: skip
    """``cfg.requests`` requests by ``concurrency`` workers sharing one queue of indexes;
    request ``i`` gets prompt ``first + i`` of the pool (wrapping around)."""
    indexes = iter(range(cfg.requests))
    records: list[RequestRecord] = []

    async def worker() -> None:
        for i in indexes:  # one iterator shared by every worker: each index is taken once
            prompt = prompts[(first + i) % len(prompts)]
            record = await one_request(client, cfg, target, prompt, (concurrency, i), run_started)
            records.append(record)
            done()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return sorted(records, key=lambda r: r.index)


async def warm_up(
    client: httpx.AsyncClient, cfg: LoadConfig, target: Target, prompts: Sequence[LoadPrompt]
) -> None:
    """``cfg.warmup`` requests one at a time, not recorded; the first failure stops the test
    (a target that cannot answer one request is not worth loading)."""
    for i in range(cfg.warmup):
        record = await one_request(
            client, cfg, target, prompts[i % len(prompts)], (0, i), time.perf_counter()
        )
        if not record.ok:
            raise LoadError(f"warm-up request failed: HTTP {record.status}: {record.error}")


async def drive(
    cfg: LoadConfig, prompts: Sequence[LoadPrompt], console: Console
) -> tuple[Target, list[RequestRecord]]:
    """Probe the target, warm up, then run every concurrency level in order."""
    headers = {"X-API-Key": cfg.api_key} if cfg.api_key else {}
    limits = httpx.Limits(max_connections=max(cfg.concurrency) + 1)
    timeout = httpx.Timeout(cfg.request_timeout_s, connect=10)
    async with httpx.AsyncClient(timeout=timeout, limits=limits, headers=headers) as client:
        target = await probe_target(client, cfg.target)
        check_options(cfg, target)
        await warm_up(client, cfg, target, prompts)
        records: list[RequestRecord] = []
        run_started = time.perf_counter()
        with Progress(console=console) as progress:
            for n, concurrency in enumerate(cfg.concurrency):
                task = progress.add_task(f"concurrency {concurrency}", total=cfg.requests)
                records += await run_level(
                    client, cfg, target, prompts, concurrency, cfg.warmup + n * cfg.requests,
                    run_started, functools.partial(progress.advance, task),
                )  # fmt: skip
    return target, records


# -- the run ------------------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    """polyllm, Python and the packages whose speed the figures depend on (as installed here,
    which is what the native stack runs)."""
    found = {"polyllm": __version__, "python": platform.python_version()}
    for package in ("llama-cpp-python", "httpx", "uvicorn"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "absent"
    return found


def _run_info(
    cfg: LoadConfig, target: Target, source: str, pool: int, host_note: str
) -> dict[str, object]:
    settings = {
        k: str(v) if isinstance(v, Path) else v
        for k, v in asdict(cfg).items()
        if k not in ("api_key", "workload")
    }
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "settings": settings,
        "workload": asdict(cfg.workload) | {"max_tokens_used": cfg.tokens},
        "target": asdict(target),
        "prompts": {"source": source, "pool": pool},
        "host_utilisation": host_note,
        "machine": {"cores": os.cpu_count(), "platform": platform.platform()},
        "versions": _versions(),
    }


def _title(cfg: LoadConfig, target: Target) -> str:
    if target.kind == "model":
        return f"{cfg.workload.name} workload, {target.model} service"
    return f"{cfg.workload.name} workload, router" + (f" ({cfg.model} forced)" if cfg.model else "")


def run(cfg: LoadConfig, console: Console) -> tuple[list[SummaryRow], list[Path]]:
    """Run the load test and write ``requests.csv``, ``summary.csv``, ``run.json`` and the
    plots into ``cfg.out_dir``; returns the summary rows and the files written."""
    pool, source = prompt_pool(cfg.workload, cfg.seed, cfg.dataset)
    console.print(f"{len(pool)} {cfg.workload.name} prompts from {source}")
    target, records = asyncio.run(drive(cfg, pool, console))
    host, host_note = utilisation(cfg.prometheus_url, level_windows(records))
    rows = summarise(records, cfg.workload.name, host)
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    paths = [cfg.out_dir / "requests.csv", cfg.out_dir / "summary.csv", cfg.out_dir / "run.json"]
    write_requests_csv(records, paths[0])
    write_summary_csv(rows, paths[1])
    info = _run_info(cfg, target, source, len(pool), host_note)
    paths[2].write_text(json.dumps(info, indent=2) + "\n")
    paths += write_plots(rows, cfg.out_dir, _title(cfg, target))
    return rows, paths
