"""``polyllm bench load`` end to end: the real m1 model service, a real redis-server and the
router, all on free ports; the load test runs as the user runs it (a separate process)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from polyllm.bench.load_plots import PLOTS
from polyllm.bench.load_summary import ALL, REQUEST_COLUMNS, SUMMARY_COLUMNS
from tests.integration.conftest import Service, free_port, running_m1
from tests.redis_server import RedisServer, redis_server_binary
from tests.router.processes import Proc, registry_entry, router
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
OUTPUTS = ["requests.csv", "summary.csv", "run.json", *PLOTS]


@pytest.fixture(scope="module")
def m1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with running_m1(tmp_path_factory.mktemp("m1"), "--n-ctx", "1024", "--n-threads", "2") as m1:
        yield m1


@pytest.fixture(scope="module")
def routed(m1: Service, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """The router over m1 and its own Redis, once its health poll has seen m1 up."""
    binary = redis_server_binary()
    if binary is None:
        pytest.fail("redis-server is not on PATH: run scripts/bootstrap.sh (make test does it)")
    tmp = tmp_path_factory.mktemp("router")
    with (
        RedisServer(tmp / "redis", binary=binary) as redis,
        router(tmp, {"m1": registry_entry(m1.url, 1)}, redis.url) as proc,
    ):
        wait_until(
            lambda: httpx.get(f"{proc.url}/health", timeout=2).status_code == 200,
            f"router never healthy:\n{proc.log()}",
        )
        yield proc


def load(entry: list[str], out: Path, target: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the load test (``entry``: the command before the options) with the shipped prompt
    sample (no dataset) and a Prometheus URL where nothing listens."""
    cmd = [
        *entry, "--target", target, "--workload", "short", "--max-tokens", "8", "--warmup", "1",
        "--out", str(out), "--prometheus", f"http://127.0.0.1:{free_port()}", *args,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("PROMETHEUS_URL", "POLYLLM_API_KEY")}
    env["POLYLLM_DATASET"] = str(out / "no-dataset.jsonl")
    return subprocess.run(
        cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    return list(reader.fieldnames or []), rows


def test_router_run_writes_every_file_with_its_columns(routed: Proc, tmp_path: Path) -> None:
    script = [sys.executable, str(REPO / "benchmarks" / "load_test.py")]
    done = load(script, tmp_path, routed.url, "--concurrency", "2", "--requests", "6")
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(OUTPUTS)
    for plot in PLOTS:
        assert (tmp_path / plot).read_bytes()[:4] == b"\x89PNG"

    columns, requests = read_csv(tmp_path / "requests.csv")
    assert columns == REQUEST_COLUMNS
    assert sorted(int(r["index"]) for r in requests) == list(range(6))
    for r in requests:
        assert (r["status"], r["error"], r["concurrency"]) == ("200", "", "2")
        assert (r["model"], r["backend"], r["cache_hit"]) == ("m1", "cpu", "False")
        assert r["completion_tokens"] == "8"
        assert 0 < float(r["ttft_s"]) < float(r["latency_s"])
        assert r["itl_ms"] and all(float(gap) >= 0 for gap in r["itl_ms"].split(";"))
        assert r["prompt_id"].startswith("sample/short-")
    # two in flight at a time: some requests overlapped
    spans = [(float(r["start_s"]), float(r["start_s"]) + float(r["latency_s"])) for r in requests]
    assert any(a[0] < b[1] and b[0] < a[1] for a in spans for b in spans if a != b)

    columns, summary = read_csv(tmp_path / "summary.csv")
    assert columns == SUMMARY_COLUMNS
    assert [(r["concurrency"], r["model"]) for r in summary] == [("2", ALL), ("2", "m1")]
    overall, m1_row = summary
    assert (overall["requests"], overall["errors"], overall["error_rate"]) == ("6", "0", "0.0")
    assert m1_row["share"] == "1.0"
    assert float(overall["latency_p50_s"]) <= float(overall["latency_p99_s"])
    assert overall["completion_tokens"] == "48"
    assert overall["cpu_util"] == ""  # no Prometheus: absent, not a failure

    info = json.loads((tmp_path / "run.json").read_text())
    assert info["target"]["kind"] == "router"
    assert info["host_utilisation"].startswith("absent: cannot reach Prometheus")
    assert "sample_prompts.jsonl" in info["prompts"]["source"]
    assert "host utilisation not recorded" in done.stderr


def test_model_service_run_through_the_cli(m1: Service, tmp_path: Path) -> None:
    cli = [sys.executable, "-m", "polyllm", "bench", "load"]
    done = load(cli, tmp_path, m1.url, "--concurrency", "1,2", "--requests", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    _, requests = read_csv(tmp_path / "requests.csv")
    assert [(r["concurrency"], r["model"], r["backend"], r["cache_hit"]) for r in requests] == [
        ("1", "m1", "cpu", ""), ("1", "m1", "cpu", ""), ("2", "m1", "cpu", ""),
        ("2", "m1", "cpu", ""),
    ]  # fmt: skip
    _, summary = read_csv(tmp_path / "summary.csv")
    assert [(r["concurrency"], r["model"]) for r in summary] == [
        ("1", ALL), ("1", "m1"), ("2", ALL), ("2", "m1"),
    ]  # fmt: skip
    assert json.loads((tmp_path / "run.json").read_text())["target"]["kind"] == "model"


def test_router_only_options_against_a_model_service_stop_before_any_load(
    m1: Service, tmp_path: Path
) -> None:
    before = m1.metric("polyllm_model_requests_total", model="m1", status="ok")
    cli = [sys.executable, "-m", "polyllm", "bench", "load"]
    done = load(cli, tmp_path, m1.url, "--cache", "on")
    assert done.returncode == 2
    assert "no answer cache" in done.stderr
    assert m1.metric("polyllm_model_requests_total", model="m1", status="ok") == before
