"""``polyllm score | label | report``: score the collected answers, label each prompt with
its best model per λ, and write ``docs/router-data.md``."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from polyllm.models.embedder import EMBEDDER_DIR, fetch_embedder
from polyllm.router.embedding import StaticEmbedder
from polyllm.router.policy.learned import TRAINED_DIR, TrainedRouter
from polyllm.training.collect import COMMITTED, WORKING, read_answers
from polyllm.training.cost import calibrated_latency
from polyllm.training.dataset import DEFAULT_DATASET, DEFAULT_SOURCE
from polyllm.training.labels import (
    COLLECTION,
    DEFAULT_LAMBDAS,
    LABELS,
    MODEL_ORDER,
    complete_outcomes,
    label_rows,
    labelled_models,
)
from polyllm.training.report import REPORT, ReportInputs, write_report
from polyllm.training.router_eval import REPORT as EVAL_REPORT
from polyllm.training.router_eval import evaluate
from polyllm.training.router_eval import write_report as write_eval_report
from polyllm.training.router_train import DEFAULT_LAMBDA, load_examples, train_router
from polyllm.training.scores import (
    SCORES,
    latest_answers,
    load_records,
    read_scores,
    score_answers,
    write_jsonl,
)

logger = logging.getLogger(__name__)
_console = Console()

train_app = typer.Typer(no_args_is_help=True)

AnswersOpt = Annotated[list[Path] | None, typer.Option("--answers", help="Answer files.")]
ScoresOpt = Annotated[Path, typer.Option(help="Scores file (gzip JSONL).")]
LambdaOpt = Annotated[
    list[float] | None, typer.Option("--lambda", help="Latency weight λ (repeatable).")
]


@train_app.callback()
def train_callback() -> None:
    """Score collected answers, label prompts with their best model, report."""


def _answer_paths(answers: list[Path] | None) -> list[Path]:
    return answers or [COMMITTED, WORKING]


def _latencies(latest: Mapping[tuple[str, str], Mapping[str, Any]]) -> dict[tuple[str, str], float]:
    """Calibrated latency of each answer (see :mod:`polyllm.training.cost`)."""
    return {pair: calibrated_latency(dict(a)) for pair, a in latest.items()}


def _count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open(encoding="utf-8") as lines:
        return sum(1 for line in lines if line.strip())


@train_app.command("score")
def score_command(
    answers: AnswersOpt = None,
    output: ScoresOpt = SCORES,
    dataset: Annotated[Path, typer.Option(help="Built dataset.")] = DEFAULT_DATASET,
    prompts: Annotated[Path, typer.Option(help="Public prompts (fallback).")] = DEFAULT_SOURCE,
    workers: Annotated[int, typer.Option(min=1, max=8, help="Scoring processes.")] = 2,
    rescore: Annotated[bool, typer.Option(help="Score pairs already scored again.")] = False,
) -> None:
    """Score every collected answer (skipping error records) into the scores file."""
    records = load_records(dataset, prompts)
    rows = list(read_answers(*_answer_paths(answers)))
    columns = (
        TextColumn("scoring"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=_console) as progress:
        task = progress.add_task("score", total=None)
        run = score_answers(
            rows,
            records,
            output,
            rescore=rescore,
            workers=workers,
            on_total=lambda n: progress.update(task, total=n),
            on_scored=lambda _: progress.advance(task),
        )
    _console.print(
        f"scored {run.scored}, already scored {run.skipped}, unknown prompt id {run.unknown} "
        f"→ {output}"
    )


@train_app.command("label")
def label_command(
    lambdas: LambdaOpt = None,
    answers: AnswersOpt = None,
    scores: ScoresOpt = SCORES,
    output: Annotated[Path, typer.Option(help="Labels file (gzip JSONL).")] = LABELS,
    collection: Annotated[Path, typer.Option(help="Collection config.")] = COLLECTION,
) -> None:
    """Label each fully scored prompt with its best model per λ (judge prompts excluded)."""
    chosen = lambdas or list(DEFAULT_LAMBDAS)
    models = labelled_models(collection)
    outcomes = complete_outcomes(
        read_scores(scores).values(),
        _latencies(latest_answers(read_answers(*_answer_paths(answers)))),
        models,
    )
    rows = label_rows(outcomes, chosen, models)
    write_jsonl(output, rows)
    _console.print(f"labelled {len(rows)} prompts for λ ∈ {chosen} → {output}")


@train_app.command("report")
def report_command(
    lambdas: LambdaOpt = None,
    answers: AnswersOpt = None,
    scores: ScoresOpt = SCORES,
    dataset: Annotated[Path, typer.Option(help="Built dataset.")] = DEFAULT_DATASET,
    collection: Annotated[Path, typer.Option(help="Collection config.")] = COLLECTION,
    output: Annotated[Path, typer.Option(help="Markdown report.")] = REPORT,
) -> None:
    """Write the router-data report (coverage, accuracy, latency, labels, oracle) and its plot."""
    models = labelled_models(collection)
    records = list(read_answers(*_answer_paths(answers)))
    latest = latest_answers(records)
    latencies = _latencies(latest)
    score_records = list(read_scores(scores).values())
    inputs = ReportInputs(
        scores=score_records,
        latencies={k: v for k, v in latencies.items() if k[1] in models},
        outcomes=complete_outcomes(score_records, latencies, models),
        models=models,
        lambdas=lambdas or list(DEFAULT_LAMBDAS),
        dataset_size=_count_lines(dataset),
        answers=len(records),
        at_budget=frozenset(p for p, a in latest.items() if a.get("finish_reason") == "length"),
    )
    plot = write_report(inputs, output)
    _console.print(f"report → {output} (plot {plot}); N = {len(inputs.outcomes)}")


EmbedderOpt = Annotated[Path, typer.Option(help="Sentence-embedder files (fetched if missing).")]
DatasetOpt = Annotated[Path, typer.Option(help="Built dataset (prompt text and split).")]
LabelsOpt = Annotated[Path, typer.Option(help="Labels file (gzip JSONL).")]


@train_app.command("train")
def train_command(
    lam: Annotated[float, typer.Option("--lambda", min=0, help="Latency weight λ.")] = (
        DEFAULT_LAMBDA
    ),
    seed: Annotated[int, typer.Option(help="Seed of every random choice.")] = 0,
    labels: LabelsOpt = LABELS,
    dataset: DatasetOpt = DEFAULT_DATASET,
    embedder_dir: EmbedderOpt = EMBEDDER_DIR,
    collection: Annotated[Path, typer.Option(help="Collection config.")] = COLLECTION,
    out: Annotated[Path, typer.Option(help="Where the three model files go.")] = TRAINED_DIR,
) -> None:
    """Fit the LightGBM router on the labelled prompts (train split), choose its settings and
    confidence threshold on validation, and write router_model.txt + sidecar files."""
    examples = load_examples(labels, dataset)
    embedder = StaticEmbedder.load(fetch_embedder(embedder_dir))
    models = labelled_models(collection)
    inherits = {m: models[-1] for m in MODEL_ORDER if m not in models}
    try:
        meta = train_router(examples, embedder, out, lam, seed, models, inherits)
    except ValueError as exc:
        _console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    _console.print(
        f"trained on {meta['counts']['train']} prompts (λ={lam}): {meta['rounds']} rounds, "
        f"validation utility {meta['validation']['utility']}, accuracy "
        f"{meta['validation']['accuracy']}, confidence threshold "
        f"{meta['confidence_threshold']} → {out}"
    )


@train_app.command("evaluate")
def evaluate_command(
    labels: LabelsOpt = LABELS,
    dataset: DatasetOpt = DEFAULT_DATASET,
    embedder_dir: EmbedderOpt = EMBEDDER_DIR,
    model_dir: Annotated[Path, typer.Option(help="The trained router's files.")] = TRAINED_DIR,
    output: Annotated[Path, typer.Option(help="Markdown report.")] = EVAL_REPORT,
) -> None:
    """Compare the trained router with always-mN, random, heuristic, kNN and the oracle on the
    test split; write docs/router-eval.md and its plot."""
    examples = load_examples(labels, dataset)
    trained = TrainedRouter.load(model_dir, fetch_embedder(embedder_dir))
    evaluation = evaluate(examples, trained, trained.featurizer.embedder.embed)
    path = write_eval_report(evaluation, trained.meta, output)
    for r in evaluation.results:
        _console.print(
            f"{r.name:<34} quality {r.quality:.3f}  PGR {r.pgr:5.2f}  "
            f"latency {r.mean_latency:5.2f} s  m4 share {r.shares.get('m4', 0):.0%}"
        )
    _console.print(f"→ {path}")
