"""The registry over real HTTP: fake model services under uvicorn, a refused port, a hanging one."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from polyllm.bench.fake_backend import Mode, create_fake_app
from polyllm.common.errors import UnknownModel
from polyllm.router.registry import (
    DEFAULT_REGISTRY,
    BackendSpec,
    Registry,
    RegistryError,
    load_registry,
)

INTERVAL_S = 0.05


# -- the controlled world ------------------------------------------------------------------------


def bound_socket() -> socket.socket:
    """A TCP socket bound to a free 127.0.0.1 port (not listening: connecting is refused)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


def url_of(sock: socket.socket) -> str:
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


class ThreadedServer:
    """A real uvicorn serving ``app`` in a background thread, on a socket bound before start."""

    def __init__(self, model: str) -> None:
        self.sock = bound_socket()
        self.url = url_of(self.sock)
        config = uvicorn.Config(
            create_fake_app(model, "ok"), log_level="warning", ws="none", lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]})
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                self.stop()
                pytest.fail(f"fake backend {model} did not start")
            time.sleep(0.01)

    def set_mode(self, mode: Mode) -> None:
        httpx.post(f"{self.url}/mode/{mode}", timeout=5).raise_for_status()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


class HangingServer:
    """Accepts connections and never answers (a health check against it can only time out)."""

    def __init__(self) -> None:
        self.sock = bound_socket()
        self.sock.listen()
        self.sock.settimeout(0.05)
        self.url = url_of(self.sock)
        self.held: list[socket.socket] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._accept)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.held.append(conn)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        for conn in self.held:
            conn.close()
        self.sock.close()


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, ThreadedServer]]:
    """Fake model services m1..m4, each answering as its own model id."""
    servers: dict[str, ThreadedServer] = {}
    try:
        for model in ("m1", "m2", "m3", "m4"):
            servers[model] = ThreadedServer(model)
        yield servers
    finally:
        for server in servers.values():
            server.stop()


@pytest.fixture
def backends(fakes: dict[str, ThreadedServer]) -> dict[str, ThreadedServer]:
    """The fakes, every one healthy at the start of the test."""
    for server in fakes.values():
        server.set_mode("ok")
    return fakes


@pytest.fixture
def refused() -> Iterator[str]:
    sock = bound_socket()
    yield url_of(sock)
    sock.close()


@pytest.fixture
def hanging() -> Iterator[str]:
    server = HangingServer()
    yield server.url
    server.stop()


def spec(model: str, url: str, *, backend: str = "cpu", tier: int = 1) -> BackendSpec:
    assert backend in ("cpu", "gpu")
    return BackendSpec(model, url, "gpu" if backend == "gpu" else "cpu", "test-host", tier, 1.0)


@dataclass
class FakeClock:
    """Monotonic time the test moves by hand (cooldowns without sleeping)."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Changes:
    """Records on_change calls."""

    calls: list[tuple[str, bool]] = field(default_factory=list)

    def __call__(self, model: str, up: bool) -> None:
        self.calls.append((model, up))


async def eventually(condition: Callable[[], bool], within_s: float = 3.0) -> float:
    """Poll ``condition`` every 10 ms; the seconds it took, or fail after ``within_s``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > within_s:
            pytest.fail(f"condition not met within {within_s}s")
        await asyncio.sleep(0.01)
    return time.monotonic() - started


def run_with_registry(
    specs: list[BackendSpec],
    body: Callable[[Registry, httpx.AsyncClient], Awaitable[None]],
    **options: Any,
) -> None:
    """Run ``body`` against a started registry; close it (and check nothing is left) after."""

    async def main() -> None:
        async with httpx.AsyncClient() as client:
            registry = Registry({s.model: s for s in specs}, client, **options)
            await registry.start()
            try:
                await body(registry, client)
            finally:
                await registry.close()
            assert asyncio.all_tasks() == {asyncio.current_task()}

    asyncio.run(main())


# -- load_registry -------------------------------------------------------------------------------

ENTRIES = {
    "m3": {"url": "http://10.0.0.3:8103/", "backend": "gpu", "host": "gpu-1", "tier": 3, "cost": 4},
    "m1": {"url": "http://127.0.0.1:8101", "tier": 1, "cost": 1.0, "max_tokens": 512},
}


