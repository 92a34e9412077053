"""`polyllm top`: rendering from fake query results, the HTTP reading, and one real Prometheus."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from rich.console import Console

from polyllm.monitoring.top import MISSING, QUERIES, PrometheusUnavailable, fetch, render
from tests.monitoring.queries import RULES, load_rule_groups
from tests.monitoring.test_dashboard_live import binary, started
from tests.redis_server import free_port

SNAPSHOT: dict[str, Any] = {
    "req_per_s": [({"model": "m1"}, 1.5), ({"model": "m2"}, 0.25)],
    "p95_latency_s": [({"model": "m1", "quantile": "0.95"}, 0.42), ({"model": "m2"}, math.nan)],
    "tokens_per_s": [({"model": "m1"}, 31.0)],
    "selection_share": [({"model": "m1"}, 0.8), ({"model": "m2"}, 0.2)],
    "backend_up": [({"model": "m1"}, 1.0), ({"model": "m2"}, 0.0), ({"model": "m3"}, 1.0)],
    "cache_hit_ratio": [({}, 0.5)],
    "rate_limited_per_s": [({}, 0.1)],
    "fallbacks_per_s": [],
    "cpu_utilisation": [({}, 0.375)],
}


def text(snapshot: dict[str, Any]) -> list[str]:
    console = Console(width=160, record=True, color_system=None)
    console.print(render(snapshot))
    return console.export_text().splitlines()


def cells(line: str) -> list[str]:
    return [c.strip() for c in re.split("[│┃]", line.strip("│┃ "))]


def row(lines: list[str], first: str) -> list[str]:
    """The cells of the table row (or header) whose first cell is ``first``."""
    for line in lines:
        if cells(line)[0] == first:
            return cells(line)
            return cells
    raise AssertionError(f"no row {first!r} in:\n" + "\n".join(lines))


def test_render_one_row_per_model_with_formatted_values() -> None:
    lines = text(SNAPSHOT)
    assert row(lines, "model") == ["model", "req/s", "p95 latency", "tokens/s", "selected", "up"]
    assert row(lines, "m1") == ["m1", "1.50", "420 ms", "31.00", "80.0 %", "up"]
    # NaN (a quantile without traffic) and absent series both show as the dash.
    assert row(lines, "m2") == ["m2", "0.25", MISSING, MISSING, "20.0 %", "down"]
    assert row(lines, "m3") == ["m3", MISSING, MISSING, MISSING, MISSING, "up"]


def test_render_overall_numbers() -> None:
    lines = text(SNAPSHOT)
    header = row(lines, "cache hit ratio")
    assert header == ["cache hit ratio", "rate-limited/s", "fallbacks/s", "CPU", "backends up"]
    values = lines[lines.index(next(x for x in lines if "cache hit ratio" in x)) + 2]
    assert cells(values) == ["50.0 %", "0.10", MISSING, "37.5 %", "2/3"]


def test_render_without_any_data_shows_dashes() -> None:
    lines = text({})
    assert row(lines, MISSING) == [MISSING] * 6
    values = lines[lines.index(next(x for x in lines if "cache hit ratio" in x)) + 2]
    assert cells(values) == [MISSING] * 5


def test_latency_of_a_second_or_more_is_shown_in_seconds() -> None:
    assert row(text({"p95_latency_s": [({"model": "m5"}, 2.345)]}), "m5")[2] == "2.35 s"


def test_every_recorded_name_queried_is_a_rule_of_the_project() -> None:
    recorded = {rule["record"] for group in load_rule_groups() for rule in group["rules"]}
    names = {m for expr in QUERIES.values() for m in re.findall(r"[\w]+:[\w]+:[\w]+", expr)}
    assert len(names) == 7
    assert names <= recorded


def prometheus_api(results: dict[str, list[dict[str, Any]]]) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v1/query"
        expr = request.url.params["query"]
        data = {"resultType": "vector", "result": results.get(expr, [])}
        return httpx.Response(200, json={"status": "success", "data": data})

    return httpx.MockTransport(answer)


def test_fetch_reads_instant_vectors_by_query_key() -> None:
    sample = {"metric": {"model": "m1"}, "value": [1700000000.0, "NaN"]}
    transport = prometheus_api({QUERIES["p95_latency_s"]: [sample]})
    with httpx.Client(transport=transport) as client:
        snapshot = fetch(client, "http://prom")
    assert sorted(snapshot) == sorted(QUERIES)
    [(labels, value)] = snapshot["p95_latency_s"]
    assert labels == {"model": "m1"} and math.isnan(value)
    assert snapshot["req_per_s"] == []


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html>not prometheus</html>"),
        httpx.Response(400, json={"status": "error", "error": "parse error"}),
    ],
)
def test_fetch_reports_a_server_that_is_not_answering_queries(response: httpx.Response) -> None:
    with (
        httpx.Client(transport=httpx.MockTransport(lambda _: response)) as client,
        pytest.raises(PrometheusUnavailable),
    ):
        fetch(client, "http://prom")


def top_once(url: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "polyllm", "top", "--once", "--prometheus-url", url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.integration
def test_top_once_against_a_real_prometheus_and_a_dead_one(tmp_path: Path) -> None:
    """A real ``prometheus`` with the project's rules and nothing to scrape: every query parses,
    the frame is printed; a URL where nothing listens: a one-line error, exit 1."""
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({"rule_files": [str(RULES)], "scrape_configs": []}))
    url = f"http://127.0.0.1:{port}"
    cmd = [
        binary("prometheus"),
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with started(tmp_path, "prometheus", cmd, url, "/-/ready"):
        done = top_once(url)
    assert done.returncode == 0, done.stderr
    assert "polyllm top" in done.stdout and "p95 latency" in done.stdout, done.stdout
    assert "cache hit ratio" in done.stdout

    dead = top_once(f"http://127.0.0.1:{free_port()}")
    assert dead.returncode == 1
    assert "cannot reach Prometheus" in dead.stderr
    assert "Traceback" not in dead.stderr + dead.stdout
