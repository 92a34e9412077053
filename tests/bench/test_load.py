"""The load test's parts that need no model: targets, request bodies, prompts, Prometheus reading,
the memory-bandwidth bound and the results table."""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from typer.testing import CliRunner

from polyllm.bench.cli import bench_app
from polyllm.bench.host_metrics import CPU_QUERY, GPU_QUERY, Utilisation, utilisation
from polyllm.bench.load import (
    LoadConfig,
    LoadError,
    Target,
    check_options,
    is_loopback,
    one_request,
    probe_target,
    request_body,
    resolve_target,
    run_level,
    to_record,
)
from polyllm.bench.load_cli import parse_concurrency
from polyllm.bench.load_results import markdown_results
from polyllm.bench.load_summary import write_summary_csv
from polyllm.bench.membw import Bandwidth, decode_bound_tok_s, write_bandwidth
from polyllm.bench.sse_client import StreamResult
from polyllm.bench.workloads import WORKLOADS, LoadPrompt, PromptFileError, prompt_pool
from polyllm.common.schemas import GenerationStats, RouteEvent
from polyllm.stack.config import StackConfig, load_stack_config
from tests.bench.test_load_summary import LEVEL_2, summarise
from tests.redis_server import free_port

REPO = Path(__file__).resolve().parents[2]


def stack(host: str = "127.0.0.1") -> StackConfig:
    config = load_stack_config(REPO / "polyllm.yaml")
    return config.model_copy(update={"host": host})


def config(**overrides: Any) -> LoadConfig:
    base: dict[str, Any] = {
        "target": "http://127.0.0.1:1", "workload": WORKLOADS["short"], "concurrency": (1,),
        "requests": 1, "out_dir": Path("unused"),
    }  # fmt: skip
    return LoadConfig(**(base | overrides))


# -- target -------------------------------------------------------------------------------------


def test_loopback_hosts() -> None:
    assert is_loopback("http://127.0.0.1:8000")
    assert is_loopback("http://127.9.9.9:1")
    assert is_loopback("http://localhost:8000")
    assert is_loopback("http://[::1]:8000")
    assert not is_loopback("http://10.0.0.5:8000")
    assert not is_loopback("http://example.org")


def test_default_target_is_the_stack_router_on_loopback_only() -> None:
    assert resolve_target(None, stack()) == "http://127.0.0.1:8000"
    with pytest.raises(LoadError, match="name it with --target"):
        resolve_target(None, stack("10.1.2.3"))


def test_a_named_target_may_be_anywhere_and_loses_generate() -> None:
    assert resolve_target("http://10.1.2.3:8000/generate", stack()) == "http://10.1.2.3:8000"
    assert resolve_target("http://127.0.0.1:8101/", stack()) == "http://127.0.0.1:8101"
    with pytest.raises(LoadError, match="http"):
        resolve_target("ftp://127.0.0.1/x", stack())


def probe(body: object, status: int = 200) -> Target:
    async def go() -> Target:
        transport = httpx.MockTransport(lambda _: httpx.Response(status, json=body))
        async with httpx.AsyncClient(transport=transport) as client:
            return await probe_target(client, "http://t")

    return asyncio.run(go())


def test_probe_tells_a_router_from_a_model_service() -> None:
    assert probe({"status": "ok", "backends": {"m1": "up"}}) == Target("http://t", "router")
    model = probe({"status": "ok", "model": "m3", "backend": "cpu", "queue_depth": 0})
    assert model == Target("http://t", "model", "m3", "cpu")
    with pytest.raises(LoadError, match="unhealthy"):
        probe({"status": "unavailable", "backends": {}, "problems": ["every backend is down"]}, 503)
    with pytest.raises(LoadError, match="not ready"):
        probe({"status": "loading", "model": "m1", "backend": "cpu"}, 503)
    with pytest.raises(LoadError, match="neither"):
        probe({"hello": "world"})