def check_entries(specs: dict[str, BackendSpec]) -> None:
    assert list(specs) == ["m1", "m3"]  # ordered by tier
    assert specs["m1"] == BackendSpec(
        "m1", "http://127.0.0.1:8101", "cpu", "127.0.0.1", 1, 1.0, 512
    )
    assert specs["m3"] == BackendSpec("m3", "http://10.0.0.3:8103", "gpu", "gpu-1", 3, 4.0, None)


@pytest.mark.parametrize("value", [None, "", "  "])
def test_default_registry(value: str | None) -> None:
    specs = load_registry(value)
    assert specs == dict(DEFAULT_REGISTRY)
    assert list(specs) == ["m1", "m2", "m3", "m4", "m5"]
    assert [s.url for s in specs.values()] == [f"http://127.0.0.1:{p}" for p in range(8101, 8106)]
    assert {(s.backend, s.host) for s in specs.values()} == {("cpu", "cpu-node-1")}
    assert [s.tier for s in specs.values()] == [1, 2, 3, 4, 5]


def test_load_json_string() -> None:
    check_entries(load_registry(json.dumps(ENTRIES)))


def test_load_json_and_yaml_files(tmp_path: Path) -> None:
    as_json = tmp_path / "registry.json"
    as_json.write_text(json.dumps(ENTRIES))
    check_entries(load_registry(str(as_json)))
    yaml_text = "\n".join(
        [
            "m3: {url: 'http://10.0.0.3:8103/', backend: gpu, host: gpu-1, tier: 3, cost: 4}",
            "m1:",
            "  url: http://127.0.0.1:8101",
            "  tier: 1",
            "  cost: 1.0",
            "  max_tokens: 512",
        ]
    )
    for name in ("registry.yaml", "registry.yml"):
        (tmp_path / name).write_text(yaml_text)
        check_entries(load_registry(str(tmp_path / name)))


GOOD = {"url": "http://127.0.0.1:8101", "tier": 1, "cost": 1}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"m1": {**GOOD, "url": "ftp://x"}}, ["'m1'", "url", "http"]),
        ({"m1": {**GOOD, "url": "http://h:99999"}}, ["'m1'", "url", "Port out of range"]),
        ({"m2": {**GOOD, "backend": "tpu"}}, ["'m2'", "backend", "'tpu'"]),
        ({"m3": {**GOOD, "tier": 6}}, ["'m3'", "tier", "less than or equal to 5"]),
        ({"m3": {**GOOD, "tier": 0}}, ["'m3'", "tier"]),
        ({"m4": {**GOOD, "cost": 0}}, ["'m4'", "cost", "greater than 0"]),
        ({"m4": {**GOOD, "max_tokens": 0}}, ["'m4'", "max_tokens"]),
        ({"m5": {**GOOD, "tokens_max": 5}}, ["'m5'", "tokens_max", "not permitted"]),
        ({"m1": {"tier": 1, "cost": 1}}, ["'m1'", "url", "required"]),
        ({"m1": "http://127.0.0.1:8101"}, ["'m1'", "dictionary"]),
        ({"bad id!": GOOD}, ["'bad id!'", "model id"]),
        ({"m1": GOOD, "m2": {**GOOD, "tier": 2}}, ["'m1'", "'m2'", "url", "both point"]),
        ({}, ["empty"]),
    ],
)
def test_invalid_entries_name_model_and_field(raw: object, expected: list[str]) -> None:
    with pytest.raises(RegistryError) as err:
        load_registry(json.dumps(raw))
    for part in expected:
        assert part in str(err.value)


def test_every_invalid_entry_is_reported() -> None:
    raw = {"m1": {**GOOD, "tier": 9}, "m2": {**GOOD, "url": "http://x", "cost": -1}}
    with pytest.raises(RegistryError) as err:
        load_registry(json.dumps(raw))
    assert "'m1': tier" in str(err.value)
    assert "'m2': cost" in str(err.value)


