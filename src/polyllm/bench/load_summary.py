"""The load test's numbers: one record per request, the summary per concurrency level and model,
and the two CSV files. Pure (no network), so the math is tested on hand-computed inputs.

Percentiles are :func:`polyllm.bench.router.percentile`: linear interpolation between the closest
ranks, the value at position ``(n - 1) * q / 100`` of the sorted samples (numpy's default,
``statistics.quantiles(method="inclusive")``). They are taken over successful requests only;
failures count in ``errors`` and ``error_rate``.
"""

from __future__ import annotations

import csv
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from polyllm.bench.host_metrics import Utilisation
from polyllm.bench.router import percentile

ALL = "all"
"""The ``model`` of a level's overall summary row."""


@dataclass(frozen=True)
class RequestRecord:
    """One request as the client saw it. Times in seconds; ``status`` is the HTTP status (0 when
    no HTTP answer came: refused connection, timeout)."""

    concurrency: int
    index: int
    prompt_id: str
    category: str
    prompt_chars: int
    started_at: float
    """Unix time the request was sent."""
    start_s: float
    """Request sent, since the run began."""
    latency_s: float
    """Request sent → stream closed (or the failure)."""
    ttft_s: float | None
    """Request sent → first token event."""
    itl_ms: tuple[float, ...]
    """Gaps between consecutive token events (a token event is one text chunk)."""
    prompt_tokens: int | None
    completion_tokens: int | None
    tokens_per_s: float | None
    """Decode rate: completion tokens after the first ÷ (last token event - first token event)."""
    model: str | None
    backend: str | None
    cache_hit: bool | None
    status: int
    error: str | None

    @property
    def ok(self) -> bool:
        """Answered completely: HTTP 200 and a final ``done`` event."""
        return self.status == 200 and self.error is None


@dataclass(frozen=True)
class SummaryRow:
    """One concurrency level, one model (or :data:`ALL`). Percentiles over successful requests;
    None where there were none."""

    workload: str
    concurrency: int
    model: str
    requests: int
    errors: int
    error_rate: float
    share: float | None
    """This model's share of the level's requests that named a model (None on the ALL row)."""
    cache_hits: int
    latency_p50_s: float | None
    latency_p95_s: float | None
    latency_p99_s: float | None
    ttft_p50_ms: float | None
    ttft_p95_ms: float | None
    ttft_p99_ms: float | None
    itl_p50_ms: float | None
    itl_p95_ms: float | None
    tokens_per_s_mean: float | None
    """Mean of the requests' own decode rates."""
    tokens_per_s_aggregate: float | None
    """Completion tokens of successful requests ÷ the level's wall time."""
    completion_tokens: int
    wall_s: float
    """First request sent → last request ended, for the whole level."""
    cpu_util: float | None
    gpu_util: float | None


def level_windows(records: Iterable[RequestRecord]) -> dict[int, tuple[float, float]]:
    """Concurrency level → (first request sent, last request ended), Unix seconds."""
    windows: dict[int, tuple[float, float]] = {}
    for r in records:
        start, end = windows.get(r.concurrency, (r.started_at, r.started_at + r.latency_s))
        windows[r.concurrency] = (min(start, r.started_at), max(end, r.started_at + r.latency_s))
    return windows


def _percentiles(values: Sequence[float], scale: float = 1.0) -> list[float | None]:
    if not values:
        return [None, None, None]
    return [percentile(values, q) * scale for q in (50, 95, 99)]


def _row(
    workload: str, concurrency: int, model: str, group: Sequence[RequestRecord],
    share: float | None, wall_s: float, host: Utilisation,
) -> SummaryRow:  # fmt: skip
    ok = [r for r in group if r.ok]
    rates = [r.tokens_per_s for r in ok if r.tokens_per_s is not None]
    tokens = sum(r.completion_tokens or 0 for r in ok)
    latency = _percentiles([r.latency_s for r in ok])
    ttft = _percentiles([r.ttft_s for r in ok if r.ttft_s is not None], 1000)
    itl = _percentiles([gap for r in ok for gap in r.itl_ms])
    return SummaryRow(
        workload=workload, concurrency=concurrency, model=model, requests=len(group),
        errors=len(group) - len(ok), error_rate=(len(group) - len(ok)) / len(group),
        share=share, cache_hits=sum(1 for r in ok if r.cache_hit),
        latency_p50_s=latency[0], latency_p95_s=latency[1], latency_p99_s=latency[2],
        ttft_p50_ms=ttft[0], ttft_p95_ms=ttft[1], ttft_p99_ms=ttft[2],
        itl_p50_ms=itl[0], itl_p95_ms=itl[1],
        tokens_per_s_mean=statistics.fmean(rates) if rates else None,
        tokens_per_s_aggregate=tokens / wall_s if ok and wall_s > 0 else None,
        completion_tokens=tokens, wall_s=wall_s, cpu_util=host.cpu, gpu_util=host.gpu,
    )  # fmt: skip


def summarise(
    records: Sequence[RequestRecord], workload: str, host: Mapping[int, Utilisation]
) -> list[SummaryRow]:
    """Per concurrency level (ascending): the :data:`ALL` row, then one row per model (sorted).
    ``host`` gives each level's utilisation (a level missing from it has none)."""
    rows = []
    for concurrency, (start, end) in sorted(level_windows(records).items()):
        level = [r for r in records if r.concurrency == concurrency]
        usage = host.get(concurrency, Utilisation(None, None))
        rows.append(_row(workload, concurrency, ALL, level, None, end - start, usage))
        named = [r for r in level if r.model]
        for model in sorted({r.model for r in named if r.model}):
            group = [r for r in named if r.model == model]
            share = len(group) / len(named)
            rows.append(_row(workload, concurrency, model, group, share, end - start, usage))
    return rows


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, float):
        return round(value, 4)
    return value


def _write(path: Path, header: list[str], rows: Iterable[dict[str, object]]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        writer.writerows({k: _cell(v) for k, v in row.items()} for row in rows)


REQUEST_COLUMNS = [f.name for f in fields(RequestRecord)]
SUMMARY_COLUMNS = [f.name for f in fields(SummaryRow)]


def _request_row(record: RequestRecord) -> dict[str, object]:
    row = asdict(record)
    row["itl_ms"] = ";".join(f"{gap:.2f}" for gap in record.itl_ms)
    return row


def write_requests_csv(records: Iterable[RequestRecord], path: Path) -> None:
    """``requests.csv``: every measured request; ``itl_ms`` as ``;``-separated milliseconds."""
    _write(path, REQUEST_COLUMNS, map(_request_row, records))


def write_summary_csv(rows: Iterable[SummaryRow], path: Path) -> None:
    """``summary.csv``: the rows of :func:`summarise`; empty cells where there is no value."""
    as_dict: Callable[[SummaryRow], dict[str, object]] = asdict
    _write(path, SUMMARY_COLUMNS, map(as_dict, rows))
