"""``polyllm bench load``, ``bench membw`` and ``bench load-results`` (and
``benchmarks/load_test.py``, which runs :func:`load_command`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.table import Table

from polyllm.bench.load_summary import ALL, SummaryRow
from polyllm.bench.workloads import WORKLOADS, WorkloadName
from polyllm.common.schemas import PreferBackend
from polyllm.models.catalog import CATALOG

MAX_CONCURRENCY = 64
_console = Console(stderr=True, soft_wrap=True, highlight=False)


def _fail(message: str, code: int = 2) -> typer.Exit:
    _console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


def parse_concurrency(value: str) -> tuple[int, ...]:
    """``"4"`` or ``"1,2,4,8"`` → the levels, in the order given; each 1..MAX_CONCURRENCY, no
    repeats."""
    try:
        levels = tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise typer.BadParameter(f"not a number or a comma-separated list: {value!r}") from None
    if not levels or any(not 1 <= c <= MAX_CONCURRENCY for c in levels):
        raise typer.BadParameter(f"each level must be within 1..{MAX_CONCURRENCY}: {value!r}")
    if len(set(levels)) != len(levels):
        raise typer.BadParameter(f"a level is repeated: {value!r}")
    return levels


def _summary_table(rows: list[SummaryRow]) -> Table:
    table = Table("c", "model", "n", "err", "p50 s", "p95 s", "p99 s", "TTFT p50 ms",
                  "tok/s req", "tok/s agg", "share")  # fmt: skip
    for r in rows:
        cells = [r.latency_p50_s, r.latency_p95_s, r.latency_p99_s]
        table.add_row(
            str(r.concurrency), r.model, str(r.requests), str(r.errors),
            *("-" if v is None else f"{v:.2f}" for v in cells),
            "-" if r.ttft_p50_ms is None else f"{r.ttft_p50_ms:.0f}",
            "-" if r.tokens_per_s_mean is None else f"{r.tokens_per_s_mean:.1f}",
            "-" if r.tokens_per_s_aggregate is None else f"{r.tokens_per_s_aggregate:.1f}",
            "" if r.share is None else f"{r.share:.0%}",
        )  # fmt: skip
    return table


def load_command(
    workload: Annotated[
        WorkloadName,
        typer.Option(help="; ".join(f"{w.name}: {w.about}" for w in WORKLOADS.values()) + "."),
    ] = "short",
    concurrency: Annotated[
        str, typer.Option(help="Requests in flight: N, or a list for a sweep (1,2,4,8).")
    ] = "1,2,4,8",
    requests: Annotated[
        int, typer.Option(min=1, max=10_000, help="Measured requests per concurrency level.")
    ] = 16,
    target: Annotated[
        str | None,
        typer.Option(help="Router or model service URL (default: polyllm.yaml's router)."),
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Through the router: force this model id (else it picks).")
    ] = None,
    prefer_backend: Annotated[PreferBackend, typer.Option(help="Router backend choice.")] = "auto",
    cache: Annotated[
        Literal["on", "off"],
        typer.Option(help="Router answer cache; off sends cache=false (no lookup, no store)."),
    ] = "off",
    seed: Annotated[int, typer.Option(min=0, help="Seed of the prompt order.")] = 0,
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path(".run/load"),
    warmup: Annotated[
        int, typer.Option(min=0, max=100, help="Unrecorded requests first, one at a time.")
    ] = 2,
    max_tokens: Annotated[
        int | None, typer.Option(min=1, max=4096, help="Override the workload's max_tokens.")
    ] = None,
    timeout_s: Annotated[
        float, typer.Option(min=1, max=3600, help="Longest one request may take.")
    ] = 300.0,
    prometheus: Annotated[
        str | None,
        typer.Option(envvar="PROMETHEUS_URL", help="Prometheus (default: polyllm.yaml's)."),
    ] = None,
    api_key: Annotated[
        str | None, typer.Option(envvar="POLYLLM_API_KEY", help="X-API-Key for the router.")
    ] = None,
    dataset: Annotated[
        Path | None, typer.Option(help="Prompt JSONL (default: the dataset, else a sample).")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="Stack config (polyllm.yaml).")] = None,
) -> None:
    """Load test: latency, TTFT and tokens/s percentiles per concurrency level and model;
    writes requests.csv, summary.csv, run.json and PNG plots into --out."""
    from polyllm.bench.load import LoadConfig, LoadError, default_prometheus, resolve_target, run
    from polyllm.bench.workloads import PromptFileError
    from polyllm.stack.config import StackConfigError, load_stack_config

    levels = parse_concurrency(concurrency)
    if model is not None and model not in CATALOG:
        raise typer.BadParameter(f"unknown model {model}; known: {', '.join(CATALOG)}")
    try:
        stack = load_stack_config(config)
        cfg = LoadConfig(
            target=resolve_target(target, stack), workload=WORKLOADS[workload],
            concurrency=levels, requests=requests, out_dir=out, warmup=warmup, model=model,
            prefer_backend=prefer_backend, cache=cache == "on", seed=seed, max_tokens=max_tokens,
            request_timeout_s=timeout_s,
            prometheus_url=prometheus.rstrip("/") if prometheus else default_prometheus(stack),
            api_key=api_key, dataset=dataset,
        )  # fmt: skip
        _console.print(f"load test: {cfg.workload.name} workload → {cfg.target}, "
                       f"concurrency {levels}, {requests} requests each")  # fmt: skip
        rows, paths = run(cfg, _console)
    except (LoadError, PromptFileError, StackConfigError) as exc:
        raise _fail(str(exc)) from None
    Console(soft_wrap=True).print(_summary_table(rows))
    _console.print(f"wrote {', '.join(p.name for p in paths)} in {out}")
    errors = sum(r.errors for r in rows if r.model == ALL)
    if errors:
        raise _fail(f"{errors} request(s) failed: see {out / 'requests.csv'}", 1)


def membw_command(
    size_mib: Annotated[int, typer.Option(min=64, max=8192, help="Buffer size (MiB).")] = 512,
    repeats: Annotated[int, typer.Option(min=1, max=100, help="Timed copies.")] = 10,
    out: Annotated[Path, typer.Option(help="Where membw.csv goes.")] = Path("docs/benchmarks/cpu"),
) -> None:
    """Memory bandwidth (single-thread array copy), for the decode bound of the load results."""
    from polyllm.bench.membw import copy_bandwidth, write_bandwidth

    result = copy_bandwidth(size_mib, repeats)
    path = write_bandwidth(result, out)
    Console().print(
        f"copy bandwidth: best {result.best_gb_s:.2f} GB/s, median {result.median_gb_s:.2f} "
        f"GB/s ({repeats} copies of {size_mib} MiB); wrote {path}"
    )


def load_results_command(
    results_dir: Annotated[Path, typer.Argument(help="Folder of runs (<run>/summary.csv).")] = Path(
        "docs/benchmarks/cpu"
    ),
    models_dir: Annotated[Path, typer.Option(help="Model files (their sizes).")] = Path("models"),
) -> None:
    """Print the Markdown results table of the load tests in RESULTS_DIR, with the decode
    bound (bandwidth ÷ model bytes) next to each model's tokens/s."""
    from polyllm.bench.load_results import markdown_results

    try:
        table = markdown_results(results_dir, models_dir)
    except FileNotFoundError as exc:
        raise _fail(str(exc), 1) from None
    typer.echo(table, nl=False)