def test_unusable_sources(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match=r"not valid JSON: .* line 1"):
        load_registry('{"m1": ')
    with pytest.raises(RegistryError, match="object mapping model id"):
        (tmp_path / "list.json").write_text("[1, 2]")
        load_registry(str(tmp_path / "list.json"))
    with pytest.raises(RegistryError, match="cannot be read"):
        load_registry(str(tmp_path / "missing.yaml"))
    with pytest.raises(RegistryError, match="not valid YAML"):
        (tmp_path / "bad.yaml").write_text("m1: [unclosed")
        load_registry(str(tmp_path / "bad.yaml"))
    with pytest.raises(RegistryError, match=r"\.json, \.yaml or \.yml"):
        load_registry("registry.toml")
    assert issubclass(RegistryError, ValueError)


# -- health checks over real HTTP ----------------------------------------------------------------


def test_start_marks_ok_up_and_refused_down(
    backends: dict[str, ThreadedServer], refused: str
) -> None:
    changes = Changes()
    specs = [spec("m1", backends["m1"].url), spec("m2", refused, tier=2)]

    async def body(registry: Registry, _: httpx.AsyncClient) -> None:
        assert registry.is_available("m1")
        assert not registry.is_available("m2")
        assert not registry.all_down()
        assert sorted(changes.calls) == [("m1", True), ("m2", False)]  # once each, first check
        down = registry.state("m2")
        assert down.consecutive_failures == 1
        assert down.last_error is not None and "ConnectError" in down.last_error
        rows = {row["model"]: row for row in registry.snapshot()}
        assert rows["m1"]["up"] and rows["m1"]["available"] and not rows["m1"]["ejected"]
        assert rows["m1"]["url"] == backends["m1"].url and rows["m1"]["tier"] == 1
        assert rows["m1"]["last_checked_age_s"] >= 0 and rows["m1"]["last_error"] is None
        assert rows["m2"]["up"] is False and rows["m2"]["consecutive_failures"] == 1
        assert set(rows["m2"]) >= {"host", "cost", "max_tokens", "ejected_remaining_s"}

    run_with_registry(specs, body, interval_s=60, on_change=changes)


def test_unhealthy_goes_down_within_two_intervals_and_back(
    backends: dict[str, ThreadedServer], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="polyllm.router.registry")
    changes = Changes()
    interval = 0.1
    m1 = backends["m1"]

    async def body(registry: Registry, client: httpx.AsyncClient) -> None:
        await client.post(f"{m1.url}/mode/unhealthy")
        took = await eventually(lambda: not registry.is_available("m1"))
        assert took < 2 * interval + 0.15  # two periods, plus slack for a busy machine
        assert registry.state("m1").last_error == "health answered HTTP 503"
        assert registry.all_down()
        await client.post(f"{m1.url}/mode/ok")
        await eventually(lambda: registry.is_available("m1"))
        assert registry.state("m1").consecutive_failures == 0

    run_with_registry(
        [spec("m1", m1.url)], body, interval_s=interval, eject_after_failures=100, on_change=changes
    )
    assert changes.calls == [("m1", True), ("m1", False), ("m1", True)]
    flips = [r for r in caplog.records if r.getMessage() in ("backend down", "backend up")]
    assert [r.getMessage() for r in flips] == ["backend down", "backend up"]
    fields = flips[0].__dict__["fields"]
    assert fields["model"] == "m1" and fields["reason"] == "health answered HTTP 503"


def test_wrong_model_behind_url_is_down(backends: dict[str, ThreadedServer]) -> None:
    async def body(registry: Registry, _: httpx.AsyncClient) -> None:
        assert not registry.is_available("m2")
        assert registry.state("m2").last_error == (
            f"{backends['m1'].url} serves model 'm1', not 'm2'"
        )

    run_with_registry([spec("m2", backends["m1"].url)], body, interval_s=60)


def test_hanging_backend_times_out_without_blocking_others(
    backends: dict[str, ThreadedServer], hanging: str, refused: str
) -> None:
    timeout = 1.0
    specs = [spec("m1", backends["m1"].url), spec("m2", hanging, tier=2)]
    specs.append(spec("m3", refused, tier=3))

    async def main() -> None:
        async with httpx.AsyncClient() as client:
            registry = Registry(
                {s.model: s for s in specs}, client, interval_s=INTERVAL_S, timeout_s=timeout
            )
            started = time.monotonic()
            await registry.start()
            try:
                # the checks ran side by side: the hang cost one timeout, not more
                assert time.monotonic() - started < timeout + 0.5
                assert registry.state("m2").last_error == "health check timed out after 1s"
                assert registry.is_available("m1") and not registry.is_available("m3")
                # while m2's next check hangs, m1 is still polled every interval
                await client.post(f"{backends['m1'].url}/mode/unhealthy")
                took = await eventually(lambda: not registry.is_available("m1"), within_s=2)
                assert took < timeout / 2
            finally:
                await registry.close()
            assert asyncio.all_tasks() == {asyncio.current_task()}

    asyncio.run(main())


