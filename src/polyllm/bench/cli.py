"""``polyllm bench …``: benchmarks that print figures (never timed tests)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Annotated, TypeVar

import httpx
import typer
from rich.console import Console
from rich.table import Table

from polyllm.bench.load_cli import load_command, load_results_command, membw_command
from polyllm.models.catalog import CATALOG

bench_app = typer.Typer(
    help="Benchmarks: measure and write docs/benchmarks/.", no_args_is_help=True
)
_console = Console()
bench_app.command("load")(load_command)
bench_app.command("membw")(membw_command)
bench_app.command("load-results")(load_results_command)


@bench_app.command("models")
def bench_models(
    models: Annotated[
        str, typer.Option(help="Comma-separated model ids (m5 is skipped when it is the m4 file).")
    ] = ",".join(CATALOG),
    repeats: Annotated[int, typer.Option(min=1, max=20, help="Repeats per prompt and path.")] = 5,
    max_tokens: Annotated[int, typer.Option(min=8, max=1024, help="Tokens to decode.")] = 128,
    threads: Annotated[
        int | None, typer.Option(min=1, help="llama.cpp threads [all cores].")
    ] = None,
    models_dir: Annotated[Path, typer.Option(help="Model files.")] = Path("models"),
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("docs/benchmarks"),
    concurrency: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated client counts (1,2,4,8): measure continuous batching "
            "(serial vs N_PARALLEL engine) instead of service vs in-process."
        ),
    ] = None,
    requests: Annotated[
        int, typer.Option(min=1, max=1000, help="With --concurrency: requests per level (min).")
    ] = 8,
    llama_server: Annotated[
        Path | None,
        typer.Option(
            help="With --concurrency: llama.cpp's llama-server binary to measure beside ours "
            "[default: the one scripts/build-llama-server.sh built, if any]."
        ),
    ] = None,
    runs: Annotated[
        int,
        typer.Option(
            min=1,
            max=20,
            help="With --concurrency: measure every engine this many times, taking turns; "
            "the report gives medians and the range.",
        ),
    ] = 1,
) -> None:
    """TTFT and decode tokens/s per model: HTTP service vs in-process llama-cpp-python, or
    (with --concurrency) the engines' aggregate and per-request rates under concurrent load."""
    from polyllm.bench.latency import BenchConfig, run

    ids = [m.strip() for m in models.split(",") if m.strip()]
    unknown = [m for m in ids if m not in CATALOG]
    if unknown:
        raise typer.BadParameter(
            f"unknown model(s) {', '.join(unknown)}; known: {', '.join(CATALOG)}"
        )
    if concurrency is not None:
        from polyllm.bench.batching import built_llama_server

        server = llama_server or built_llama_server()
        _bench_concurrency(
            ids, concurrency, requests, max_tokens, threads, models_dir, out, server, runs
        )  # fmt: skip
        return
    cfg = BenchConfig(
        models=ids, repeats=repeats, max_tokens=max_tokens, models_dir=models_dir, out_dir=out
    )
    if threads is not None:
        cfg = replace(cfg, n_threads=threads)
    rows = _measured(lambda: run(cfg, echo=_console.print))
    table = Table(
        "model",
        "prompt",
        "TTFT in-proc ms",
        "TTFT svc ms",
        "+ms",
        "tok/s in-proc",
        "tok/s svc",
        "lost",
    )
    for r in rows:
        table.add_row(
            r["model"], r["prompt"], str(r["in-process_ttft_ms"]), str(r["service_ttft_ms"]),
            str(r["ttft_added_ms"]), str(r["in-process_tok_s"]), str(r["service_tok_s"]),
            f"{r['tok_s_loss_pct']}%",
        )  # fmt: skip
    _console.print(table)


def _bench_concurrency(
    ids: list[str], levels: str, requests: int, max_tokens: int, threads: int | None,
    models_dir: Path, out: Path, server: Path | None, runs: int,
) -> None:  # fmt: skip
    from polyllm.bench.batching import ConcurrencyConfig, run

    try:
        counts = sorted({int(c) for c in levels.split(",") if c.strip()})
    except ValueError:
        raise typer.BadParameter(
            f"--concurrency wants numbers like 1,2,4,8, not {levels!r}"
        ) from None
    if not counts or counts[0] < 1 or counts[-1] > 64:
        raise typer.BadParameter("--concurrency: client counts from 1 to 64")
    cfg = ConcurrencyConfig(
        models=ids, levels=counts, requests=requests, max_tokens=max_tokens,
        models_dir=models_dir, out_dir=out, llama_server=server, runs=runs,
    )  # fmt: skip
    if threads is not None:
        cfg = replace(cfg, n_threads=threads)
    rows = _measured(lambda: run(cfg, echo=_console.print))
    table = Table(
        "model", "engine", "c", "agg tok/s", "x c1", "x range", "req tok/s", "TTFT p95", "x c1",
        "same",
    )  # fmt: skip
    for r in rows:
        table.add_row(
            r["model"], r["engine"], str(r["concurrency"]), str(r["aggregate_tok_s"]),
            str(r["aggregate_x"]), r["aggregate_x_range"], str(r["per_request_tok_s_p50"]),
            str(r["ttft_p95_ms"]),
            str(r["ttft_p95_x"]), r["same_text_as_serial"],
        )  # fmt: skip
    _console.print(table)


