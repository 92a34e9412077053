"""The model service as a real process with the real m1 model, over real HTTP."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path

import httpx
import openai
import pytest

from polyllm.bench import sse_client
from polyllm.common.schemas import GenerateResponse, GenerationStats, TokenEvent
from tests.waiting import wait_until

from .conftest import REPO, Service, free_port, launch, stop, wait_healthy

pytestmark = pytest.mark.integration

PROMPT = "Name three colours of the rainbow."


async def stream_generate(
    url: str, body: dict[str, object]
) -> tuple[list[TokenEvent], GenerationStats]:
    """POST /generate with stream=true through the bench client; token events and stats."""
    async with httpx.AsyncClient(timeout=120) as client:
        result = await sse_client.stream_generate(client, f"{url}/generate", body)
    assert result.status_code == 200 and result.error is None, result.error
    assert result.stats is not None
    tokens = [TokenEvent(text=t, index=i) for i, t in enumerate(result.chunks)]
    return tokens, result.stats


def generate_json(url: str, body: dict[str, object]) -> GenerateResponse:
    resp = httpx.post(f"{url}/generate", json={**body, "stream": False}, timeout=120)
    assert resp.status_code == 200, resp.text
    return GenerateResponse.model_validate(resp.json())


def test_health_goes_from_loading_to_ok(m1: Service) -> None:
    assert m1.health_codes[-1] == 200
    assert 503 in m1.health_codes, f"never saw the loading state: {m1.health_codes}"
    body = httpx.get(f"{m1.url}/health").json()
    assert body["status"] == "ok"
    assert body["model"] == "m1"
    assert body["backend"] == "cpu"
    assert body["sha256"] == "b179c9523d0e"
    assert body["queue_depth"] == 0


def test_stream_sends_token_events_then_stats(m1: Service) -> None:
    tokens, stats = asyncio.run(
        stream_generate(m1.url, {"prompt": PROMPT, "max_tokens": 24, "temp": 0})
    )
    assert len(tokens) >= 2
    assert stats.model == "m1"
    assert stats.finish_reason in ("stop", "length")
    assert 1 <= stats.completion_tokens <= 24
    assert stats.prompt_tokens > 5
    assert 0 < stats.ttft_s <= stats.latency_s
    assert stats.tokens_per_s > 0


def test_non_streaming_equals_streamed_text_at_temp_zero(m1: Service) -> None:
    body = {"prompt": PROMPT, "max_tokens": 24, "temp": 0}
    whole = generate_json(m1.url, body)
    tokens, stats = asyncio.run(stream_generate(m1.url, body))
    assert whole.text == "".join(t.text for t in tokens)
    assert whole.text.strip()
    assert whole.completion_tokens == stats.completion_tokens


def test_max_tokens_is_honoured_exactly(m1: Service) -> None:
    # A raw prompt that keeps going: the budget, not the model, ends it.
    result = generate_json(
        m1.url, {"prompt": "1, 2, 3, 4,", "max_tokens": 7, "temp": 0, "raw": True}
    )
    assert result.finish_reason == "length"
    assert result.completion_tokens == 7


def test_stop_string_ends_the_completion_and_is_not_included(m1: Service) -> None:
    body = {"prompt": "1, 2, 3, 4,", "max_tokens": 40, "temp": 0, "raw": True}
    free = generate_json(m1.url, body)
    assert "7" in free.text, free.text
    stopped = generate_json(m1.url, {**body, "stop": ["7"]})
    assert stopped.finish_reason == "stop"
    assert "7" not in stopped.text
    assert free.text.startswith(stopped.text)


def test_seeded_sampling_is_reproducible(m1: Service) -> None:
    body = {"prompt": PROMPT, "max_tokens": 16, "temp": 1.0, "seed": 1234}
    assert generate_json(m1.url, body).text == generate_json(m1.url, body).text


def test_request_id_is_echoed_and_logged_without_the_prompt(m1: Service) -> None:
    secret = "The parrot's name is Zorblax-71."
    resp = httpx.post(
        f"{m1.url}/generate",
        json={"prompt": secret, "max_tokens": 4, "stream": False},
        headers={"X-Request-ID": "test-req-42"},
        timeout=60,
    )
    assert resp.status_code == 200
    assert resp.headers["x-request-id"] == "test-req-42"
    time.sleep(0.2)
    lines = [json.loads(line) for line in m1.log().splitlines() if line.startswith("{")]
    mine = [entry for entry in lines if entry.get("request_id") == "test-req-42"]
    generation = next(e for e in mine if e["msg"] == "generation")
    assert {"prompt_hash", "model_id", "latency_s", "ttft_s", "completion_tokens", "status"} <= set(
        generation
    )
    assert "Zorblax" not in m1.log()


def test_openai_client_chat_completions_and_models(m1: Service) -> None:
    client = openai.OpenAI(base_url=f"{m1.url}/v1", api_key="unused")
    assert [m.id for m in client.models.list()] == ["m1"]
    chat = client.chat.completions.create(
        model="m1", messages=[{"role": "user", "content": PROMPT}], max_tokens=16, temperature=0
    )
    assert chat.choices[0].message.content
    assert chat.usage is not None and 1 <= chat.usage.completion_tokens <= 16
    pieces = [
        chunk.choices[0].delta.content or ""
        for chunk in client.chat.completions.create(
            model="m1",
            messages=[{"role": "user", "content": PROMPT}],
            max_tokens=16,
            temperature=0,
            stream=True,
        )
        if chunk.choices
    ]
    assert "".join(pieces) == chat.choices[0].message.content
    text = client.completions.create(model="m1", prompt="1, 2, 3,", max_tokens=5, temperature=0)
    assert text.choices[0].text
    assert text.choices[0].finish_reason == "length"


def test_openai_unknown_model_is_404(m1: Service) -> None:
    client = openai.OpenAI(base_url=f"{m1.url}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "hi"}])
    assert "gpt-4" in str(err.value)


def test_metrics_move_with_traffic(m1: Service) -> None:
    ok_before = m1.metric("polyllm_model_requests_total", model="m1", status="ok")
    tokens_before = m1.metric("polyllm_model_tokens_generated_total", model="m1")
    count_before = m1.metric("polyllm_model_ttft_seconds_count", model="m1")
    result = generate_json(m1.url, {"prompt": PROMPT, "max_tokens": 8, "temp": 0})
    assert m1.metric("polyllm_model_requests_total", model="m1", status="ok") == ok_before + 1
    assert (
        m1.metric("polyllm_model_tokens_generated_total", model="m1")
        == tokens_before + result.completion_tokens
    )
    assert m1.metric("polyllm_model_ttft_seconds_count", model="m1") == count_before + 1
    assert m1.metric("polyllm_model_prompt_tokens_total", model="m1") > 0
    assert m1.metric("polyllm_model_tokens_per_second_count", model="m1") > 0
    assert m1.metric("polyllm_model_queue_depth", model="m1") == 0


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"max_tokens": 5}, 422, "prompt"),
        ({"prompt": ""}, 422, "prompt"),
        ({"prompt": "hi", "max_tokens": 0}, 422, "max_tokens"),
        ({"prompt": "hi", "max_tokens": 100000}, 422, "max_tokens"),
        ({"prompt": "hi", "max_tokens": 1020}, 400, "max_tokens"),  # context is 1024
        ({"prompt": "hi", "temp": 2.5}, 422, "temp"),
        ({"prompt": "hi", "temp": -0.1}, 422, "temp"),
        ({"prompt": "hi", "top_p": 0}, 422, "top_p"),
        ({"prompt": "hi", "stop": [""]}, 422, "stop"),
        ({"prompt": "hi", "bogus": 1}, 422, "bogus"),
        ({"prompt": "word " * 1100}, 400, "prompt"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field(
    m1: Service, body: dict[str, object], status: int, param: str
) -> None:
    invalid_before = m1.metric("polyllm_model_requests_total", model="m1", status="invalid")
    resp = httpx.post(f"{m1.url}/generate", json=body, timeout=30)
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert error["param"] == param
    assert error["message"]
    assert (
        m1.metric("polyllm_model_requests_total", model="m1", status="invalid")
        == invalid_before + 1
    )


def test_non_json_body_is_400(m1: Service) -> None:
    resp = httpx.post(
        f"{m1.url}/generate", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["message"] == "request body is not valid JSON"


async def _hold_stream(url: str, started: asyncio.Event, release: asyncio.Event) -> None:
    """Keep a long generation running until ``release``."""
    body = {"prompt": "Write a very long story about a dragon.", "max_tokens": 800, "stream": True}
    async with (
        httpx.AsyncClient(timeout=120) as client,
        client.stream("POST", f"{url}/generate", json=body) as resp,
    ):
        assert resp.status_code == 200
        async for line in resp.aiter_lines():
            if line.startswith("event: token"):
                started.set()
            if release.is_set():
                return


def test_full_queue_answers_503_with_retry_after(m1: Service) -> None:
    """queue_max=1: one running + one waiting; the third caller is turned away at once."""

    async def scenario() -> httpx.Response:
        started, release = asyncio.Event(), asyncio.Event()
        running = asyncio.create_task(_hold_stream(m1.url, started, release))
        await asyncio.wait_for(started.wait(), 60)
        waiting = asyncio.create_task(_hold_stream(m1.url, asyncio.Event(), release))
        async with httpx.AsyncClient(timeout=30) as client:
            while m1.metric("polyllm_model_queue_depth", model="m1") < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            third = await client.post(f"{m1.url}/generate", json={"prompt": "hi", "stream": False})
        release.set()
        await asyncio.gather(running, waiting)
        return third

    rejected_before = m1.metric("polyllm_model_requests_total", model="m1", status="rejected")
    third = asyncio.run(scenario())
    assert third.status_code == 503
    assert int(third.headers["retry-after"]) >= 1
    assert third.json()["error"]["code"] == "overloaded"
    assert (
        m1.metric("polyllm_model_requests_total", model="m1", status="rejected")
        == rejected_before + 1
    )
    _wait_idle(m1)


def _wait_idle(service: Service, timeout_s: float = 30) -> None:
    wait_until(
        lambda: service.metric("polyllm_model_queue_depth", model="m1") == 0,
        "queue never drained",
        timeout_s,
    )


def _wait_cancelled(service: Service, before: float) -> None:
    wait_until(
        lambda: (
            service.metric("polyllm_model_requests_total", model="m1", status="cancelled") > before
        ),
        "generation was not cancelled",
    )


def test_client_disconnect_stops_generation(m1: Service) -> None:
    cancelled_before = m1.metric("polyllm_model_requests_total", model="m1", status="cancelled")
    tokens_before = m1.metric("polyllm_model_tokens_generated_total", model="m1")

    async def read_a_few_then_leave() -> None:
        body = {"prompt": "Write a very long story about a dragon.", "max_tokens": 900, "temp": 0.8}
        async with (
            httpx.AsyncClient(timeout=60) as client,
            client.stream("POST", f"{m1.url}/generate", json=body) as resp,
        ):
            seen = 0
            async for line in resp.aiter_lines():
                seen += line.startswith("event: token")
                if seen == 3:
                    return  # closing the response drops the connection

    asyncio.run(read_a_few_then_leave())
    _wait_cancelled(m1, cancelled_before)
    _wait_idle(m1)
    # At ~100 tok/s an uncancelled request would have produced up to 900 tokens by now.
    assert m1.metric("polyllm_model_tokens_generated_total", model="m1") - tokens_before < 200


def test_non_streaming_client_disconnect_stops_generation(m1: Service) -> None:
    cancelled_before = m1.metric("polyllm_model_requests_total", model="m1", status="cancelled")
    body = {"prompt": "Write a very long story about a dragon.", "max_tokens": 900, "stream": False}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{m1.url}/generate", json=body, timeout=0.5)
    _wait_cancelled(m1, cancelled_before)
    _wait_idle(m1)


def test_concurrent_requests_complete_intact(m1: Service) -> None:
    a = {"prompt": "List four fruits.", "max_tokens": 32, "temp": 0}
    b = {"prompt": "Describe the sea in one sentence.", "max_tokens": 32, "temp": 0}
    alone_a, alone_b = generate_json(m1.url, a).text, generate_json(m1.url, b).text

    async def both() -> list[tuple[list[TokenEvent], GenerationStats]]:
        return await asyncio.gather(stream_generate(m1.url, a), stream_generate(m1.url, b))

    (tok_a, stats_a), (tok_b, stats_b) = asyncio.run(both())
    assert "".join(t.text for t in tok_a) == alone_a
    assert "".join(t.text for t in tok_b) == alone_b
    assert stats_a.finish_reason != "cancelled" and stats_b.finish_reason != "cancelled"


def test_use_gpu_without_gpu_fails_at_startup(m1_path: Path, tmp_path: Path) -> None:
    service = launch("m1", tmp_path / "gpu.log", env={"USE_GPU": "true"})
    try:
        assert service.proc.wait(timeout=60) == 1
    finally:
        stop(service)
    assert "USE_GPU=true" in service.log()
    assert "refusing" in service.log()


def test_missing_model_path_fails_at_startup(tmp_path: Path) -> None:
    service = launch("m1", tmp_path / "missing.log", "--model-path", str(tmp_path / "nope.gguf"))
    try:
        assert service.proc.wait(timeout=60) == 1
    finally:
        stop(service)
    assert "nope.gguf does not exist" in service.log()


def test_unknown_model_id_is_a_usage_error(tmp_path: Path) -> None:
    service = launch("m9", tmp_path / "m9.log")
    try:
        assert service.proc.wait(timeout=60) == 2
    finally:
        stop(service)
    assert "unknown model 'm9'" in service.log()


def test_corrupt_model_file_reports_failed_health_and_exits(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 4096)
    service = launch("m1", tmp_path / "bad.log", "--model-path", str(bad))
    try:
        assert service.proc.wait(timeout=60) == 1
    finally:
        stop(service)
    assert "could not load" in service.log()


def test_run_llama_sh_serves_one_file(m1_path: Path, tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "run_llama.log"
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            [str(REPO / "run_llama.sh"), str(m1_path), str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    service = Service(proc, port, log_path)
    try:
        wait_healthy(service)
        assert httpx.get(f"{service.url}/health").json()["model"] == "m1"
        assert generate_json(service.url, {"prompt": "hi", "max_tokens": 3}).completion_tokens >= 1
    finally:
        stop(service)


def test_run_llama_sh_without_arguments_prints_usage() -> None:
    done = subprocess.run([str(REPO / "run_llama.sh")], capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert "usage:" in done.stderr
