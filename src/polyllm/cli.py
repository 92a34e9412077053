"""``polyllm …``: the one entry point (serve-model, serve-router, up/down/status, models, bench)."""

from __future__ import annotations

import logging
from typing import Any

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError
from rich.console import Console

from polyllm.bench.cli import bench_app, smoke_command
from polyllm.demo.cli import demo_app
from polyllm.models.catalog import UnknownModelError
from polyllm.models.cli import models_app
from polyllm.models.embedder import embedder_command
from polyllm.monitoring.top import top_command
from polyllm.stack.cli import down_command, status_command, up_command
from polyllm.training.cli import data_app
from polyllm.training.collect_cli import collect_command
from polyllm.training.train_cli import train_app

app = typer.Typer(
    help="PolyLLM: several small local GGUF models behind one smart router.", no_args_is_help=True
)
app.add_typer(models_app, name="models")
models_app.command("embedder")(embedder_command)
app.add_typer(bench_app, name="bench")
app.add_typer(data_app, name="data")
app.add_typer(demo_app, name="demo")
app.add_typer(train_app)  # score, label, report
app.command("up")(up_command)
app.command("down")(down_command)
app.command("status")(status_command)
app.command("smoke")(smoke_command)
app.command("collect")(collect_command)
app.command("top")(top_command)

_err = Console(stderr=True, soft_wrap=True)
_PASS_THROUGH: dict[str, Any] = {
    "allow_extra_args": True,
    "ignore_unknown_options": True,
    "help_option_names": [],
}


def _settings_error(exc: Exception) -> typer.Exit:
    if isinstance(exc, ValidationError):
        lines = [f"  {'.'.join(map(str, e['loc'])) or '?'}: {e['msg']}" for e in exc.errors()]
        message = "invalid settings:\n" + "\n".join(lines)
    else:
        message = str(exc)
    _err.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(2)


@app.command("serve-model", context_settings=_PASS_THROUGH)
def serve_model(ctx: typer.Context) -> None:
    """Serve one model over HTTP. Every setting is a flag or an env var: see --help."""
    import uvicorn

    from polyllm.common.logging import configure_logging
    from polyllm.inference.app import create_app
    from polyllm.inference.prepare import ServiceStartError, prepare_model_file
    from polyllm.inference.settings import InferenceSettings

    try:
        settings = InferenceSettings(_cli_parse_args=ctx.args)
    except (ValidationError, SettingsError, UnknownModelError) as exc:
        raise _settings_error(exc) from None
    configure_logging(settings.log_level)
    try:
        prepare_model_file(settings)
    except ServiceStartError as exc:
        _err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None
    server: uvicorn.Server | None = None

    def stop_server() -> None:
        assert server is not None
        server.should_exit = True

    service = create_app(settings, on_load_failure=stop_server)
    config = uvicorn.Config(
        service, host=settings.host, port=settings.port, log_config=None, access_log=False
    )
    server = uvicorn.Server(config)
    server.run()
    if service.state.load_error:
        raise typer.Exit(1)


@app.command("serve-router", context_settings=_PASS_THROUGH)
def serve_router(ctx: typer.Context) -> None:
    """Serve the router (the front door). Every setting is a flag or an env var: see --help."""
    import uvicorn

    from polyllm.common.logging import configure_logging
    from polyllm.router.app import create_app
    from polyllm.router.settings import RouterSettings

    try:
        settings = RouterSettings(_cli_parse_args=ctx.args)
        configure_logging(settings.log_level)
        service = create_app(settings)
    except (ValidationError, SettingsError, ValueError) as exc:
        raise _settings_error(exc) from None
    uvicorn.run(service, host=settings.host, port=settings.port, log_config=None, access_log=False)


def main() -> None:
    """Console-script entry point."""
    logging.captureWarnings(True)
    app()
