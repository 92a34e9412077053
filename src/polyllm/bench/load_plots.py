"""The load test's PNG plots, drawn from the summary rows with matplotlib's object API (no
pyplot, no global backend switch). Each plot is titled, its axes carry units."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from polyllm.bench.load_summary import ALL, SummaryRow

PLOTS = (
    "latency_vs_concurrency.png",
    "ttft_vs_concurrency.png",
    "tokens_per_s_per_model.png",
    "model_share.png",
)
DPI = 110


def _save(fig: Figure, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)


def _levels(rows: Sequence[SummaryRow]) -> list[int]:
    return sorted({r.concurrency for r in rows})


def _concurrency_axis(ax: Axes, levels: list[int]) -> None:
    ax.set_xticks(range(len(levels)), [str(c) for c in levels])
    ax.set_xlabel("concurrency (requests in flight)")
    ax.grid(True, alpha=0.3)


def _percentile_plot(
    rows: Sequence[SummaryRow], fields: tuple[str, str, str], title: str, unit: str, path: Path
) -> None:
    overall = sorted((r for r in rows if r.model == ALL), key=lambda r: r.concurrency)
    levels = [r.concurrency for r in overall]
    fig = Figure(figsize=(7, 4.2))
    ax = fig.subplots()
    for field, label in zip(fields, ("p50", "p95", "p99"), strict=True):
        values = [getattr(r, field) for r in overall]
        ax.plot(range(len(levels)), [float("nan") if v is None else v for v in values], "o-",
                label=label)  # fmt: skip
    _concurrency_axis(ax, levels)
    ax.set_ylabel(unit)
    ax.set_ylim(bottom=0)
    ax.set_title(title)
    ax.legend()
    _save(fig, path)


def _grouped_bars(ax: Axes, rows: Sequence[SummaryRow], field: str, ylabel: str) -> None:
    models = sorted({r.model for r in rows if r.model != ALL})
    levels = _levels(rows)
    width = 0.8 / max(len(levels), 1)
    by_key = {(r.model, r.concurrency): getattr(r, field) for r in rows}
    for i, level in enumerate(levels):
        values = [by_key.get((m, level)) or 0.0 for m in models]
        ax.bar([x + i * width for x in range(len(models))], values, width, label=f"c={level}")
    ax.set_xticks([x + 0.4 - width / 2 for x in range(len(models))], models)
    ax.set_xlabel("model")
    ax.set_ylabel(ylabel)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(title="concurrency", fontsize="small")


def _tokens_plot(rows: Sequence[SummaryRow], title: str, path: Path) -> None:
    fig = Figure(figsize=(11, 4.4))
    fig.suptitle(f"{title}: tokens/s per model")
    left, right = fig.subplots(1, 2)
    _grouped_bars(left, rows, "tokens_per_s_mean", "tokens/s per request (mean)")
    left.set_title("Decode rate of one request, per model")
    _grouped_bars(right, rows, "tokens_per_s_aggregate", "tokens/s (all requests together)")
    right.set_title("Aggregate throughput, per model")
    _save(fig, path)


def _share_plot(rows: Sequence[SummaryRow], title: str, path: Path) -> None:
    models = sorted({r.model for r in rows if r.model != ALL})
    levels = _levels(rows)
    share = {(r.model, r.concurrency): (r.share or 0.0) * 100 for r in rows if r.model != ALL}
    fig = Figure(figsize=(7, 4.2))
    ax = fig.subplots()
    bottom = [0.0] * len(levels)
    for model in models:
        values = [share.get((model, level), 0.0) for level in levels]
        ax.bar(range(len(levels)), values, 0.6, bottom=bottom, label=model)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    _concurrency_axis(ax, levels)
    ax.set_ylabel("share of requests (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{title}: model selected, per concurrency level")
    ax.legend(title="model", fontsize="small", loc="center left", bbox_to_anchor=(1.0, 0.5))
    _save(fig, path)


def write_plots(rows: Sequence[SummaryRow], out_dir: Path, title: str) -> list[Path]:
    """The four PNGs of :data:`PLOTS` in ``out_dir``; ``title`` (the workload and target) is put
    in front of each plot's own title."""
    paths = [out_dir / name for name in PLOTS]
    _percentile_plot(
        rows, ("latency_p50_s", "latency_p95_s", "latency_p99_s"),
        f"{title}: latency vs concurrency", "latency, request sent → done (s)", paths[0],
    )  # fmt: skip
    _percentile_plot(
        rows, ("ttft_p50_ms", "ttft_p95_ms", "ttft_p99_ms"),
        f"{title}: time to first token vs concurrency", "TTFT (ms)", paths[1],
    )  # fmt: skip
    _tokens_plot(rows, title, paths[2])
    _share_plot(rows, title, paths[3])
    return paths
