"""``polyllm bench load-results DIR``: the Markdown results table of a set of load-test runs
(``DIR/<run>/summary.csv``, one folder per run), with each model's memory-bandwidth decode bound
(``DIR/membw.csv`` from ``polyllm bench membw``) next to its measured tokens/s."""

from __future__ import annotations

import csv
from pathlib import Path

from polyllm.bench.load_summary import ALL
from polyllm.bench.membw import decode_bound_tok_s, read_bandwidth
from polyllm.models.catalog import CATALOG

MISSING = "-"


def model_bytes(model: str, models_dir: Path) -> int | None:
    """Bytes one decoded token reads: the model's file (on disk, else the catalog's size)."""
    path = models_dir / f"{model}.gguf"
    if path.is_file():
        return path.stat().st_size
    spec = CATALOG.get(model)
    return spec.size_bytes if spec else None


def read_runs(results_dir: Path) -> list[tuple[str, dict[str, str]]]:
    """(run folder name, summary row) of every per-model row of every run, in folder order."""
    runs = sorted(results_dir.glob("*/summary.csv"))
    if not runs:
        raise FileNotFoundError(f"no */summary.csv under {results_dir}: run the load tests first")
    out = []
    for path in runs:
        with path.open(newline="") as f:
            out += [(path.parent.name, row) for row in csv.DictReader(f) if row["model"] != ALL]
    return out


def _num(value: str, digits: int, scale: float = 1.0) -> str:
    return f"{float(value) * scale:.{digits}f}" if value else MISSING


def markdown_results(results_dir: Path, models_dir: Path) -> str:
    """The table: one line per run, concurrency level and model that answered."""
    bandwidth = read_bandwidth(results_dir)
    head = (
        "| run | workload | model | concurrency | requests | errors | latency p50 / p95 / p99 (s) "
        "| TTFT p50 / p95 (ms) | tok/s per request | tok/s aggregate | model MB | bound tok/s |\n"
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    lines = []
    for run, r in read_runs(results_dir):
        size = model_bytes(r["model"], models_dir)
        bound = f"{decode_bound_tok_s(size, bandwidth):.0f}" if size and bandwidth else MISSING
        latency = " / ".join(_num(r[f"latency_p{q}_s"], 2) for q in (50, 95, 99))
        ttft = " / ".join(_num(r[f"ttft_p{q}_ms"], 0) for q in (50, 95))
        lines.append(
            f"| {run} | {r['workload']} | {r['model']} | {r['concurrency']} | {r['requests']} | "
            f"{r['errors']} | {latency} | {ttft} | {_num(r['tokens_per_s_mean'], 1)} | "
            f"{_num(r['tokens_per_s_aggregate'], 1)} | "
            f"{f'{size / 1e6:.0f}' if size else MISSING} | {bound} |"
        )
    note = (
        f"Memory bandwidth: {bandwidth:.1f} GB/s (best single-thread copy, `membw.csv`); "
        "bound tok/s = bandwidth ÷ model file bytes (every weight read once per token)."
        if bandwidth
        else f"No `membw.csv` in {results_dir}: run `polyllm bench membw --out {results_dir}`."
    )
    return head + "\n".join(lines) + "\n\n" + note + "\n"
