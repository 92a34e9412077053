"""Continuous batching in a real model service (m1, ``--n-parallel 4``), over real HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import pytest

from polyllm.bench import sse_client
from polyllm.common.schemas import GenerateResponse
from tests.integration.conftest import MODELS_DIR, Service, running_m1
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

N_PARALLEL, QUEUE_MAX = 4, 2
PROMPTS = [
    "List four fruits.",
    "Describe the sea in one sentence.",
    "What is the capital of France?",
    "Write a haiku about autumn.",
    "Explain what a compiler does.",
    "Name three colours of the rainbow.",
]
LONG = {"prompt": "Write a very long story about a dragon.", "max_tokens": 900, "temp": 0.8}


@pytest.fixture(scope="module")
def batched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """m1 decoding up to 4 requests together, 2 more waiting, 4096 KV cells to share."""
    if not (MODELS_DIR / "m1.gguf").is_file():
        pytest.fail("models/m1.gguf is missing: run `make test-models` (make test does it)")
    args = ("--n-parallel", str(N_PARALLEL), "--queue-max", str(QUEUE_MAX), "--n-ctx", "4096")
    with running_m1(tmp_path_factory.mktemp("m1-batched"), *args, "--n-threads", "2") as svc:
        yield svc


@pytest.fixture(scope="module")
def serial(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The same model with the default engine, one request at a time."""
    with running_m1(tmp_path_factory.mktemp("m1-serial"), "--n-threads", "2") as svc:
        yield svc


def generate(url: str, body: dict[str, object]) -> GenerateResponse:
    resp = httpx.post(f"{url}/generate", json={**body, "stream": False}, timeout=120)
    assert resp.status_code == 200, resp.text
    return GenerateResponse.model_validate(resp.json())


async def generate_all(url: str, bodies: list[dict[str, object]]) -> list[GenerateResponse]:
    """All at once, each on its own connection."""
    async with httpx.AsyncClient(timeout=120) as client:
        responses = await asyncio.gather(
            *(client.post(f"{url}/generate", json={**b, "stream": False}) for b in bodies)
        )
    assert [r.status_code for r in responses] == [200] * len(bodies), [r.text for r in responses]
    return [GenerateResponse.model_validate(r.json()) for r in responses]


def steps(service: Service) -> tuple[float, float]:
    """(decode steps so far, steps that carried one sequence only)."""
    return (
        service.metric("polyllm_model_batch_size_count", model="m1"),
        service.metric("polyllm_model_batch_size_bucket", model="m1", le="1.0"),
    )


def test_health_and_the_batching_metrics_are_there(batched: Service) -> None:
    body = httpx.get(f"{batched.url}/health").json()
    assert (body["status"], body["n_ctx"], body["queue_depth"]) == ("ok", 4096, 0)
    text = httpx.get(f"{batched.url}/metrics").text
    assert "# TYPE polyllm_model_batch_size histogram" in text
    assert batched.metric("polyllm_model_active_sequences", model="m1") == 0
    assert steps(batched)[0] > 0  # the warm-up went through the batching loop


def test_concurrent_requests_share_decode_steps_and_complete(batched: Service) -> None:
    count_before, single_before = steps(batched)
    ok_before = batched.metric("polyllm_model_requests_total", model="m1", status="ok")
    bodies: list[dict[str, object]] = [
        {"prompt": p, "max_tokens": 32, "temp": 0} for p in PROMPTS[:N_PARALLEL]
    ]
    results = asyncio.run(generate_all(batched.url, bodies))
    assert all(r.finish_reason in ("stop", "length") and r.text.strip() for r in results)
    assert all(1 <= r.completion_tokens <= 32 for r in results)
    count, single = steps(batched)
    assert count - count_before > single - single_before  # some steps carried several
    assert batched.metric("polyllm_model_requests_total", model="m1", status="ok") == (
        ok_before + N_PARALLEL
    )
    wait_until(lambda: batched.metric("polyllm_model_queue_depth", model="m1") == 0, "not idle")
    assert batched.metric("polyllm_model_active_sequences", model="m1") == 0


