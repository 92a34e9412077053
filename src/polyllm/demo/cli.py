"""``polyllm demo …`` (registered in ``polyllm.cli``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from polyllm.demo.record import DEFAULT_PROMPT, DemoConfig, DemoError, record

demo_app = typer.Typer(help="The web UI's demo.", no_args_is_help=True)
_out = Console(soft_wrap=True, highlight=False)
_err = Console(stderr=True, soft_wrap=True, highlight=False)


@demo_app.command("record")
def record_command(
    url: Annotated[str, typer.Option(help="Router serving the UI.")] = "http://127.0.0.1:8000",
    out: Annotated[Path, typer.Option(help="Folder for the video and screenshots.")] = Path(
        "docs/demo"
    ),
    router_log: Annotated[
        Path, typer.Option(help="The router's log (JSON lines), for the log-line step.")
    ] = Path(".run/router.log"),
    prompt: Annotated[str, typer.Option(help="The prompt the demo asks.")] = DEFAULT_PROMPT,
    ui_dir: Annotated[Path, typer.Option(help="The UI's folder (node_modules).")] = Path("ui"),
    chromium: Annotated[Path, typer.Option(help="Chromium to drive.")] = Path("/usr/bin/chromium"),
) -> None:
    """Drive the UI through the demo (CPU, then GPU, the charts, a router log line) in Chromium
    and save a .webm video plus screenshots."""
    config = DemoConfig(url, out, router_log, ui_dir, chromium, prompt)
    try:
        files = record(config)
    except DemoError as exc:
        _err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    for path in files:
        _out.print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