def test_killed_backend_process_goes_down(tmp_path: Path) -> None:
    """A real fake-backend process: up, then killed (connection refused from then on)."""
    sock = bound_socket()
    port = sock.getsockname()[1]
    sock.close()  # the child binds it; the window for another taker is tiny
    log_path = tmp_path / "fake.log"
    cmd = [sys.executable, "-m", "polyllm.bench.fake_backend", "--port", str(port), "--model", "m1"]
    with log_path.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ))
    url = f"http://127.0.0.1:{port}"

    async def body(registry: Registry, _: httpx.AsyncClient) -> None:
        await eventually(lambda: registry.is_available("m1"), within_s=20)
        proc.kill()
        proc.wait(timeout=10)
        await eventually(lambda: not registry.is_available("m1"))
        assert "ConnectError" in (registry.state("m1").last_error or "")

    try:
        # the refusals while the process starts must not eject it
        run_with_registry([spec("m1", url)], body, interval_s=INTERVAL_S, eject_after_failures=1000)
    except BaseException:
        sys.stderr.write(log_path.read_text(errors="replace"))
        raise
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


# -- the outlier-ejection breaker ----------------------------------------------------------------


def test_health_failures_eject_until_cooldown_then_readmit(
    backends: dict[str, ThreadedServer],
) -> None:
    clock, changes = FakeClock(), Changes()
    m1 = backends["m1"]

    async def body(registry: Registry, client: httpx.AsyncClient) -> None:
        await client.post(f"{m1.url}/mode/unhealthy")
        await eventually(lambda: registry.state("m1").ejected)
        state = registry.state("m1")
        assert state.consecutive_failures == 2 and state.ejected_until == clock.now + 10
        await client.post(f"{m1.url}/mode/ok")
        await eventually(lambda: registry.state("m1").up)
        # healthy again, but skipped until the cooldown is over
        assert not registry.is_available("m1")
        assert registry.state("m1").consecutive_failures == 0
        assert registry.snapshot()[0]["ejected_remaining_s"] == 10
        clock.now += 9.9
        await asyncio.sleep(5 * INTERVAL_S)
        assert not registry.is_available("m1")
        clock.now += 0.1
        await eventually(lambda: registry.is_available("m1"))
        assert registry.state("m1").ejected_until == 0

    run_with_registry(
        [spec("m1", m1.url)],
        body,
        interval_s=INTERVAL_S,
        eject_after_failures=2,
        cooldown_s=10,
        on_change=changes,
        clock=clock,
    )
    assert changes.calls == [("m1", True), ("m1", False), ("m1", True)]


def test_reported_failures_and_successes(
    backends: dict[str, ThreadedServer], caplog: pytest.LogCaptureFixture
) -> None:
    clock, changes = FakeClock(), Changes()

    async def body(registry: Registry, _: httpx.AsyncClient) -> None:
        registry.report_failure("m1", "stream broke")
        registry.report_failure("m1", "stream broke")
        registry.report_success("m1")  # a success resets the count
        assert registry.state("m1").consecutive_failures == 0
        for _attempt in range(3):
            assert registry.is_available("m1")  # a reported failure alone does not mark it down
            registry.report_failure("m1", "HTTP 500 from backend")
        state = registry.state("m1")
        assert state.ejected and state.up and not registry.is_available("m1")
        assert state.last_error == "HTTP 500 from backend"
        registry.report_failure("m1", "late failure")  # failures while out do not extend it
        assert registry.state("m1").ejected_until == clock.now + 5
        registry.report_success("m1")  # a late success does not re-admit either
        assert not registry.is_available("m1")

        clock.now += 5
        await registry.check_now()  # re-admitted, on probation
        assert registry.is_available("m1")
        registry.report_failure("m1", "still broken")  # one failure on probation re-ejects
        assert not registry.is_available("m1")

        clock.now += 5
        await registry.check_now()
        registry.report_success("m1")  # proved itself: probation over
        registry.report_failure("m1", "one hiccup")
        assert registry.is_available("m1")

        clock.now += 5
        registry.report_failure("m1", "x")
        registry.report_failure("m1", "x")
        assert not registry.is_available("m1")  # back to the plain count of 3
        clock.now += 5
        await registry.check_now()
        clock.now += 5  # a quiet cooldown after re-admission also ends probation
        registry.report_failure("m1", "after probation")
        assert registry.is_available("m1")

    caplog.set_level(logging.INFO, logger="polyllm.router.registry")
    run_with_registry(
        [spec("m1", backends["m1"].url)],
        body,
        interval_s=60,
        cooldown_s=5,
        on_change=changes,
        clock=clock,
    )
    assert changes.calls == [("m1", True), *[("m1", False), ("m1", True)] * 3]
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("backend ejected") == 3
    assert messages.count("backend readmitted") == 3