T = TypeVar("T")


def _measured(measure: Callable[[], T]) -> T:
    """Run a benchmark; a RuntimeError (a server that would not start, …) is a red line, exit 1."""
    try:
        return measure()
    except RuntimeError as exc:
        _console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None


@bench_app.command("router")
def bench_router(
    requests: Annotated[
        int, typer.Option(min=2, max=10_000, help="Requests per measured path (and cache hits).")
    ] = 40,
    rate_calls: Annotated[
        int, typer.Option(min=2, max=1_000_000, help="Rate-limiter decisions to time.")
    ] = 2000,
    models_dir: Annotated[Path, typer.Option(help="Model files (m1.gguf).")] = Path("models"),
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("docs/benchmarks"),
) -> None:
    """Router overhead (TTFT and total, vs the model service direct), cache-hit latency and
    rate-limit decision latency; starts its own Redis, m1 service and router."""
    from polyllm.bench.router import RouterBenchConfig, run

    cfg = RouterBenchConfig(
        requests=requests, rate_calls=rate_calls, models_dir=models_dir, out_dir=out
    )
    rows = _measured(lambda: run(cfg, echo=_console.print))
    table = Table("measurement", "N", "p50 ms", "p99 ms", "target", "met")
    for r in rows:
        met = "" if r.met is None else ("[green]yes[/green]" if r.met else "[red]no[/red]")
        table.add_row(r.measurement, str(r.n), f"{r.p50_ms:.2f}", f"{r.p99_ms:.2f}", r.target, met)
    _console.print(table)


def smoke_command(
    config: Annotated[Path | None, typer.Option(help="Stack config [polyllm.yaml].")] = None,
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("docs/benchmarks"),
) -> None:
    """Send the same prompts to every model and through the router of the running stack."""
    from polyllm.bench.smoke import smoke
    from polyllm.stack.config import StackConfigError, load_stack_config

    try:
        stack = load_stack_config(config)
    except StackConfigError as exc:
        _console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    try:
        rows, report = smoke(stack, out)
    except httpx.TransportError as exc:
        _console.print(f"[red]error:[/red] the stack is not answering ({exc}); run `make up`")
        raise typer.Exit(1) from None
    table = Table("target", "model", "prompt", "status", "TTFT s", "latency s", "tok/s", "response")
    for r in rows:
        table.add_row(
            r.target, r.model, str(r.prompt), str(r.status),
            f"{r.ttft_s:.3f}" if r.ttft_s is not None else "-", f"{r.latency_s:.3f}",
            f"{r.tokens_per_s:.1f}" if r.tokens_per_s is not None else "-",
            (r.error or r.response)[:40],
        )  # fmt: skip
    _console.print(table)
    _console.print(f"wrote {report}")
    if any(r.status != 200 or r.error for r in rows):
        raise typer.Exit(1)


@bench_app.command("policy")
def bench_policy(
    prompts: Annotated[
        Path | None, typer.Option(help="Prompt JSONL [the built dataset, else a bundled sample].")
    ] = Path(".cache/data/dataset.jsonl"),
    limit: Annotated[int, typer.Option(min=20, help="Prompts to time.")] = 500,
    out: Annotated[Path, typer.Option(help="Markdown output.")] = Path(
        "docs/benchmarks/router-policy.md"
    ),
) -> None:
    """Featurisation + prediction latency of the learned policy (in-process and via POST
    /route on a real router process) and the router's resident memory."""
    from polyllm.bench.policy import load_prompts, render, run
    from polyllm.router.settings import RouterSettings

    texts = load_prompts(prompts)[:limit]
    workdir = Path(".cache/bench-policy")  # logs of the processes it starts
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        figures = run(texts, workdir, RouterSettings(policy="learned"))
    except RuntimeError as exc:
        _console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    text = render(figures)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("# Router policy cost\n\nWritten by `polyllm bench policy`.\n\n" + text + "\n")
    _console.print(text)
