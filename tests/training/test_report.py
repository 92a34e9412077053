"""The router-data report, and the score → label → report commands end to end on tiny files."""

from __future__ import annotations

import gzip
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from polyllm.training.labels import PromptOutcome
from polyllm.training.report import PLOT_NAME, ReportInputs, render, write_report
from polyllm.training.scores import ScoreRecord
from polyllm.training.train_cli import train_app

MODELS = ["m1", "m2", "m3", "m4"]


def _inputs() -> ReportInputs:
    scores = [
        ScoreRecord("p1", m, "math", "numeric", v, bool(v), None, "")
        for m, v in zip(MODELS, [0.0, 1.0, 1.0, 1.0], strict=True)
    ]
    scores.append(ScoreRecord("p2", "m1", "chat", "judge", None, None, None, "judge"))
    latencies = {("p1", m): t for m, t in zip(MODELS, [1.0, 2.0, 3.0, 4.0], strict=True)}
    outcome = PromptOutcome(
        "p1",
        "math",
        {s.model: s.score or 0.0 for s in scores[:4]},
        dict(zip(MODELS, [1, 2, 3, 4], strict=True)),
    )
    return ReportInputs(scores, latencies, [outcome], MODELS, [0.0, 0.3], 100, 5)


def test_report_says_numbers_are_partial_and_has_every_section() -> None:
    text = render(_inputs())
    assert "Partial numbers" in text
    assert "**N = 1** of 100 prompts" in text
    assert "1 `judge` answers with score `None`" in text
    assert "| m2 | 1.000 (n=1) | 1.000 (n=1) |" in text
    assert "| m1 | 1 | 1.00 |" in text  # answers and mean latency
    assert "| 0 | 0 | 1 | 0 | 0 |" in text  # λ = 0: m2 is the cheapest right answer
    assert "| 0 | oracle λ=0 | 1.000 | 2.00 |" in text
    assert "| 0 | always-m1 | 0.000 | 1.00 |" in text
    assert "0 of the N prompts have no model scoring above 0" in text
    assert f"]({PLOT_NAME})" in text


def test_report_says_complete_when_every_prompt_is_labelled() -> None:
    text = render(replace(_inputs(), dataset_size=1))
    assert "**Complete.**" in text
    assert "Partial numbers" not in text


def test_report_counts_answers_without_an_answer_and_answers_cut_by_the_budget() -> None:
    inputs = _inputs()
    missed = ScoreRecord("p3", "m2", "math", "numeric", 0.0, False, None, "no number found")
    text = render(
        replace(inputs, scores=[*inputs.scores, missed], at_budget=frozenset({("p1", "m4")}))
    )
    assert "| model | numeric |" in text  # judge extracts nothing: no column
    assert "| m1 | 0% (0) |" in text
    assert "| m2 | 50% (1) |" in text
    assert "| model | math | chat |" in text
    assert "| m4 | 100% | - |" in text
    assert "| m1 | 0% | 0% |" in text  # p2 is m1's only chat answer


def test_write_report_writes_the_plot_next_to_it(tmp_path: Path) -> None:
    plot = write_report(_inputs(), tmp_path / "docs" / "router-data.md")
    assert plot == tmp_path / "docs" / PLOT_NAME
    assert plot.read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "docs" / "router-data.md").exists()


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_score_label_report_commands(tmp_path: Path) -> None:
    base = {"source": "s", "prompt": "q", "category": "math", "scorer": "numeric"}
    prompts = _jsonl(tmp_path / "train.jsonl", [{**base, "id": "p1", "reference": "3"}])
    dataset = tmp_path / "missing.jsonl"
    answers = _jsonl(
        tmp_path / "answers.jsonl",
        [
            {"id": "p1", "model": m, "response": r, "latency_s": t, "error": None}
            for m, r, t in zip(MODELS, ["2", "3", "3", "3"], [1.0, 2.0, 3.0, 4.0], strict=True)
        ],
    )
    collection = tmp_path / "collection.json"
    collection.write_text(json.dumps({"inherits": {"m5": "m4"}}))
    scores, labels = tmp_path / "scores.jsonl.gz", tmp_path / "labels.jsonl.gz"
    report = tmp_path / "docs" / "router-data.md"
    common = ["--answers", str(answers), "--scores", str(scores)]
    runner = CliRunner()
    result = runner.invoke(
        train_app,
        ["score", "--answers", str(answers), "--output", str(scores), "--dataset", str(dataset),
         "--prompts", str(prompts), "--workers", "1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        train_app,
        ["label", *common, "--output", str(labels), "--collection", str(collection),
         "--lambda", "0", "--lambda", "0.5"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    with gzip.open(labels, "rt") as f:
        rows = [json.loads(line) for line in f]
    assert rows[0]["best"] == {"0.0": "m2", "0.5": "m2"}
    result = runner.invoke(
        train_app,
        ["report", *common, "--dataset", str(dataset), "--collection", str(collection),
         "--output", str(report)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "**N = 1**" in report.read_text()
