"""Collection: the real m1 service answers; the bookkeeping around it is exact."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from polyllm.training.collect import (
    Answer,
    AnswerLog,
    answered,
    ask,
    collect,
    compact,
    distinct_models,
    order,
    read_answers,
)
from tests.integration.conftest import Service, running_m1

PROMPTS = [
    {"id": "t/1", "category": "knowledge", "prompt": "What is the capital of Italy?"},
    {"id": "t/2", "category": "math", "prompt": "What is 2 + 3?"},
]


def answer(id_: str, model: str, error: str | None = None, text: str = "x") -> Answer:
    return Answer(id_, model, None if error else text, 5, 3, 0.1, 0.2, 20.0,
                  None if error else "stop", "sha", {"temp": 0.0}, error, 0.0)  # fmt: skip


def test_m5_inherits_m4_because_it_serves_the_same_file() -> None:
    own, inherits = distinct_models(["m1", "m2", "m3", "m4", "m5"])
    assert own == ["m1", "m2", "m3", "m4"]
    assert inherits == {"m5": "m4"}


def test_order_is_fixed_and_mixes_sources() -> None:
    prompts = [{"id": f"{src}/{i}"} for src in ("a", "b") for i in range(50)]
    first = [p["id"] for p in order(prompts)]
    assert first == [p["id"] for p in order(list(reversed(prompts)))]
    assert {i.split("/")[0] for i in first[:10]} == {"a", "b"}


def test_errors_are_retried_and_compaction_keeps_the_good_answer(tmp_path: Path) -> None:
    working, committed = tmp_path / "work.jsonl", tmp_path / "data" / "responses.jsonl.gz"
    log = AnswerLog(working)
    log.append(answer("p/1", "m1", error="timeout"))
    log.append(answer("p/2", "m1"))
    log.close()
    assert answered(committed, working) == {("p/2", "m1")}  # the error will be retried
    log = AnswerLog(working)
    log.append(answer("p/1", "m1", text="good"))
    log.append(answer("p/3", "m1", error="boom"))
    log.close()
    assert compact(committed, working) == 3
    assert not working.exists()
    records = {(r["id"], r["model"]): r for r in read_answers(committed)}
    assert records[("p/1", "m1")]["response"] == "good"
    assert records[("p/3", "m1")]["error"] == "boom"
    with gzip.open(committed, "rt") as f:
        assert all("prompt" not in json.loads(line) for line in f)


def test_each_model_has_its_own_line_so_a_slow_one_holds_no_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from polyllm.training import collect as collect_module

    prompts = [{"id": f"p/{i}", "category": "chat", "prompt": "hi"} for i in range(6)]
    small_done = asyncio.Event()
    asked: list[str] = []

    async def ask(client: object, url: str, model: str, prompt: dict, *_: object) -> Answer:
        if model == "m4":  # the slow model answers only once the small one has answered all
            await small_done.wait()
        asked.append(model)
        if asked.count("m1") == len(prompts):
            small_done.set()
        return answer(prompt["id"], model)

    async def settings(client: object, url: str) -> dict[str, object]:
        return {}

    monkeypatch.setattr(collect_module, "ask", ask)
    monkeypatch.setattr(collect_module, "engine_settings", settings)
    log = AnswerLog(tmp_path / "work.jsonl")
    urls = {"m1": "http://m1", "m4": "http://m4"}
    # One line shared by 2 workers would have both stuck on m4 requests: a deadlock.
    run = collect(prompts, urls, log, {("p/0", "m4")}, concurrency=1)
    attempted = asyncio.run(asyncio.wait_for(run, 5))
    log.close()
    assert attempted == 11
    assert asked[:6] == ["m1"] * 6 and asked.count("m4") == 5
    assert {(r["id"], r["model"]) for r in read_answers(tmp_path / "work.jsonl")} == {
        (p["id"], m) for p in prompts for m in urls
    } - {("p/0", "m4")}


ROME = {"text": "Rome", "prompt_tokens": 9, "completion_tokens": 2, "ttft_s": 0.1,
        "latency_s": 0.2, "tokens_per_s": 10.0, "finish_reason": "stop"}  # fmt: skip


@pytest.mark.parametrize(("drops", "error"), [(1, None), (2, "ReadError: dropped")])
def test_a_dropped_connection_is_sent_once_more(drops: int, error: str | None) -> None:
    # Fault injection: the connection drops before any response, as when the service closes an
    # idle kept-alive connection just as the request goes out.
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) <= drops:
            raise httpx.ReadError("dropped", request=request)
        return httpx.Response(200, json=ROME)

    async def ask_once() -> Answer:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            return await ask(client, "http://m1", "m1", PROMPTS[0], "sha")

    result = asyncio.run(ask_once())
    assert len(calls) == 2
    assert result.error == error
    assert result.response == (None if error else "Rome")


@pytest.fixture(scope="module")
def m1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with running_m1(tmp_path_factory.mktemp("m1"), "--n-ctx", "2048") as service:
        yield service


@pytest.mark.integration
def test_collect_records_answers_and_skips_them_next_time(m1: Service, tmp_path: Path) -> None:
    working = tmp_path / "work.jsonl"
    log = AnswerLog(working)
    attempted = asyncio.run(collect(PROMPTS, {"m1": m1.url}, log, set(), concurrency=2))
    log.close()
    assert attempted == 2
    records = list(read_answers(working))
    assert {(r["id"], r["model"]) for r in records} == {("t/1", "m1"), ("t/2", "m1")}
    for r in records:
        assert r["error"] is None and r["response"]
        assert r["settings"]["temp"] == 0.0
        assert r["settings"]["n_parallel"] == 1  # as the service's /health says
        assert r["settings"]["flash_attn"] is True
        assert r["settings"]["max_tokens"] == {"t/1": 64, "t/2": 320}[r["id"]]
        assert 1 <= r["completion_tokens"] <= r["settings"]["max_tokens"]
        assert r["model_sha256"].startswith("b179c952")
        assert "prompt" not in r
    log = AnswerLog(working)
    again = asyncio.run(collect(PROMPTS, {"m1": m1.url}, log, answered(working), concurrency=2))
    log.close()
    assert again == 0


@pytest.mark.integration
def test_a_dead_service_is_an_error_record_not_a_crash(tmp_path: Path) -> None:
    log = AnswerLog(tmp_path / "work.jsonl")
    asyncio.run(collect(PROMPTS[:1], {"m1": "http://127.0.0.1:9"}, log, set()))
    log.close()
    (record,) = read_answers(tmp_path / "work.jsonl")
    assert record["error"] and record["response"] is None
    assert record["settings"]["n_parallel"] is None  # unknown: /health did not answer
    assert record["settings"]["flash_attn"] is None


def test_a_record_cut_by_a_kill_is_dropped_and_asked_again(tmp_path: Path) -> None:
    working = tmp_path / "work.jsonl"
    log = AnswerLog(working)
    log.append(answer("t/1", "m1"))
    log.close()
    whole = working.read_bytes()
    working.write_bytes(whole + whole[: len(whole) // 2])  # killed halfway through a write
    assert [r["id"] for r in read_answers(working)] == ["t/1"]  # the torn tail is skipped
    log = AnswerLog(working)  # reopening cuts it, so the next record starts on its own line
    log.append(answer("t/2", "m1"))
    log.close()
    assert [r["id"] for r in read_answers(working)] == ["t/1", "t/2"]


def test_a_bad_record_before_the_last_line_is_an_error(tmp_path: Path) -> None:
    working = tmp_path / "work.jsonl"
    working.write_text('{"id": "t/1"\n{"id": "t/2"}\n')
    with pytest.raises(ValueError, match=r"work\.jsonl:1"):
        list(read_answers(working))
