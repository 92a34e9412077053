"""Every query of the Grafana dashboard and every recording rule returns data from a live stack.

Redis, the real m1 service, a fault-injecting fake backend, the router and node exporter run on
free ports; a real ``prometheus`` scrapes them with deploy/prometheus/prometheus.yml (its jobs and
rule files; targets moved to those ports, 1 s intervals). Traffic includes a fallback (the fake
answers 500 at tier 1, m1 takes over at tier 2), cache hits and a rate-limited request. GPU
panels and rules (tests/monitoring/queries.py's markers) only need to parse: no DCGM exporter.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.integration.conftest import running_m1
from tests.monitoring.queries import RULES, Query, dashboard_queries, rule_queries
from tests.redis_server import RedisServer, free_port
from tests.router.processes import Proc, fake_backend, registry_entry, router

pytestmark = pytest.mark.integration

NATIVE_CONFIG = RULES.parent / "prometheus.yml"
RATE_CAPACITY = 8  # the requests below, a few cache hits, then 429
DATA_DEADLINE_S = 40


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: run scripts/bootstrap.sh")
    return path


@contextmanager
def started(tmp: Path, name: str, cmd: list[str], url: str, ready: str) -> Iterator[Proc]:
    """A process that is ready once ``url + ready`` answers 200; stopped after."""
    log_path = tmp / f"{name}.log"
    with log_path.open("wb") as out:
        proc = Proc(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT), url, log_path)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.proc.poll() is None, f"{name} exited:\n{proc.log()}"
            try:
                if httpx.get(url + ready, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"{name} not ready:\n{proc.log()}"
            time.sleep(0.05)
        yield proc
    finally:
        proc.stop()


def live_config(ports: dict[str, int]) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml with its targets on this test's ports, 1 s intervals."""
    config: dict[str, Any] = yaml.safe_load(NATIVE_CONFIG.read_text())
    config["global"] = {
        "scrape_interval": "1s",
        "scrape_timeout": "1s",
        "evaluation_interval": "1s",
    }
    config["rule_files"] = [str(NATIVE_CONFIG.parent / f) for f in config["rule_files"]]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert sorted(jobs) == ["dcgm", "models", "node", "router"]
    jobs["router"]["static_configs"] = [{"targets": [f"127.0.0.1:{ports['router']}"]}]
    jobs["node"]["static_configs"] = [{"targets": [f"127.0.0.1:{ports['node']}"]}]
    jobs["dcgm"]["static_configs"] = [{"targets": [f"127.0.0.1:{ports['dcgm']}"]}]  # nobody
    m1 = [g for g in jobs["models"]["static_configs"] if g["labels"] == {"model": "m1"}]
    jobs["models"]["static_configs"] = [{**m1[0], "targets": [f"127.0.0.1:{ports['m1']}"]}]
    return config


def query(prometheus: str, expr: str) -> list[dict[str, Any]]:
    reply = httpx.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=5).json()
    assert reply["status"] == "success", (expr, reply)
    result: list[dict[str, Any]] = reply["data"]["result"]
    return result


def has_data(prometheus: str, q: Query) -> bool:
    """Some series with a finite value (not the NaN of a quantile or ratio without traffic)."""
    return any(math.isfinite(float(s["value"][1])) for s in query(prometheus, q.expr))


def generate(url: str, prompt: str, **fields: Any) -> httpx.Response:
    body = {"prompt": prompt, "max_tokens": 4, "temp": 0, "stream": False, **fields}
    return httpx.post(f"{url}/generate", json=body, timeout=60)


def send_wave(url: str, wave: int) -> None:
    """A fallback (the policy picks the failing tier 1), a cache miss on m1, then its hit."""
    assert generate(url, f"hi {wave}", cache=False).json()["model"] == "m1"
    for _ in range(2):
        assert generate(url, f"Say hello, wave {wave}.", model="m1").status_code == 200


def test_every_dashboard_query_and_rule_returns_data(tmp_path: Path) -> None:
    prometheus_bin, node_bin = binary("prometheus"), binary("prometheus-node-exporter")
    ports = {name: free_port() for name in ("prometheus", "node", "dcgm")}
    with ExitStack() as stack:
        redis = stack.enter_context(RedisServer(tmp_path / "redis"))
        m1 = stack.enter_context(running_m1(tmp_path, "--n-ctx", "512", "--n-threads", "2"))
        fake = stack.enter_context(fake_backend(tmp_path, "m2", "error_500"))
        registry = {"m2": registry_entry(fake.url, 1), "m1": registry_entry(m1.url, 2)}
        proc = stack.enter_context(
            router(tmp_path, registry, redis.url, confidence_threshold=0,
                   rate_capacity=RATE_CAPACITY, rate_refill_per_s=0)
        )  # fmt: skip
        ports |= {"router": int(proc.url.rpartition(":")[2]), "m1": m1.port}
        node_url = f"http://127.0.0.1:{ports['node']}"
        node_cmd = [node_bin, f"--web.listen-address=127.0.0.1:{ports['node']}",
                    "--collector.disable-defaults", "--collector.cpu"]  # fmt: skip
        stack.enter_context(started(tmp_path, "node-exporter", node_cmd, node_url, "/metrics"))
        config = tmp_path / "prometheus.yml"
        config.write_text(yaml.safe_dump(live_config(ports)))
        prometheus = f"http://127.0.0.1:{ports['prometheus']}"
        prometheus_cmd = [prometheus_bin, f"--config.file={config}",
                          f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                          f"--web.listen-address=127.0.0.1:{ports['prometheus']}"]  # fmt: skip
        stack.enter_context(started(tmp_path, "prometheus", prometheus_cmd, prometheus, "/-/ready"))

        # Wave 1 creates the labelled series; once scraped, wave 2 makes their rates non-zero.
        send_wave(proc.url, 1)
        first_seen = ["polyllm_router_fallbacks_total", "polyllm_model_ttft_seconds_count",
                      "polyllm_router_ttft_seconds_count"]  # fmt: skip
        deadline = time.monotonic() + DATA_DEADLINE_S
        while not all(query(prometheus, name) for name in first_seen):
            assert time.monotonic() < deadline, "Prometheus did not scrape the first wave"
            time.sleep(0.2)
        send_wave(proc.url, 2)
        codes = [generate(proc.url, "Say hello, wave 2.", model="m1").status_code for _ in range(4)]
        assert 429 in codes, codes
        assert proc.metric("polyllm_router_fallbacks_total", from_model="m2", to_model="m1",
                           reason="http_500") == 2  # fmt: skip

        queries = dashboard_queries() + rule_queries()
        gpu = [q for q in queries if q.gpu]
        assert gpu, "the GPU panel and rule are marked"
        for q in gpu:  # no DCGM exporter here: they must parse, data is not expected
            query(prometheus, q.expr)
        waiting = [q for q in queries if not q.gpu]
        while waiting:
            waiting = [q for q in waiting if not has_data(prometheus, q)]
            if waiting and time.monotonic() > deadline:
                targets = httpx.get(f"{prometheus}/api/v1/targets", timeout=5).json()
                pytest.fail(
                    "no data for:\n"
                    + "\n".join(f"  {q.where}: {q.expr}" for q in waiting)
                    + f"\ntargets: {targets['data']['activeTargets']}"
                )
            time.sleep(0.5)
