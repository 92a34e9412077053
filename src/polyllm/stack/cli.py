"""The `polyllm up`, `down` and `status` commands (registered in ``polyllm.cli``)."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from polyllm.stack.config import DEFAULT_PATH, STACK_ENV, StackConfig, load_stack_config
from polyllm.stack.services import StackError
from polyllm.stack.supervisor import Launch, ServiceFailed, UpResult, down, status, up

_out = Console(soft_wrap=True, highlight=False)
_err = Console(stderr=True, soft_wrap=True, highlight=False)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help=f"Stack config file (default: ${STACK_ENV}, else {DEFAULT_PATH}).",
        show_default=False,
    ),
]
_STATE_STYLE = {"healthy": "green", "already running": "cyan", "failed": "red"}


def _load(path: Path | None) -> tuple[StackConfig, Path]:
    """The config and the folder its relative paths are relative to."""
    path = path or Path(os.environ.get(STACK_ENV, DEFAULT_PATH))
    try:
        config = load_stack_config(path)
    except ValueError as exc:
        _err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    return config, path.parent.absolute()


def _progress(launches: list[Launch], began: float) -> Table:
    table = Table(title="polyllm up", title_justify="left")
    for column in ("service", "pid", "port", "status", "after"):
        table.add_column(column)
    waited = time.monotonic() - began
    for launch in launches:
        style = _STATE_STYLE.get(launch.state, "yellow")
        after = launch.healthy_after_s if launch.healthy_after_s is not None else waited
        table.add_row(
            launch.spec.name,
            str(launch.pid),
            str(launch.spec.port),
            f"[{style}]{launch.state}[/{style}]",
            f"{after:.1f} s",
        )
    return table


def _report_up(result: UpResult) -> None:
    _out.print()  # Live leaves its last frame without a newline when stdout is not a terminal
    for w in result.warm_ups:
        _out.print(f"warm-up {w.model}: {w.completion_tokens} tokens in {w.latency_s:.2f} s")
    _out.print(f"\n[bold]stack is up[/bold] ({result.elapsed_s:.1f} s)")
    for launch in result.launches:
        _out.print(f"  {launch.spec.name:<14} {launch.spec.url}")


def up_command(
    config_path: ConfigOption = None,
    only: Annotated[
        str | None,
        typer.Option(help="Comma-separated services to start, e.g. redis,m1,router."),
    ] = None,
    timeout: Annotated[
        float, typer.Option(min=1, help="Seconds to wait for every service to be healthy.")
    ] = 300,
) -> None:
    """Start the stack in the background and wait until every service is healthy.

    Logs and pid files go to the run dir; running services are left alone. Each model then
    answers a short warm-up prompt, and the URLs are printed.
    """
    config, base = _load(config_path)
    names = [n.strip() for n in only.split(",") if n.strip()] if only else None
    began = time.monotonic()
    launches: list[Launch] = []
    with Live(console=_out, auto_refresh=False, transient=False) as live:

        def show(started: list[Launch] | None = None) -> None:
            if started is not None:
                launches.extend(started)
            live.update(_progress(launches, began), refresh=True)

        try:
            result = up(config, base, names, timeout, on_start=show, on_change=show)
        except ServiceFailed as exc:
            show()
            live.stop()
            _out.print()
            _err.print(f"[red]error:[/red] {exc}; last lines of {exc.log_path}:")
            _err.print("\n".join(f"  | {line}" for line in exc.tail) or "  (empty log)")
            if launches:
                _err.print("the other services keep running; `polyllm down` stops them")
            raise typer.Exit(1) from None
        except StackError as exc:
            live.stop()
            _err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(1) from None
    _report_up(result)


def down_command(config_path: ConfigOption = None) -> None:
    """Stop the processes `polyllm up` started, by their recorded pids.

    SIGTERM, then SIGKILL after 10 s; pid and port files are removed. Harmless when nothing runs.
    """
    config, base = _load(config_path)
    stopped = down(config, base)
    if not stopped:
        _out.print("nothing to stop")
    for s in stopped:
        pid = f"pid {s.pid}" if s.pid is not None else "no pid"
        _out.print(f"{s.name:<14} {pid:<12} {s.outcome}")


def _mib(rss: int | None) -> str:
    return "-" if rss is None else f"{rss / 2**20:.0f} MiB"


def status_command(
    config_path: ConfigOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON list instead of a table.")
    ] = False,
) -> None:
    """Each service of the stack: pid, port, health and resident memory."""
    config, base = _load(config_path)
    rows = status(config, base)
    if as_json:
        typer.echo(json.dumps([asdict(r) for r in rows], indent=2))
        return
    table = Table()
    for column in ("service", "pid", "port", "health", "rss", "url"):
        table.add_column(column)
    for r in rows:
        style = {"ok": "green", "stopped": "dim"}.get(r.health, "red")
        pid = "-" if r.pid is None else str(r.pid)
        health = f"[{style}]{r.health}[/{style}]"
        table.add_row(r.name, pid, str(r.port), health, _mib(r.rss_bytes), r.url)
    _out.print(table)