def test_openai_stream_and_json_agree_in_batching_mode(batched: Service) -> None:
    body = {"model": "m1", "messages": [{"role": "user", "content": PROMPTS[0]}],
            "max_tokens": 16, "temperature": 0}  # fmt: skip
    whole = httpx.post(f"{batched.url}/v1/chat/completions", json=body, timeout=60).json()
    with httpx.stream(
        "POST", f"{batched.url}/v1/chat/completions", json={**body, "stream": True}, timeout=60
    ) as resp:
        lines = [line for line in resp.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    streamed = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert streamed == whole["choices"][0]["message"]["content"] != ""
    assert whole["usage"]["completion_tokens"] >= 1


async def _hold(url: str, first_token: asyncio.Event, release: asyncio.Event) -> None:
    """A long stream that reads until ``release``, then leaves (a client disconnect)."""
    async with (
        httpx.AsyncClient(timeout=120) as client,
        client.stream("POST", f"{url}/generate", json={**LONG, "stream": True}) as resp,
    ):
        assert resp.status_code == 200
        async for line in resp.aiter_lines():
            if line.startswith("event: token"):
                first_token.set()
            if release.is_set():
                return


async def _wait_metric(service: Service, name: str, value: float, timeout_s: float = 60) -> None:
    async with asyncio.timeout(timeout_s):
        while await asyncio.to_thread(service.metric, name, model="m1") != value:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


def test_a_disconnect_frees_its_slot_for_a_waiting_request_at_once(batched: Service) -> None:
    cancelled_before = batched.metric(
        "polyllm_model_requests_total", model="m1", status="cancelled"
    )

    async def scenario() -> float:
        running = [(asyncio.Event(), asyncio.Event()) for _ in range(N_PARALLEL)]
        tasks = [asyncio.create_task(_hold(batched.url, *pair)) for pair in running]
        await asyncio.wait_for(asyncio.gather(*(first.wait() for first, _ in running)), 60)
        waiting_first, waiting_release = asyncio.Event(), asyncio.Event()
        tasks.append(asyncio.create_task(_hold(batched.url, waiting_first, waiting_release)))
        await _wait_metric(batched, "polyllm_model_queue_depth", N_PARALLEL + 1)
        assert not waiting_first.is_set()  # all four slots are taken
        left_at = asyncio.get_running_loop().time()
        running[0][1].set()  # the first client leaves at its next line
        await asyncio.wait_for(waiting_first.wait(), 30)
        took = asyncio.get_running_loop().time() - left_at
        await _wait_metric(batched, "polyllm_model_active_sequences", N_PARALLEL)
        for _, release in [*running, (waiting_first, waiting_release)]:
            release.set()
        await asyncio.gather(*tasks)
        return took

    took = asyncio.run(scenario())
    # m1 decodes a step of four in well under 0.1 s: the waiting request starts within a few
    # steps of the disconnect, not after a running generation ends (900 tokens: many seconds).
    assert took < 2.0, f"the waiting request started {took:.2f} s after the disconnect"
    wait_until(lambda: batched.metric("polyllm_model_queue_depth", model="m1") == 0, "not idle", 30)
    cancelled = batched.metric("polyllm_model_requests_total", model="m1", status="cancelled")
    assert cancelled == cancelled_before + N_PARALLEL + 1


def test_beyond_the_active_set_and_the_queue_requests_get_503(batched: Service) -> None:
    rejected_before = batched.metric("polyllm_model_requests_total", model="m1", status="rejected")

    async def scenario() -> httpx.Response:
        release = asyncio.Event()
        tasks = [
            asyncio.create_task(_hold(batched.url, asyncio.Event(), release))
            for _ in range(N_PARALLEL + QUEUE_MAX)
        ]
        await _wait_metric(batched, "polyllm_model_queue_depth", N_PARALLEL + QUEUE_MAX)
        async with httpx.AsyncClient(timeout=30) as client:
            extra = await client.post(f"{batched.url}/generate", json={"prompt": "hi"})
        release.set()
        await asyncio.gather(*tasks)
        return extra

    extra = asyncio.run(scenario())
    assert extra.status_code == 503
    assert int(extra.headers["retry-after"]) >= 1
    assert extra.json()["error"]["code"] == "overloaded"
    rejected = batched.metric("polyllm_model_requests_total", model="m1", status="rejected")
    assert rejected == rejected_before + 1
    wait_until(lambda: batched.metric("polyllm_model_queue_depth", model="m1") == 0, "not idle", 30)


@pytest.mark.parametrize(
    "sampling", [{"temp": 0}, {"temp": 1.0, "seed": 1234}], ids=["greedy", "seeded"]
)
def test_a_request_alone_gets_exactly_the_serial_engines_text(
    batched: Service, serial: Service, sampling: dict[str, object]
) -> None:
    bodies: list[dict[str, object]] = [
        {"prompt": p, "max_tokens": 32, **sampling} for p in PROMPTS[:N_PARALLEL]
    ]
    alone = [generate(batched.url, b).text for b in bodies]
    assert [generate(serial.url, b).text for b in bodies] == alone
    assert [generate(batched.url, b).text for b in bodies] == alone  # and again


def test_batched_texts_are_complete_and_health_says_they_may_differ(batched: Service) -> None:
    """Decoded beside others, a greedy text can differ from the text alone: llama.cpp's CPU
    kernels round differently for different batch shapes (docs/architecture.md). /health says
    so (n_parallel), and the router keys its response cache on it."""
    assert httpx.get(f"{batched.url}/health").json()["n_parallel"] == N_PARALLEL
    bodies: list[dict[str, object]] = [
        {"prompt": p, "max_tokens": 48, "temp": 0, "raw": True, "ignore_eos": True} for p in PROMPTS
    ]
    together = asyncio.run(generate_all(batched.url, bodies))
    assert [r.completion_tokens for r in together] == [48] * len(PROMPTS)
    assert all(r.finish_reason == "length" and r.text.strip() for r in together)


def test_streamed_tokens_arrive_in_order_with_stats(batched: Service) -> None:
    async def two() -> list[sse_client.StreamResult]:
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(
                *(
                    sse_client.stream_generate(
                        client, f"{batched.url}/generate", {"prompt": p, "max_tokens": 16}
                    )
                    for p in PROMPTS[:2]
                )
            )

    for result in asyncio.run(two()):
        assert result.error is None and result.stats is not None
        assert result.stats.completion_tokens >= 1
        assert result.stats.queue_s >= 0 and result.stats.ttft_s <= result.stats.latency_s
