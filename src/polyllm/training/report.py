"""``docs/router-data.md``: what the collected, scored answers say so far (``polyllm
report``): coverage, accuracy per model x category (table and bar plot), mean latency per model,
label distribution per λ, and the oracle next to always-m1 … always-m4."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from polyllm.training.labels import (
    PromptOutcome,
    evaluate_policies,
    label_distribution,
)
from polyllm.training.records import CATEGORIES
from polyllm.training.scores import ScoreRecord

REPORT = Path("docs/router-data.md")
PLOT_NAME = "router-data-accuracy.png"


@dataclass(frozen=True)
class ReportInputs:
    """Everything the report is made of."""

    scores: Sequence[ScoreRecord]
    latencies: Mapping[tuple[str, str], float]
    outcomes: Sequence[PromptOutcome]
    models: Sequence[str]
    lambdas: Sequence[float]
    dataset_size: int
    answers: int
    # (id, model) of the answers that stopped at their max_tokens budget (finish reason "length")
    at_budget: frozenset[tuple[str, str]] = frozenset()


def accuracy(scores: Iterable[ScoreRecord]) -> dict[tuple[str, str], tuple[float, int]]:
    """Mean score and count by (model, category), over answers with a numeric score."""
    sums: dict[tuple[str, str], list[float]] = defaultdict(list)
    for record in scores:
        if record.score is not None:
            sums[(record.model, record.category)].append(record.score)
            sums[(record.model, "all")].append(record.score)
    return {key: (sum(v) / len(v), len(v)) for key, v in sums.items()}


# Scorers that pull an answer out of the response (``ifeval`` and ``judge`` read all of it).
EXTRACTING = ("unit_test", "numeric", "math_boxed", "mc_letter", "alias_em", "exact_match")


def _categories(table: Mapping[tuple[str, str], tuple[float, int]]) -> list[str]:
    return [c for c in CATEGORIES if any(key[1] == c for key in table)]


def plot_accuracy(
    table: Mapping[tuple[str, str], tuple[float, int]], models: Sequence[str], path: Path
) -> None:
    """Grouped bars: mean score per category, one bar per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    categories = [*_categories(table), "all"]
    width = 0.8 / max(len(models), 1)
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for i, model in enumerate(models):
        xs = [c + i * width for c in range(len(categories))]
        ys = [table.get((model, c), (0.0, 0))[0] for c in categories]
        ax.bar(xs, ys, width, label=model)
    ax.set_xticks([c + 0.4 - width / 2 for c in range(len(categories))], categories)
    ax.set_ylim(0, 1)
    ax.set_ylabel("mean score")
    ax.set_title("accuracy per model x category")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _accuracy_section(
    inputs: ReportInputs, table: Mapping[tuple[str, str], tuple[float, int]]
) -> list[str]:
    categories = [*_categories(table), "all"]
    lines = [
        "| model | " + " | ".join(categories) + " |",
        "|---|" + "---:|" * len(categories),
    ]
    for model in inputs.models:
        cells = []
        for c in categories:
            mean, n = table.get((model, c), (float("nan"), 0))
            cells.append(f"{mean:.3f} (n={n})" if n else "-")
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return lines


def _extraction_section(inputs: ReportInputs) -> list[str]:
    """Per model x scorer: answers in which the scorer found no answer at all."""
    scorers = [x for x in EXTRACTING if any(s.scorer == x for s in inputs.scores)]
    lines = ["| model | " + " | ".join(scorers) + " |", "|---|" + "---:|" * len(scorers)]
    for model in inputs.models:
        cells = []
        for scorer in scorers:
            mine = [s for s in inputs.scores if s.model == model and s.scorer == scorer]
            missed = sum(1 for s in mine if s.reason.startswith("no ") and s.extracted is None)
            cells.append(f"{missed / len(mine):.0%} ({missed})" if mine else "-")
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return lines


def _budget_section(inputs: ReportInputs) -> list[str]:
    """Per model x category: share of answers that stopped at their max_tokens budget."""
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for s in inputs.scores:
        count = counts[(s.model, s.category)]
        count[0] += (s.id, s.model) in inputs.at_budget
        count[1] += 1
    categories = [c for c in CATEGORIES if any(key[1] == c for key in counts)]
    lines = ["| model | " + " | ".join(categories) + " |", "|---|" + "---:|" * len(categories)]
    for model in inputs.models:
        cells = [counts[(model, c)] for c in categories]
        lines.append(
            f"| {model} | " + " | ".join(f"{a / n:.0%}" if n else "-" for a, n in cells) + " |"
        )
    return lines


def _latency_section(inputs: ReportInputs) -> list[str]:
    lines = ["| model | answers | mean latency (s) |", "|---|---:|---:|"]
    for model in inputs.models:
        values = [t for (_, m), t in inputs.latencies.items() if m == model]
        mean = sum(values) / len(values) if values else float("nan")
        lines.append(f"| {model} | {len(values)} | {mean:.2f} |")
    return lines


