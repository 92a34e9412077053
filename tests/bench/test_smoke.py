"""The smoke report (no stack needed: rows are made up, the format is what is checked)."""

from __future__ import annotations

import csv
from pathlib import Path

from polyllm.bench.smoke import SmokeRow, targets, write_report
from polyllm.stack.config import load_stack_config

REPO = Path(__file__).resolve().parents[2]


def test_targets_are_every_model_then_the_router() -> None:
    config = load_stack_config(REPO / "polyllm.yaml")
    urls = targets(config)
    assert list(urls) == [*config.models, "router"]
    assert urls["m3"] == f"http://{config.host}:{config.models['m3'].port}/generate"
    assert urls["router"].endswith(f":{config.router.port}/generate")


def test_report_has_a_row_per_request_and_escapes_pipes(tmp_path: Path) -> None:
    rows = [
        SmokeRow("m1", "m1", 1, 200, "a | b", 0.05, 0.5, 100.0, 40, None),
        SmokeRow("router", "-", 2, 503, "", None, 0.01, None, 0, "no backend"),
    ]
    report = write_report(rows, tmp_path)
    text = report.read_text()
    assert "| m1 | m1 | 1 | 200 | 0.050 | 0.500 | 100.0 | a \\| b |" in text
    assert "| router | - | 2 | 503 | - | 0.010 | - | no backend |" in text
    with (tmp_path / "smoke.csv").open() as f:
        assert [r["target"] for r in csv.DictReader(f)] == ["m1", "router"]
