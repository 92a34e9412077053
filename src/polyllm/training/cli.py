"""``polyllm data …``: build the router's prompt dataset and show what is in it."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich import box
from rich.console import Console
from rich.table import Table

from polyllm.training.dataset import BuildResult, DatasetFileError, DatasetSettings, run_build
from polyllm.training.records import CATEGORIES, SPLITS

logger = logging.getLogger(__name__)

data_app = typer.Typer(no_args_is_help=True)


@data_app.callback()
def data_callback() -> None:
    """Build the router's prompt dataset (public prompts + variations, split by group)."""


def counts_table(result: BuildResult) -> Table:
    """Records per category and split, with totals."""
    counts = result.counts()
    table = Table(title="prompt dataset", box=box.SIMPLE_HEAVY)
    table.add_column("category")
    for split in (*SPLITS, "total"):
        table.add_column(split, justify="right")
    categories = [c for c in CATEGORIES if any(counts[(c, s)] for s in SPLITS)]
    for category in categories:
        row = [counts[(category, s)] for s in SPLITS]
        table.add_row(category, *map(str, row), str(sum(row)))
    totals = [sum(counts[(c, s)] for c in categories) for s in SPLITS]
    table.add_section()
    table.add_row("total", *map(str, totals), str(sum(totals)), style="bold")
    return table


def build_lines(result: BuildResult) -> list[str]:
    """What the build did besides the counts: variations, duplicates, merged groups."""
    dropped = Counter(d.kind for d in result.dropped)
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(result.variations.items())) or "none"
    lines = [
        f"originals kept: {result.originals}",
        f"variations: {sum(result.variations.values())} ({kinds})",
        f"duplicates dropped: {len(result.dropped)} (exact {dropped['exact']},"
        f" near {dropped['near']})",
        f"groups merged into others: {result.merged_groups}",
    ]
    if result.stale_pins:
        lines.append(f"split entries for ids not in this build (kept): {result.stale_pins}")
    return lines


@data_app.command("build")
def build_command(
    source: Annotated[
        Path | None,
        typer.Option(
            help="Public prompt file \\[default: $POLYLLM_PROMPTS or ../shared/data/prompts/"
            "train.jsonl from the project root].",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            help="Built dataset \\[default: $POLYLLM_DATASET or .cache/data/dataset.jsonl].",
            show_default=False,
        ),
    ] = None,
    splits: Annotated[
        Path | None,
        typer.Option(
            help="id → split map, reused if present \\[default: data/splits.json].",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed \\[default: 0].", show_default=False)
    ] = None,
    near_duplicate: Annotated[
        float | None,
        typer.Option(
            help="Jaccard at which a prompt is dropped \\[default: 0.9].", show_default=False
        ),
    ] = None,
    related: Annotated[
        float | None,
        typer.Option(
            help="Jaccard at which two groups merge \\[default: 0.8].", show_default=False
        ),
    ] = None,
    reset_splits: Annotated[
        bool, typer.Option("--reset-splits", help="Ignore the existing id → split map.")
    ] = False,
) -> None:
    """Build the dataset: public prompts + variations, de-duplicated, split by group."""
    given: dict[str, Any] = {
        "source": source,
        "output": output,
        "splits": splits,
        "seed": seed,
        "near_duplicate": near_duplicate,
        "related": related,
    }
    err = Console(stderr=True, soft_wrap=True)
    try:
        settings = DatasetSettings(**{k: v for k, v in given.items() if v is not None})
        result = run_build(settings, reuse_splits=not reset_splits)
    except ValidationError as exc:
        details = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        err.print(f"[red]error:[/red] invalid settings: {details}", highlight=False)
        raise typer.Exit(2) from None
    except (DatasetFileError, ValueError) as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None
    console = Console()
    console.print(counts_table(result))
    for line in build_lines(result):
        console.print(line, highlight=False)
    console.print(
        f"wrote {settings.path(settings.output)} and {settings.path(settings.splits)}",
        highlight=False,
    )
