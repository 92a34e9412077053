"""The pure parts of ``polyllm bench router``: percentiles, pairing, the table and report."""

from __future__ import annotations

import csv
import statistics
from pathlib import Path

import pytest

from polyllm.bench.router import (
    RouterBenchConfig,
    Row,
    RunInfo,
    Sample,
    markdown_table,
    paired_differences,
    percentile,
    render_markdown,
    summarise,
    write_samples_csv,
)


def _fake_samples(pairs: int = 4) -> list[Sample]:
    samples = []
    for i in range(pairs):
        samples.append(Sample("direct", i, i % 2, 100.0 + i, 150.0 + i))
        samples.append(Sample("router", i, 1 - i % 2, 102.0 + 2 * i, 153.0 + i))
    samples += [Sample("cache_hit", i, 0, 1.0, 2.0 + i) for i in range(5)]
    samples += [Sample("rate_limit", i, 0, None, 0.1 * (i + 1)) for i in range(10)]
    return samples


def test_percentile_matches_statistics_inclusive() -> None:
    values = [5.0, 1.0, 9.0, 3.0, 7.0, 2.0, 8.0, 4.0, 6.0, 10.0, 40.0]
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    for q in (1, 25, 50, 90, 99):
        assert percentile(values, q) == pytest.approx(cuts[q - 1])
    assert percentile(values, 50) == statistics.median(values)


def test_percentile_edges() -> None:
    assert percentile([3.0], 99) == 3.0
    assert percentile([1.0, 2.0], 0) == 1.0
    assert percentile([1.0, 2.0], 100) == 2.0
    assert percentile([0.0, 10.0], 99) == pytest.approx(9.9)
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match=r"0\.\.100"):
        percentile([1.0], 101)


def test_paired_differences_pair_by_index_whatever_the_order() -> None:
    samples = list(reversed(_fake_samples()))
    assert paired_differences(samples, "ttft_ms") == [2.0, 3.0, 4.0, 5.0]
    assert paired_differences(samples, "total_ms") == [3.0, 3.0, 3.0, 3.0]


def test_paired_differences_refuses_unpaired_or_missing() -> None:
    samples = [*_fake_samples(), Sample("router", 99, 0, 1.0, 1.0)]
    with pytest.raises(ValueError, match="unpaired"):
        paired_differences(samples, "ttft_ms")
    holed = [Sample("direct", 0, 0, None, 1.0), Sample("router", 0, 1, 2.0, 3.0)]
    with pytest.raises(ValueError, match="no ttft_ms"):
        paired_differences(holed, "ttft_ms")


def test_summarise_rows_and_targets() -> None:
    rows = {r.measurement: r for r in summarise(_fake_samples())}
    overhead = rows["router overhead, TTFT (router - direct)"]
    assert (overhead.n, overhead.p50_ms) == (4, 3.5)
    assert overhead.target == "p50 ≤ 3 ms"
    assert overhead.met is False
    total = rows["router overhead, total latency"]
    assert (total.p50_ms, total.p99_ms, total.met) == (3.0, 3.0, None)
    cache = rows["cache hit, end to end (sent → done)"]
    assert (cache.n, cache.p50_ms, cache.met) == (5, 4.0, True)
    rate = rows["rate-limit decision (TokenBucket.take)"]
    assert rate.n == 10
    assert rate.p50_ms == pytest.approx(0.55)
    assert rows["TTFT, direct to the model service"].p50_ms == 101.5


def test_markdown_table_renders_every_row() -> None:
    rows = [
        Row("overhead", 40, 1.234, 5.678, "p50 ≤ 3 ms", True),
        Row("cache", 40, 6.0, 9.0, "p50 ≤ 5 ms", False),
        Row("bucket", 2000, 0.1, 0.25),
    ]
    lines = markdown_table(rows).splitlines()
    assert lines[0] == "| measurement | N | p50 (ms) | p99 (ms) | target | met |"
    assert lines[2] == "| overhead | 40 | 1.23 | 5.68 | p50 ≤ 3 ms | yes |"
    assert lines[3] == "| cache | 40 | 6.00 | 9.00 | p50 ≤ 5 ms | **no** |"
    assert lines[4] == "| bucket | 2000 | 0.10 | 0.25 |  |  |"


def test_render_markdown_states_method_and_verdict() -> None:
    info = RunInfo(
        "2025-01-01", 2, RouterBenchConfig(requests=4, rate_calls=10), {"polyllm": "0.1.0"}
    )
    text = render_markdown(summarise(_fake_samples()), info)
    assert "2 cores" in text
    assert "polyllm 0.1.0" in text
    assert 'method="inclusive"' in text
    assert "router overhead, TTFT (router - direct): NOT met" in text
    assert "cache hit, end to end (sent → done): met" in text
    assert "| rate-limit decision (TokenBucket.take) | 10 |" in text


def test_samples_csv_has_every_sample(tmp_path: Path) -> None:
    samples = _fake_samples()
    path = tmp_path / "samples.csv"
    write_samples_csv(samples, path)
    with path.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(samples)
    assert rows[0] == {
        "kind": "direct", "index": "0", "order": "0", "ttft_ms": "100.0", "total_ms": "150.0"
    }  # fmt: skip
    assert rows[-1]["ttft_ms"] == ""