def test_router_options_are_refused_against_a_model_service() -> None:
    service = Target("http://t", "model", "m1", "cpu")
    check_options(config(), service)
    with pytest.raises(LoadError, match="serves m1, not m3"):
        check_options(config(model="m3"), service)
    with pytest.raises(LoadError, match="no answer cache"):
        check_options(config(cache=True), service)
    with pytest.raises(LoadError, match="router only"):
        check_options(config(prefer_backend="gpu"), service)
    check_options(
        config(model="m3", cache=True, prefer_backend="gpu"), Target("http://t", "router")
    )


def test_request_bodies_for_each_target() -> None:
    router = request_body(config(model="m2", cache=False), Target("u", "router"), "hi")
    assert router == {
        "prompt": "hi", "max_tokens": 64, "temp": 0.0, "ignore_eos": True,
        "prefer_backend": "auto", "cache": False, "model": "m2",
    }  # fmt: skip
    service = request_body(config(max_tokens=7), Target("u", "model", "m1", "cpu"), "hi")
    assert service == {"prompt": "hi", "max_tokens": 7, "temp": 0.0, "ignore_eos": True}


def test_records_take_model_backend_and_cache_hit_from_the_route_event() -> None:
    stats = GenerationStats(
        model="m1", finish_reason="length", prompt_tokens=9, completion_tokens=3, ttft_s=0.1,
        latency_s=0.3, tokens_per_s=10.0,
    )  # fmt: skip
    result = StreamResult(200, ["a", "b", "c"], [0.1, 0.15, 0.35], stats, latency_s=0.4)
    prompt = LoadPrompt(id="x", category="chat", prompt="hello")
    direct = to_record(result, Target("u", "model", "m1", "cpu"), prompt, (2, 5), (100.0, 1.5))
    assert (direct.model, direct.backend, direct.cache_hit) == ("m1", "cpu", None)
    assert direct.itl_ms == pytest.approx((50.0, 200.0))
    assert direct.tokens_per_s == pytest.approx(2 / 0.25)
    assert (direct.concurrency, direct.index, direct.prompt_chars, direct.ok) == (2, 5, 5, True)
    result.route = RouteEvent(
        request_id="r", model="m4", backend="gpu", host="h", confidence=1.0, probabilities={},
        rationale="", policy="forced", cache_hit=True,
    )  # fmt: skip
    routed = to_record(result, Target("u", "router"), prompt, (2, 5), (100.0, 1.5))
    assert (routed.model, routed.backend, routed.cache_hit) == ("m4", "gpu", True)


def test_concurrency_lists() -> None:
    assert parse_concurrency("4") == (4,)
    assert parse_concurrency("1,2,4,8") == (1, 2, 4, 8)
    for bad in ("", "0", "1,x", "1,1", "65"):
        with pytest.raises(typer.BadParameter):
            parse_concurrency(bad)


# -- prompts ------------------------------------------------------------------------------------


def test_the_shipped_sample_has_every_workload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLYLLM_DATASET", str(tmp_path / "not-built.jsonl"))
    for workload in WORKLOADS.values():
        pool, source = prompt_pool(workload, 0)
        assert "sample_prompts.jsonl" in source and "not-built.jsonl is absent" in source
        assert len(pool) >= 6
        assert all(workload.min_chars <= len(p.prompt) < workload.max_chars for p in pool)


def test_dataset_prompts_by_class_in_a_seeded_order(tmp_path: Path) -> None:
    path = tmp_path / "dataset.jsonl"
    rows = [
        {"id": f"d{i}", "category": "math", "prompt": "x" * (10 + i), "split": "train"}
        for i in range(20)
    ]
    rows.append({"id": "long", "category": "chat", "prompt": "y" * 500})
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    pool, source = prompt_pool(WORKLOADS["short"], 1, path)
    assert source == str(path)
    assert sorted(p.id for p in pool) == sorted(f"d{i}" for i in range(20))
    again, _ = prompt_pool(WORKLOADS["short"], 1, path)
    other, _ = prompt_pool(WORKLOADS["short"], 2, path)
    assert [p.id for p in again] == [p.id for p in pool]
    assert [p.id for p in other] != [p.id for p in pool]
    assert [p.id for p in prompt_pool(WORKLOADS["medium"], 0, path)[0]] == ["long"]
    with pytest.raises(PromptFileError, match="no long prompt"):
        prompt_pool(WORKLOADS["long"], 0, path)
    with pytest.raises(PromptFileError, match="no such file"):
        prompt_pool(WORKLOADS["short"], 0, tmp_path / "missing.jsonl")
    path.write_text('{"id": "a"}\n')
    with pytest.raises(PromptFileError, match=r"dataset.jsonl:1"):
        prompt_pool(WORKLOADS["short"], 0, path)


