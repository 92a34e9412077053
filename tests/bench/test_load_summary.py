"""The load test's summary math on hand-computed inputs, and the files it writes."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import pytest

from polyllm.bench.host_metrics import Utilisation
from polyllm.bench.load_plots import PLOTS, write_plots
from polyllm.bench.load_summary import (
    ALL,
    REQUEST_COLUMNS,
    SUMMARY_COLUMNS,
    RequestRecord,
    SummaryRow,
    level_windows,
    summarise,
    write_requests_csv,
    write_summary_csv,
)


def record(
    concurrency: int, index: int, *, started_at: float, latency_s: float, model: str | None,
    status: int = 200, ttft_s: float | None = None, itl_ms: tuple[float, ...] = (),
    completion_tokens: int | None = None, tokens_per_s: float | None = None,
    cache_hit: bool | None = False, error: str | None = None,
) -> RequestRecord:  # fmt: skip
    return RequestRecord(
        concurrency=concurrency, index=index, prompt_id=f"p{index}", category="chat",
        prompt_chars=40, started_at=started_at, start_s=started_at - 1000.0,
        latency_s=latency_s, ttft_s=ttft_s, itl_ms=itl_ms, prompt_tokens=10,
        completion_tokens=completion_tokens, tokens_per_s=tokens_per_s, model=model,
        backend="cpu" if model else None, cache_hit=cache_hit, status=status, error=error,
    )  # fmt: skip


# Level 2: three answers (two by m1, one by m3) and one 503 that never named a model.
# Window: first sent at 1000.0, last ended at 1001.0 + 4.0 = 1005.0, so 5.0 s of wall time.
LEVEL_2 = [
    record(2, 0, started_at=1000.0, latency_s=1.0, model="m1", ttft_s=0.1, itl_ms=(10.0, 20.0),
           completion_tokens=3, tokens_per_s=100.0),
    record(2, 1, started_at=1000.5, latency_s=2.0, model="m1", ttft_s=0.2, itl_ms=(30.0,),
           completion_tokens=2, tokens_per_s=50.0, cache_hit=True),
    record(2, 2, started_at=1001.0, latency_s=4.0, model="m3", ttft_s=0.4,
           completion_tokens=1),
    record(2, 3, started_at=1001.0, latency_s=0.5, model=None, status=503,
           error="no backend", cache_hit=None),
]  # fmt: skip


def rows_by_model(rows: list[SummaryRow]) -> dict[str, SummaryRow]:
    return {r.model: r for r in rows}


def test_overall_row_of_a_level_by_hand() -> None:
    rows = summarise(LEVEL_2, "short", {2: Utilisation(0.5, None)})
    assert [r.model for r in rows] == [ALL, "m1", "m3"]
    overall = rows[0]
    assert (overall.workload, overall.concurrency) == ("short", 2)
    assert (overall.requests, overall.errors, overall.error_rate) == (4, 1, 0.25)
    assert overall.share is None
    assert overall.cache_hits == 1
    # latencies of the successes, sorted [1, 2, 4]: p95 at position 2 * 0.95 = 1.9 → 2 + 0.9 * 2
    assert overall.latency_p50_s == pytest.approx(2.0)
    assert overall.latency_p95_s == pytest.approx(3.8)
    assert overall.latency_p99_s == pytest.approx(3.96)
    assert overall.ttft_p50_ms == pytest.approx(200.0)
    assert overall.ttft_p95_ms == pytest.approx(380.0)
    assert overall.ttft_p99_ms == pytest.approx(396.0)
    # every gap of every success: [10, 20, 30]
    assert overall.itl_p50_ms == pytest.approx(20.0)
    assert overall.itl_p95_ms == pytest.approx(29.0)
    assert overall.tokens_per_s_mean == pytest.approx(75.0)  # mean of 100 and 50; m3 has none
    assert overall.completion_tokens == 6
    assert overall.wall_s == pytest.approx(5.0)
    assert overall.tokens_per_s_aggregate == pytest.approx(6 / 5.0)
    assert (overall.cpu_util, overall.gpu_util) == (0.5, None)


def test_per_model_rows_and_selection_share_by_hand() -> None:
    rows = rows_by_model(summarise(LEVEL_2, "short", {}))
    m1, m3 = rows["m1"], rows["m3"]
    # the 503 named no model: shares are over the three requests that did
    assert m1.share == pytest.approx(2 / 3)
    assert m3.share == pytest.approx(1 / 3)
    assert (m1.requests, m1.errors) == (2, 0)
    assert m1.latency_p50_s == pytest.approx(1.5)
    assert m1.latency_p95_s == pytest.approx(1.95)
    assert m1.ttft_p50_ms == pytest.approx(150.0)
    # per model, aggregate throughput is still over the whole level's wall time
    assert m1.tokens_per_s_aggregate == pytest.approx(5 / 5.0)
    assert m3.tokens_per_s_aggregate == pytest.approx(1 / 5.0)
    assert m3.tokens_per_s_mean is None
    assert m3.cpu_util is None


def test_a_level_where_everything_failed_has_no_percentiles() -> None:
    failed = [
        record(4, i, started_at=10.0 + i, latency_s=1.0, model=None, status=0, error="refused")
        for i in range(3)
    ]
    (overall,) = summarise(failed, "medium", {})
    assert (overall.requests, overall.errors, overall.error_rate) == (3, 3, 1.0)
    assert overall.latency_p50_s is None and overall.ttft_p99_ms is None
    assert overall.tokens_per_s_aggregate is None
    assert overall.wall_s == pytest.approx(3.0)


def test_levels_come_in_ascending_order_with_their_own_windows() -> None:
    level_1 = [replace(r, concurrency=1, started_at=r.started_at - 100) for r in LEVEL_2[:2]]
    records = [*LEVEL_2, *level_1]
    assert level_windows(records) == {1: (900.0, 902.5), 2: (1000.0, 1005.0)}
    rows = summarise(records, "short", {})
    assert [(r.concurrency, r.model) for r in rows] == [
        (1, ALL), (1, "m1"), (2, ALL), (2, "m1"), (2, "m3"),
    ]  # fmt: skip
    assert rows[0].wall_s == pytest.approx(2.5)


def test_csv_files_have_every_column_and_blank_cells_for_none(tmp_path: Path) -> None:
    write_requests_csv(LEVEL_2, tmp_path / "requests.csv")
    write_summary_csv(summarise(LEVEL_2, "short", {}), tmp_path / "summary.csv")
    with (tmp_path / "requests.csv").open(newline="") as f:
        reader = csv.DictReader(f)
        requests = list(reader)
    assert reader.fieldnames == REQUEST_COLUMNS
    assert requests[0]["itl_ms"] == "10.00;20.00"
    assert (requests[3]["status"], requests[3]["model"], requests[3]["ttft_s"]) == ("503", "", "")
    with (tmp_path / "summary.csv").open(newline="") as f:
        reader = csv.DictReader(f)
        summary = list(reader)
    assert reader.fieldnames == SUMMARY_COLUMNS
    assert [r["model"] for r in summary] == [ALL, "m1", "m3"]
    assert summary[0]["share"] == "" and summary[0]["latency_p95_s"] == "3.8"


def test_plots_are_written_as_png(tmp_path: Path) -> None:
    level_1 = [replace(r, concurrency=1) for r in LEVEL_2]
    paths = write_plots(summarise([*LEVEL_2, *level_1], "short", {}), tmp_path, "short, router")
    assert [p.name for p in paths] == list(PLOTS)
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
