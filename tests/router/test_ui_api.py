"""The router's UI endpoints: the built UI at ``/``, the committed plots, and live figures from a
real Prometheus through the allow-list (never a query of the caller's)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient

from polyllm.router.api.ui import FIGURES, LastRequestStats
from polyllm.router.app import create_app
from polyllm.router.settings import RouterSettings
from tests.monitoring.test_dashboard_live import binary, started
from tests.redis_server import RedisServer, free_port
from tests.router.processes import fake_backend, registry_entry, router

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16  # enough for a file server: it does not decode it


def settings(tmp: Path, **overrides: Any) -> RouterSettings:
    """A router that polls nobody (its one backend is a free port) and serves from ``tmp``."""
    registry = {"m1": registry_entry(f"http://127.0.0.1:{free_port()}", 1)}
    values: dict[str, Any] = {
        "policy": "heuristic",  # these tests are about the UI endpoints, not the choice
        "registry": json.dumps(registry),
        "redis_url": f"redis://127.0.0.1:{free_port()}/0",
        "ui_dir": tmp / "dist",
        "benchmarks_dir": tmp / "benchmarks",
        "prometheus_url": f"http://127.0.0.1:{free_port()}",
        "prometheus_timeout_s": 2,
    }
    return RouterSettings(**(values | overrides))


@contextmanager
def client(config: RouterSettings) -> Iterator[TestClient]:
    with TestClient(create_app(config)) as c:
        yield c


def build_ui(dist: Path) -> None:
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text('<!doctype html><script src="/assets/app-1.js"></script>')
    (dist / "assets/app-1.js").write_text("console.log('ui')")


# -- the built UI ------------------------------------------------------------------------------


def test_the_router_serves_the_built_ui_at_the_root(tmp_path: Path) -> None:
    build_ui(tmp_path / "dist")
    (tmp_path / "secret.txt").write_text("not for the web")
    with client(settings(tmp_path)) as c:
        page = c.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "/assets/app-1.js" in page.text
        assert page.headers["cache-control"] == "no-cache"  # a new build shows at once
        asset = c.get("/assets/app-1.js")
        assert asset.status_code == 200 and asset.text == "console.log('ui')"
        assert "immutable" in asset.headers["cache-control"]  # content-hashed names
        missing = c.get("/assets/nope.js")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        for escape in ("/assets/..%2F..%2Fsecret.txt", "/assets/%2E%2E/index.html"):
            assert c.get(escape).status_code == 404, escape
        # The API is where it was.
        assert c.get("/models").status_code == 200


def test_without_a_build_the_root_says_how_to_build_it(tmp_path: Path) -> None:
    with client(settings(tmp_path)) as c:
        page = c.get("/")
    assert page.status_code == 503
    assert page.headers["content-type"].startswith("text/html")
    assert "make ui" in page.text and "UI_DIR" in page.text
    assert str((tmp_path / "dist/index.html").resolve()) in page.text


# -- committed benchmark plots -------------------------------------------------------------------


def test_benchmark_plots_are_listed_and_served(tmp_path: Path) -> None:
    plots = tmp_path / "benchmarks"
    (plots / "router").mkdir(parents=True)
    (plots / "cpu-latency.png").write_bytes(PNG)
    (plots / "router/cache_hit.png").write_bytes(PNG)
    (plots / "cpu-latency.csv").write_text("model,ttft\n")
    with client(settings(tmp_path)) as c:
        listed = c.get("/ui/benchmarks").json()
        assert [(p["name"], p["title"], p["url"]) for p in listed["charts"]] == [
            ("router/cache_hit.png", "router: cache hit", "/ui/benchmarks/router/cache_hit.png"),
            ("cpu-latency.png", "cpu latency", "/ui/benchmarks/cpu-latency.png"),
        ]
        image = c.get("/ui/benchmarks/router/cache_hit.png")
        assert image.status_code == 200 and image.content == PNG
        assert image.headers["content-type"] == "image/png"
        assert c.get("/ui/benchmarks/cpu-latency.csv").status_code == 404  # plots only
        assert c.get("/ui/benchmarks/..%2F..%2Fdist%2Findex.html").status_code == 404


def test_no_plots_folder_is_an_empty_list(tmp_path: Path) -> None:
    with client(settings(tmp_path)) as c:
        assert c.get("/ui/benchmarks").json()["charts"] == []


# -- live figures: errors --------------------------------------------------------------------------


def test_prometheus_down_is_a_503_that_names_it(tmp_path: Path) -> None:
    config = settings(tmp_path)
    with client(config) as c:
        for path in ("/ui/figures", "/ui/figures/requests_per_s"):
            reply = c.get(path)
            assert reply.status_code == 503, path
            error = reply.json()["error"]
            assert error["code"] == "prometheus_unavailable"
            assert config.prometheus_url in error["message"]
            assert "PROMETHEUS_URL" in error["message"]


def test_unknown_figures_are_404_and_no_query_is_passed_through(tmp_path: Path) -> None:
    with client(settings(tmp_path)) as c:
        reply = c.get("/ui/figures/up")
        assert reply.status_code == 404
        assert all(name in reply.json()["error"]["message"] for name in FIGURES)
        # A PromQL string is not a figure name either.
        assert c.get("/ui/figures/sum(up)").status_code == 404
        assert c.get("/ui/figures/x", params={"query": "up"}).status_code == 404


def test_the_prometheus_url_must_be_http(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="prometheus_url"):
        settings(tmp_path, prometheus_url="file:///etc/passwd")


# -- live figures from a real Prometheus ---------------------------------------------------------


@contextmanager
def prometheus(tmp: Path, port: int, targets: dict[str, str]) -> Iterator[str]:
    """A real ``prometheus`` on ``port`` scraping ``targets`` (job → host:port) every second."""
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [target]}]}
            for job, target in targets.items()
        ],
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    url = f"http://127.0.0.1:{port}"
    cmd = [
        binary("prometheus"),
        f"--config.file={tmp / 'prometheus.yml'}",
        f"--storage.tsdb.path={tmp / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with started(tmp, "prometheus", cmd, url, "/-/ready"):
        yield url


def figure_values(figures: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    return {
        f["name"]: {s["labels"].get("model", "all"): s["value"] for s in f["series"]}
        for f in figures["figures"]
    }


@pytest.mark.integration
def test_live_figures_and_last_request_stats_from_a_real_stack(tmp_path: Path) -> None:
    with ExitStack() as stack:
        redis = stack.enter_context(RedisServer(tmp_path / "redis"))
        fake = stack.enter_context(fake_backend(tmp_path, "m1", tokens=3, delay_s=0))
        promised = free_port()  # Prometheus's port, known before the router starts
        proc = stack.enter_context(
            router(tmp_path, {"m1": registry_entry(fake.url, 1)}, redis.url, policy="heuristic",
                   prometheus_url=f"http://127.0.0.1:{promised}")
        )  # fmt: skip
        body = {"prompt": "Say hi.", "max_tokens": 3, "temp": 0, "stream": False}
        for _ in range(2):  # a cache miss, then its hit
            assert httpx.post(f"{proc.url}/generate", json=body, timeout=30).status_code == 200

        # /last_request_stats has every field the UI reads (its type comes from this model).
        last = httpx.get(f"{proc.url}/last_request_stats", timeout=5).json()
        stats = LastRequestStats.model_validate(last)
        assert (stats.model_id, stats.host, stats.cache_hit) == ("m1", "cpu-node-1", True)
        assert set(LastRequestStats.model_fields) <= set(last)

        prom_tmp = tmp_path / "prom"
        prom_tmp.mkdir()
        target = proc.url.removeprefix("http://")
        prom = stack.enter_context(prometheus(prom_tmp, promised, {"router": target}))
        deadline = time.monotonic() + 40
        while True:
            httpx.post(f"{proc.url}/generate", json=body, timeout=30)  # more hits: rates > 0
            reply = httpx.get(f"{proc.url}/ui/figures", timeout=10)
            assert reply.status_code == 200, reply.text
            values = figure_values(reply.json())
            if values["model_share"].get("m1") and values["p95_latency_s"].get("m1"):
                break
            assert time.monotonic() < deadline, f"no live figures in time: {values}"
            time.sleep(0.5)
        one = httpx.get(f"{proc.url}/ui/figures/model_share", timeout=10).json()
        assert one["name"] == "model_share" and one["query"] == FIGURES["model_share"].expr
        assert [s["labels"] for s in one["series"]] == [{"model": "m1"}]

        # Prometheus answering, but not with a result (here: a path it does not serve) is a 502.
        with client(settings(tmp_path, prometheus_url=f"{prom}/not-prometheus")) as c:
            reply = c.get("/ui/figures")
        assert reply.status_code == 502
        assert reply.json()["error"]["code"] == "prometheus_error"

    assert list(values) == list(FIGURES)
    assert values["model_share"] == {"m1": 1.0}
    assert values["requests_per_s"]["all"] is not None and values["requests_per_s"]["all"] > 0
    hit_ratio = values["cache_hit_ratio"]["all"]
    assert hit_ratio is not None and 0.5 <= hit_ratio <= 1.0  # one miss, then hits
    assert values["tokens_per_s"] == {}  # no model service is scraped here: no series