def test_candidates_by_backend_with_fallback(backends: dict[str, ThreadedServer]) -> None:
    specs = [
        spec("m4", backends["m4"].url, backend="gpu", tier=4),
        spec("m1", backends["m1"].url, backend="cpu", tier=1),
        spec("m3", backends["m3"].url, backend="cpu", tier=3),
        spec("m2", backends["m2"].url, backend="gpu", tier=2),
    ]

    async def body(registry: Registry, _: httpx.AsyncClient) -> None:
        def models(prefer: str) -> tuple[list[str], bool]:
            found, fallback = registry.candidates(prefer)  # type: ignore[arg-type]
            return [s.model for s in found], fallback

        assert models("auto") == (["m1", "m2", "m3", "m4"], False)
        assert models("cpu") == (["m1", "m3"], False)
        assert models("gpu") == (["m2", "m4"], False)
        registry.report_failure("m2", "x")  # eject_after_failures=1
        assert models("gpu") == (["m4"], False)
        registry.report_failure("m4", "x")
        assert models("gpu") == (["m1", "m3"], True)
        assert models("auto") == (["m1", "m3"], False)
        registry.report_failure("m1", "x")
        registry.report_failure("m3", "x")
        assert models("cpu") == ([], False)
        assert registry.all_down()
        with pytest.raises(ValueError, match="prefer_backend"):
            models("tpu")

    run_with_registry(specs, body, interval_s=60, eject_after_failures=1)


def test_unknown_model_is_an_error(backends: dict[str, ThreadedServer]) -> None:
    async def body(registry: Registry, _: httpx.AsyncClient) -> None:
        assert registry.spec("m1").url == backends["m1"].url
        assert [s.model for s in registry.all_specs()] == ["m1"]
        for call in (registry.spec, registry.is_available, registry.state):
            with pytest.raises(UnknownModel, match="unknown model 'zz'; available: m1"):
                call("zz")
        with pytest.raises(UnknownModel):
            registry.report_failure("zz", "x")

    run_with_registry([spec("m1", backends["m1"].url)], body, interval_s=60)


def test_close_is_clean_and_idempotent(backends: dict[str, ThreadedServer], hanging: str) -> None:
    async def main() -> None:
        async with httpx.AsyncClient() as client:
            specs = {"m1": spec("m1", backends["m1"].url), "m2": spec("m2", hanging, tier=2)}
            registry = Registry(specs, client, interval_s=0.01, timeout_s=0.3)
            await registry.close()  # before start: nothing to do
            await registry.start()
            with pytest.raises(RuntimeError, match="already started"):
                await registry.start()
            await asyncio.sleep(0.1)  # m2's second check is hanging now
            assert len(asyncio.all_tasks()) > 1
            await registry.close()
            assert asyncio.all_tasks() == {asyncio.current_task()}
            await registry.close()

    asyncio.run(main())


def test_invalid_options_are_refused() -> None:
    async def main() -> None:
        async with httpx.AsyncClient() as client:
            with pytest.raises(ValueError, match="eject_after_failures"):
                Registry(DEFAULT_REGISTRY, client, eject_after_failures=0)
            with pytest.raises(ValueError, match="interval_s"):
                Registry(DEFAULT_REGISTRY, client, interval_s=0)

    asyncio.run(main())
