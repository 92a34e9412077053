"""``polyllm collect``: the command around :mod:`polyllm.training.collect`."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from polyllm.training.collect import (
    COMMITTED,
    MAX_TOKENS,
    WORKING,
    Answer,
    AnswerLog,
    answered,
    collect,
    compact,
    distinct_models,
)

BUILT_DATASET = Path(".cache/data/dataset.jsonl")
SHARED_PROMPTS = Path("../shared/data/prompts/train.jsonl")
_console = Console()


def prompts_path(given: Path | None) -> Path:
    """The built dataset when there is one, else the public prompts (``POLYLLM_PROMPTS``)."""
    if given is not None:
        return given
    if BUILT_DATASET.exists():
        return BUILT_DATASET
    return Path(os.environ.get("POLYLLM_PROMPTS", SHARED_PROMPTS))


def load_prompts(path: Path, limit: int | None) -> list[dict[str, Any]]:
    """id, category and prompt of each record (the text stays in memory only)."""
    with path.open(encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    keep = [{"id": r["id"], "category": r.get("category"), "prompt": r["prompt"]} for r in rows]
    return keep[:limit] if limit else keep


def collect_command(
    prompts: Annotated[Path | None, typer.Option(help="Prompt JSONL [built dataset].")] = None,
    models: Annotated[str, typer.Option(help="Comma-separated model ids.")] = "m1,m2,m3,m4,m5",
    concurrency: Annotated[
        int, typer.Option(min=1, max=16, help="Requests in flight per model (each its own line).")
    ] = 2,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N prompts.")] = None,
    base_url: Annotated[
        str, typer.Option(help="Model services at <base>:81NN.")
    ] = "http://127.0.0.1",
    compact_only: Annotated[
        bool, typer.Option("--compact", help="Only fold answers into data/.")
    ] = False,
) -> None:
    """Send every prompt to every distinct model of the running stack (temp 0) and record the
    answers by prompt id; resumable, skips what is already answered."""
    if compact_only:
        _console.print(f"{compact()} answers in {COMMITTED}")
        return
    ids = [m.strip() for m in models.split(",") if m.strip()]
    own, inherits = distinct_models(ids)
    source = prompts_path(prompts)
    rows = load_prompts(source, limit)
    urls = {m: f"{base_url}:{8100 + int(m[1:])}" for m in own}
    done = answered(COMMITTED, WORKING)
    meta = {"prompts": str(source), "inherits": inherits, "max_tokens": MAX_TOKENS}
    COMMITTED.parent.mkdir(parents=True, exist_ok=True)
    (COMMITTED.parent / "collection.json").write_text(json.dumps(meta, indent=2) + "\n")
    todo = sum((str(p["id"]), m) not in done for p in rows for m in own)
    _console.print(
        f"{len(rows)} prompts from {source}; models {', '.join(own)}"
        + (f" ({', '.join(f'{k} inherits {v}' for k, v in inherits.items())})" if inherits else "")
        + f"; {todo} answers to collect"
    )
    log_file = AnswerLog(WORKING)
    errors = 0
    columns = (TextColumn("collect"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=_console) as progress:
        task = progress.add_task("collect", total=todo)

        def on_answer(answer: Answer) -> None:
            nonlocal errors
            errors += answer.error is not None
            progress.advance(task)

        try:
            asyncio.run(
                collect(rows, urls, log_file, done, concurrency=concurrency, on_answer=on_answer)
            )
        finally:
            log_file.close()
    _console.print(f"done; {errors} errors recorded (retried on the next run)")
