"""``polyllm data build`` end to end through Typer, on a tiny prompt file."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from polyllm.training.cli import data_app
from polyllm.training.dataset import load_dataset

from .test_dataset import synthetic_prompts, write_jsonl


def test_build_prints_counts_and_writes_files(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "train.jsonl", synthetic_prompts())
    args = [
        "build",
        "--source",
        str(tmp_path / "train.jsonl"),
        "--output",
        str(tmp_path / "dataset.jsonl"),
        "--splits",
        str(tmp_path / "splits.json"),
    ]
    result = CliRunner().invoke(data_app, args)
    assert result.exit_code == 0, result.output
    assert "instruction_following" in result.output and "validation" in result.output
    assert "duplicates dropped:" in result.output and "near 1)" in result.output
    assert "variations:" in result.output
    assert load_dataset(tmp_path / "dataset.jsonl")
    assert (tmp_path / "splits.json").is_file()


def test_missing_source_and_bad_settings_exit_nonzero(tmp_path: Path) -> None:
    missing = CliRunner().invoke(data_app, ["build", "--source", str(tmp_path / "nope.jsonl")])
    assert missing.exit_code == 1
    assert "no such file" in missing.output
    bad = CliRunner().invoke(data_app, ["build", "--near-duplicate", "0.5", "--related", "0.7"])
    assert bad.exit_code == 2