# -- Prometheus ---------------------------------------------------------------------------------


def prometheus(series: dict[str, list[list[Any]]]) -> httpx.MockTransport:
    """A fake Prometheus API: ready, and each query's values (no series for unknown queries)."""

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/-/ready":
            return httpx.Response(200, text="ready")
        assert request.url.path == "/api/v1/query_range"
        values = series.get(request.url.params["query"])
        result = [] if values is None else [{"metric": {}, "values": values}]
        return httpx.Response(200, json={"status": "success", "data": {"result": result}})

    return httpx.MockTransport(answer)


def test_utilisation_is_the_mean_over_each_window_nan_dropped() -> None:
    fake = prometheus({CPU_QUERY: [[1, "0.5"], [2, "0.7"], [3, "NaN"]]})
    with httpx.Client(transport=fake) as client:
        host, note = utilisation("http://p", {1: (0.0, 10.0)}, client, settle_s=0)
    assert host == {1: Utilisation(pytest.approx(0.6), None)}  # type: ignore[arg-type]
    assert "CPU node exporter" in note and "GPU no series" in note
    fake = prometheus({CPU_QUERY: [[1, "0.25"]], GPU_QUERY: [[1, "0.75"]]})
    with httpx.Client(transport=fake) as client:
        host, note = utilisation("http://p", {1: (0.0, 10.0)}, client, settle_s=0)
    assert host == {1: Utilisation(0.25, 0.75)}
    assert "GPU DCGM" in note


def test_a_missing_prometheus_is_recorded_absent_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with httpx.Client(transport=httpx.MockTransport(refuse)) as client:
        host, note = utilisation("http://p", {1: (0.0, 1.0), 2: (1.0, 2.0)}, client, settle_s=0)
    assert host == {1: Utilisation(None, None), 2: Utilisation(None, None)}
    assert note.startswith("absent: cannot reach Prometheus")
    assert "host utilisation not recorded" in caplog.text
    assert utilisation(None, {1: (0.0, 1.0)})[1] == "absent: no Prometheus URL configured"


# -- bandwidth bound and results table ----------------------------------------------------------


def test_decode_bound_is_bandwidth_over_bytes() -> None:
    assert decode_bound_tok_s(500_000_000, 10.0) == pytest.approx(20.0)