def _labels_section(inputs: ReportInputs) -> list[str]:
    lines = ["| λ | " + " | ".join(inputs.models) + " |", "|---:|" + "---:|" * len(inputs.models)]
    for lam in inputs.lambdas:
        counts = label_distribution(inputs.outcomes, lam, inputs.models)
        lines.append(f"| {lam:g} | " + " | ".join(str(counts[m]) for m in inputs.models) + " |")
    return lines


def _oracle_section(inputs: ReportInputs) -> list[str]:
    lines = ["| λ | policy | mean score | mean latency (s) |", "|---:|---|---:|---:|"]
    for lam in inputs.lambdas:
        for result in evaluate_policies(inputs.outcomes, lam, inputs.models):
            lines.append(
                f"| {lam:g} | {result.name} | {result.quality:.3f} | {result.latency_s:.2f} |"
            )
    return lines


def render(inputs: ReportInputs, plot_name: str = PLOT_NAME) -> str:
    """The report as Markdown (the plot is referenced by ``plot_name``, next to the report)."""
    table = accuracy(inputs.scores)
    scored = [s for s in inputs.scores if s.score is not None]
    judged = len(inputs.scores) - len(scored)
    n = len(inputs.outcomes)
    status = (
        "**Partial numbers.** Collection is still running across sessions."
        if n < inputs.dataset_size
        else "**Complete.** Every prompt has a scored answer from every distinct model."
    )
    parts = [
        "# Router data: scores, labels and the oracle",
        "",
        f"> {status} Generated "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} from {inputs.answers} answers; "
        f"**N = {n}** of {inputs.dataset_size} prompts have a numeric score from every distinct "
        f"model ({', '.join(inputs.models)}). Regenerate with `polyllm score && polyllm label "
        "&& polyllm report`.",
        "",
        "## Coverage",
        "",
        f"- scored answers: {len(inputs.scores)} ({len(scored)} with a numeric score, {judged} "
        "`judge` answers with score `None`, left out of accuracy and labels)",
        f"- prompts complete for every distinct model (labelled): N = {n}",
        "- m5 serves m4's model file and inherits m4's answers (`data/collection.json`); it is "
        "not labelled separately.",
        "",
        "## Accuracy per model x category",
        "",
        "Mean score over every scored answer (not only the N complete prompts), so per-model "
        "counts may differ slightly.",
        "",
        *_accuracy_section(inputs, table),
        "",
        f"![accuracy per model and category]({plot_name})",
        "",
        "## Answer extraction and token budgets",
        "",
        "Share of answers in which the scorer found no answer at all (no code, number, box, "
        "option letter or option text). The extractors accept the styles the models "
        "actually use; docs/data.md says how they were checked against the collected answers.",
        "",
        *_extraction_section(inputs),
        "",
        "Share of answers that stopped at their category's max_tokens budget (written in each "
        "record). An answer cut off before its conclusion usually scores 0: where a model "
        "reasons before answering and the budget is short, its score measures the budget as "
        "much as the model.",
        "",
        *_budget_section(inputs),
        "",
        "## Mean latency per model",
        "",
        "Calibrated, not wall-clock: each answer's prompt and completion tokens at the model's "
        "idle-machine prefill and decode speeds (`polyllm.training.cost`, from "
        "docs/benchmarks/cpu-latency.md). The collection ran the models side by side on two "
        "shared cores, so its measured latencies (kept in the records) mix a model's speed "
        "with whatever else was running.",
        "",
        *_latency_section(inputs),
        "",
        "## Labels",
        "",
        "best_model = argmax over models of score - λ · latency / (the prompt's slowest latency "
        "across the distinct models), so the penalty is in [0, λ]; ties go to the smaller model "
        "(m1 < m2 < m3 < m4). Label distribution over the N complete prompts:",
        "",
        *_labels_section(inputs),
        "",
        f"{sum(1 for o in inputs.outcomes if max(o.scores.values()) == 0)} of the N prompts have "
        "no model scoring above 0; the tie rule labels them m1 (the cheapest way to be wrong).",
        "",
        "## Oracle vs. always-one-model",
        "",
        "Oracle: each prompt goes to its best model at λ. The oracle's mean score is never below "
        "any always-m at λ = 0.",
        "",
        *_oracle_section(inputs),
        "",
    ]
    return "\n".join(parts)


def write_report(inputs: ReportInputs, path: Path = REPORT) -> Path:
    """Write the Markdown report and its plot next to it; returns the plot's path."""
    plot = path.with_name(PLOT_NAME)
    plot_accuracy(accuracy(inputs.scores), inputs.models, plot)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(inputs, PLOT_NAME), encoding="utf-8")
    return plot
