"""The concurrency benchmark's arithmetic: the steady-state window, ratios, same-text counts."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from polyllm.bench.batching import (
    ConcurrencyConfig,
    Level,
    RequestSample,
    _Run,
    combine,
    in_window,
    markdown,
    measure_model,
    per_level,
    room,
    service_flags,
    summarise,
)
from polyllm.bench.sse_client import StreamResult, stream_completion


def sample(engine: str, c: int, index: int, sha: str, ttft: float = 100.0) -> RequestSample:
    return RequestSample("m3", engine, c, index, 20, 96, ttft, 40.0, 2000.0, 0.0, sha)


def test_tokens_in_the_window_are_weighted_to_completion_tokens() -> None:
    # 96 tokens arrived as 48 SSE events (two tokens each), 0.1 s apart from t=1.0.
    run = _Run(0.9, 6.0, [1.0 + 0.1 * i for i in range(48)], sample("batching", 1, 0, "a"))
    assert in_window(run, 0.0, 10.0) == 96
    assert in_window(run, 1.0, 1.95) == pytest.approx(20)  # events 0..9
    assert in_window(run, 7.0, 8.0) == 0


def test_rows_compare_each_level_with_the_first_of_its_engine() -> None:
    levels = [
        Level("m3", "serial", 1, 10.0, 450.0, [sample("serial", 1, i, f"t{i}") for i in (0, 1)]),
        Level("m3", "serial", 4, 10.0, 460.0, [sample("serial", 4, i, f"t{i}") for i in (0, 1)]),
        Level("m3", "batching", 1, 10.0, 440.0, [sample("batching", 1, 0, "t0", ttft=100)]),
        Level(
            "m3", "batching", 4, 10.0, 770.0,
            [sample("batching", 4, 0, "t0", ttft=150), sample("batching", 4, 1, "XX", ttft=250)],
        ),
    ]  # fmt: skip
    rows = {(r["engine"], r["concurrency"]): r for r in summarise(levels)}
    assert rows[("batching", 4)]["aggregate_tok_s"] == 77.0
    assert rows[("batching", 4)]["aggregate_x"] == 1.75
    assert rows[("serial", 4)]["aggregate_x"] == 1.02
    assert rows[("batching", 4)]["ttft_p95_ms"] == 245.0  # interpolated between 150 and 250
    assert rows[("batching", 4)]["ttft_p95_x"] == 2.45
    assert rows[("batching", 4)]["same_text_as_serial"] == "1/2"
    assert rows[("batching", 4)]["same_text_as_first"] == "1/1"  # index 1 never ran at c=1
    assert rows[("serial", 4)]["same_text_as_first"] == "2/2"


def test_runs_are_combined_into_medians_of_their_own_ratios() -> None:
    def run(r: int, c1: float, c4: float, sha: str) -> list[Level]:
        return [
            Level("m3", "batching", 1, 10.0, c1, [sample("batching", 1, 0, "t0")], run=r),
            Level("m3", "batching", 4, 10.0, c4, [sample("batching", 4, 0, sha)], run=r),
        ]

    # Run 2 is a slow spell of the machine: its ratio (1.6) is still its own c=4 over its c=1.
    levels = [*run(0, 450.0, 720.0, "t0"), *run(1, 300.0, 480.0, "XX"), *run(2, 440.0, 770.0, "t0")]
    rows = summarise(levels)
    assert [r["aggregate_x"] for r in rows if r["concurrency"] == 4] == [1.6, 1.6, 1.75]
    (c1, c4) = combine(rows)
    assert (c4["runs"], c4["requests"]) == (3, 3)
    assert c4["aggregate_tok_s"] == 72.0  # median of 72, 48, 77
    assert c4["aggregate_x"] == 1.6
    assert c4["aggregate_x_range"] == "1.6-1.75"
    assert c4["same_text_as_first"] == "2/3"  # against run 1's text at c=1
    assert c1["aggregate_x_range"] == "1.0-1.0"


def test_engines_take_turns_run_after_run(monkeypatch: pytest.MonkeyPatch) -> None:
    import contextlib

    from polyllm.bench import batching
    from polyllm.models.catalog import CATALOG

    order: list[tuple[str, int]] = []

    async def level(send: object, model: str, engine: str, c: int, *_: object) -> Level:
        order.append((engine, c))
        return Level(model, engine, c, 1.0, 40.0, [sample(engine, c, 0, "a")])

    async def probe(send: object) -> float:
        return 1.0

    logs: list[str] = []

    def server(engine: str, spec: object, cfg: object, log_path: Path) -> object:
        logs.append(log_path.name)
        return contextlib.nullcontext("http://x")

    monkeypatch.setattr(batching, "server", server)
    monkeypatch.setattr(batching, "probe", probe)
    monkeypatch.setattr(batching, "measure_level", level)
    monkeypatch.setattr(batching, "PAUSE_S", 0.0)
    cfg = ConcurrencyConfig(models=["m3"], levels=[1, 4], runs=2)
    levels = measure_model(CATALOG["m3"], cfg, Path("."), echo=lambda _: None)
    assert order == [("serial", 1), ("serial", 4), ("batching", 1), ("batching", 4)] * 2
    assert [lv.run for lv in levels] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert logs == [  # each run keeps its servers' logs
        "bench-batching-m3-serial-run1.log", "bench-batching-m3-batching-run1.log",
        "bench-batching-m3-serial-run2.log", "bench-batching-m3-batching-run2.log",
    ]  # fmt: skip


def test_every_level_sends_the_same_prompts_two_per_client_at_least() -> None:
    assert per_level(ConcurrencyConfig(models=["m3"], levels=[1, 2, 4, 8], requests=8)) == 16
    assert per_level(ConcurrencyConfig(models=["m3"], levels=[1, 2], requests=10)) == 10


def test_each_engine_gets_room_for_the_busiest_level() -> None:
    cfg = ConcurrencyConfig(models=["m3"], levels=[1, 2, 4, 8], max_tokens=96)
    batching = service_flags("batching", cfg)
    assert batching[batching.index("--n-parallel") + 1] == "8"
    assert int(batching[batching.index("--n-ctx") + 1]) >= 8 * (96 + 21)
    serial = service_flags("serial", cfg)
    assert serial[serial.index("--n-parallel") + 1] == "1"
    assert int(serial[serial.index("--queue-max") + 1]) >= 8


def test_the_report_states_the_conditions_and_the_anchor(tmp_path: Path) -> None:
    cfg = ConcurrencyConfig(models=["m3"], levels=[1, 4], out_dir=tmp_path)
    levels = [Level("m3", "batching", 1, 1.0, 40.0, [sample("batching", 1, 0, "a")])]
    text = markdown(combine(summarise(levels)), cfg, "Load average (1 min) before 0.10, after 0.20")
    assert "Load average (1 min) before 0.10" in text
    assert "47.6 at c=1" in text and "76.8 at c=4" in text
    assert "| m3 | batching | 1 |" in text


# llama-server's streamed /completion as it answered (build 0c1e570, m1, 3 tokens, greedy);
# the final chunk is cut to the fields the client reads.
_TOKEN = {"index": 0, "stop": False, "id_slot": -1, "tokens_evaluated": 6}
LLAMA_SERVER_CHUNKS = [
    {**_TOKEN, "content": " to", "tokens": [288], "tokens_predicted": 1},
    {**_TOKEN, "content": "", "tokens": [1055], "tokens_predicted": 2},
    {**_TOKEN, "content": " person", "tokens": [1055], "tokens_predicted": 3},
    {
        "index": 0, "content": "", "tokens": [], "id_slot": 1, "stop": True,
        "tokens_predicted": 3, "tokens_evaluated": 6, "stop_type": "limit",
        "timings": {"predicted_n": 3, "predicted_per_second": 132.98},
    },
]  # fmt: skip
LLAMA_SERVER_STREAM = b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in LLAMA_SERVER_CHUNKS)


def llama_server(status: int, body: bytes) -> httpx.AsyncClient:
    def answer(request: httpx.Request) -> httpx.Response:
        sent = json.loads(request.content)
        assert sent["stream"] is True and request.url.path == "/completion"
        assert request.headers["connection"] == "close"  # see stream_completion
        return httpx.Response(status, content=body)

    return httpx.AsyncClient(transport=httpx.MockTransport(answer))


def test_llama_server_chunks_become_tokens_and_stats() -> None:
    async def run() -> StreamResult:
        async with llama_server(200, LLAMA_SERVER_STREAM) as http:
            return await stream_completion(http, "http://ls/completion", {"prompt": "x"}, "m1")

    result = asyncio.run(run())
    assert result.error is None and result.text == " to person"
    assert len(result.token_times) == 3  # a chunk per token, an empty one (half a character) too
    assert result.stats is not None
    assert (result.stats.finish_reason, result.stats.completion_tokens) == ("length", 3)
    assert result.stats.prompt_tokens == 6 and result.stats.tokens_per_s == 132.98


def test_llama_server_refusal_and_a_cut_stream_are_errors() -> None:
    async def run(status: int, body: bytes) -> StreamResult:
        async with llama_server(status, body) as http:
            return await stream_completion(http, "http://ls/completion", {"prompt": "x"}, "m1")

    refused = asyncio.run(run(400, b'{"error":{"message":"Field \'n_predict\': bad"}}'))
    assert refused.status_code == 400 and "n_predict" in (refused.error or "")
    cut = asyncio.run(run(200, LLAMA_SERVER_STREAM.split(b"\n\n")[0] + b"\n\n"))
    assert cut.stats is None and cut.error == "stream ended without a final chunk"


def test_llama_server_is_measured_only_when_built_with_as_many_slots() -> None:
    cfg = ConcurrencyConfig(models=["m3"], levels=[1, 2, 4])
    assert cfg.engines == ["serial", "batching"]
    built = ConcurrencyConfig(models=["m3"], levels=[1, 2, 4], llama_server=Path("/x/server"))
    assert built.engines == ["serial", "batching", "llama-server"]
    assert room("llama-server", built) == room("batching", built)
    assert room("llama-server", built)[0] == 4


def test_the_llama_server_build_script_passes_shellcheck() -> None:
    script = Path(__file__).parents[2] / "scripts/build-llama-server.sh"
    shellcheck = Path(sys.executable).parent / "shellcheck"
    result = subprocess.run([str(shellcheck), str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