def test_results_table_puts_the_bound_next_to_each_model(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / "m1.gguf").write_bytes(b"\0" * 1_000_000)
    run = tmp_path / "cpu" / "short-auto"
    run.mkdir(parents=True)
    write_summary_csv(summarise(LEVEL_2, "short", {}), run / "summary.csv")
    without = markdown_results(tmp_path / "cpu", models)
    assert "run `polyllm bench membw" in without
    write_bandwidth(Bandwidth("2026-01-01", 2, 64, 3, 0.002, 0.001), tmp_path / "cpu")
    table = markdown_results(tmp_path / "cpu", models).splitlines()
    m1 = next(line for line in table if "| m1 |" in line)
    # 0.002 GB/s over the 1 MB file: 2 tokens/s; m3's size (491 MB) comes from the catalog
    assert m1 == (
        "| short-auto | short | m1 | 2 | 2 | 0 | 1.50 / 1.95 / 1.99 | 150 / 195 | 75.0 | 1.0 "
        "| 1 | 2 |"
    )
    m3 = next(line for line in table if "| m3 |" in line)
    assert m3.endswith("| 491 | 0 |")
    assert not any("| all |" in line for line in table)
    with (run / "summary.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 3
    with pytest.raises(FileNotFoundError, match=r"summary\.csv"):
        markdown_results(tmp_path / "empty", models)


# -- requests against a fake HTTP transport ---------------------------------------------------

PROMPTS = [LoadPrompt(id=f"p{i}", category="chat", prompt=f"prompt {i}") for i in range(3)]
DONE = GenerationStats(
    model="m1", finish_reason="length", prompt_tokens=4, completion_tokens=2, ttft_s=0.01,
    latency_s=0.02, tokens_per_s=100.0,
).model_dump_json()  # fmt: skip
STREAM = (
    'event: token\ndata: {"text": "a", "index": 0}\n\n'
    'event: token\ndata: {"text": "b", "index": 1}\n\n'
    f"event: done\ndata: {DONE}\n\n"
).encode()


def send(handler: Any, **overrides: Any) -> Any:
    """One request through ``one_request`` over a fake transport."""

    async def go() -> Any:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            service = Target("http://t", "model", "m1", "cpu")
            return await one_request(client, config(**overrides), service, PROMPTS[0], (1, 0), 0.0)

    return asyncio.run(go())


def test_failed_requests_become_records_never_exceptions() -> None:
    ok = send(lambda _: httpx.Response(200, content=STREAM))
    assert (ok.ok, ok.status, ok.completion_tokens, ok.model) == (True, 200, 2, "m1")

    limited = send(lambda _: httpx.Response(429, json={"error": {"message": "slow down"}}))
    assert (limited.ok, limited.status) == (False, 429)
    assert "slow down" in limited.error

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    refused = send(refuse)
    assert (refused.status, refused.error) == (0, "ConnectError: connection refused")

    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200, content=STREAM)

    slow = send(hang, request_timeout_s=0.05)
    assert slow.status == 0 and "request timeout" in slow.error
    assert 0.04 < slow.latency_s < 2

    broken = send(lambda _: httpx.Response(200, content=b'event: token\ndata: {"nope": 1}\n\n'))
    assert broken.status == 0 and broken.error.startswith("malformed stream")


def test_a_level_keeps_exactly_concurrency_requests_in_flight() -> None:
    in_flight, peak, prompts_seen = 0, 0, []

    async def answer(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        prompts_seen.append(json.loads(request.content)["prompt"])
        await asyncio.sleep(0.02)
        in_flight -= 1
        return httpx.Response(200, content=STREAM)

    async def go() -> list[Any]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
            service = Target("http://t", "model", "m1", "cpu")
            return await run_level(
                client, config(requests=7), service, PROMPTS, 3, 2, 0.0, lambda: None
            )

    records = asyncio.run(go())
    assert peak == 3
    assert [r.index for r in records] == list(range(7))
    assert {r.concurrency for r in records} == {3}
    # request i gets prompt (first + i) of the pool, wrapping round: first = 2
    assert [r.prompt_id for r in records] == ["p2", "p0", "p1", "p2", "p0", "p1", "p2"]
    assert sorted(prompts_seen) == sorted(f"prompt {int(r.prompt_id[1])}" for r in records)


def test_cli_says_why_it_cannot_start(tmp_path: Path) -> None:
    args = ["load", "--out", str(tmp_path / "out"), "--prometheus", "http://127.0.0.1:1"]
    nobody = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(bench_app, [*args, "--target", nobody, "--requests", "1"])
    assert result.exit_code == 2
    assert f"cannot reach {nobody}" in result.output
    assert not (tmp_path / "out").exists()
    result = CliRunner().invoke(bench_app, [*args, "--model", "m9"])
    assert result.exit_code == 2 and "unknown model m9" in result.output
    result = CliRunner().invoke(bench_app, [*args, "--concurrency", "0"])
    assert result.exit_code == 2 and "1..64" in result.output
