"""Starting, re-running, failing and stopping, with tiny stand-in processes (no models)."""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from polyllm.stack.config import StackConfig
from polyllm.stack.processes import RunFiles, pid_alive, stop_pids
from polyllm.stack.services import ServiceSpec, StackError, plan
from polyllm.stack.supervisor import Launch, ServiceFailed, start_services, status, wait_healthy
from tests.redis_server import free_port

SLEEPER = (sys.executable, "-c", "import time; print('sleeping', flush=True); time.sleep(60)")


def spec(name: str, argv: tuple[str, ...] = SLEEPER, port: int | None = None) -> ServiceSpec:
    """A stand-in service whose /health never answers (nothing listens on its port)."""
    return ServiceSpec(name, "127.0.0.1", port or free_port(), argv, "/health", "time.sleep")


@pytest.fixture
def launched() -> Iterator[list[Launch]]:
    """Launches a test started; their processes are killed and reaped afterwards."""
    out: list[Launch] = []
    yield out
    for launch in out:
        if launch.proc is not None:
            launch.proc.kill()
            launch.proc.wait()


def test_start_records_pid_and_port_and_rerun_leaves_it_alone(
    tmp_path: Path, launched: list[Launch]
) -> None:
    service = spec("m1")
    launched += start_services([service], tmp_path)
    first = launched[0]
    recorded = RunFiles(tmp_path, "m1").read()
    assert recorded is not None and (recorded.pid, recorded.port) == (first.pid, service.port)
    again = start_services([service], tmp_path)
    assert [(a.pid, a.state, a.started_here) for a in again] == [
        (first.pid, "already running", False)
    ]


def test_stale_pid_file_is_replaced(tmp_path: Path, launched: list[Launch]) -> None:
    service = spec("m1")
    files = RunFiles(tmp_path, "m1")
    files.record(2**22 + 1, service.port)  # above pid_max: never a live process
    launched += start_services([service], tmp_path)
    recorded = files.read()
    assert recorded is not None and recorded.pid == launched[0].pid != 2**22 + 1


def test_port_change_of_a_running_service_is_refused(
    tmp_path: Path, launched: list[Launch]
) -> None:
    launched += start_services([spec("m1")], tmp_path)
    with pytest.raises(StackError, match=r"m1 already runs .* run `polyllm down` first"):
        start_services([spec("m1")], tmp_path)


def test_taken_port_names_service_and_port_and_starts_nothing(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(StackError, match=rf"port {port} \(for m2\)"):
            start_services([spec("m1"), spec("m2", port=port)], tmp_path)
    assert not list(tmp_path.glob("*.pid"))


def test_early_exit_is_reported_at_once_with_the_log(
    tmp_path: Path, launched: list[Launch]
) -> None:
    crash = (sys.executable, "-c", "import sys; print('boom: no model'); sys.exit(3)")
    launched += start_services([spec("m1"), spec("m3", crash)], tmp_path)
    with pytest.raises(ServiceFailed, match="m3 exited with code 3") as failure:
        wait_healthy(launched, timeout_s=30, poll_s=0.02)
    assert failure.value.tail == ["boom: no model"]
    assert failure.value.log_path == tmp_path / "m3.log"


def test_timeout_names_the_service_and_shows_its_log(
    tmp_path: Path, launched: list[Launch]
) -> None:
    launched += start_services([spec("m2")], tmp_path)
    with pytest.raises(ServiceFailed, match=r"m2 did not become healthy within 0.3 s") as failure:
        wait_healthy(launched, timeout_s=0.3, poll_s=0.02)
    assert failure.value.tail == ["sleeping"]


def test_stop_pids_terminates_and_reports(tmp_path: Path, launched: list[Launch]) -> None:
    launched += start_services([spec("m1")], tmp_path)
    pid = launched[0].pid
    # stop_pids works from pids alone (a zombie child, not yet reaped, counts as gone)
    outcome = stop_pids({"m1": pid, "gone": 2**22 + 1}, grace_s=5)
    assert outcome == {"m1": "terminated", "gone": "already gone"}
    assert not pid_alive(pid)


def _config(**changes: object) -> StackConfig:
    raw: dict[str, object] = {
        "models": {
            "m1": {"port": 18101, "tier": 1, "cost": 1, "threads": 3},
            "m2": {"port": 18102, "tier": 2, "cost": 2, "use_gpu": True, "parallel": 4},
        },
        "prometheus": {"enabled": False},
        "node_exporter": {"enabled": False},
    }
    return StackConfig.model_validate(raw | changes)


def test_plan_orders_services_and_restricts_the_registry_to_the_selection() -> None:
    specs = plan(_config(), Path("/srv"), ["router", "m1", "redis"])
    assert [s.name for s in specs] == ["redis", "m1", "router"]
    m1, router = specs[1], specs[2]
    assert "--n-threads" in m1.argv and m1.argv[m1.argv.index("--n-threads") + 1] == "3"
    assert m1.argv[m1.argv.index("--models-dir") + 1] == "/srv/models"
    assert "--use-gpu" not in m1.argv and "--n-parallel" not in m1.argv  # the default: 1
    assert list(json.loads(router.env["POLYLLM_REGISTRY"])) == ["m1"]
    assert router.env["REDIS_URL"] == "redis://127.0.0.1:6379/0"
    m2 = plan(_config(), Path("/srv"), ["m2"])[0]
    assert "--use-gpu" in m2.argv
    assert m2.argv[m2.argv.index("--n-parallel") + 1] == "4"
    assert "--n-ctx" not in m2.argv and m2.nice == 0  # the service's default; equal priority
    m3_config = {"port": 18103, "tier": 3, "cost": 4, "n_ctx": 8192, "nice": 10}
    m3 = plan(_config(models={"m3": m3_config}), Path("/srv"), ["m3"])[0]
    assert m3.argv[m3.argv.index("--n-ctx") + 1] == "8192" and m3.nice == 10


def test_plan_rejects_unknown_names() -> None:
    with pytest.raises(StackError, match=r"unknown services \['m9'\]"):
        plan(_config(), Path("/srv"), ["m9"])


def test_missing_binary_names_the_debian_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("polyllm.stack.services.shutil.which", lambda _: None)
    with pytest.raises(StackError, match="install the Debian package prometheus-node-exporter"):
        plan(_config(node_exporter={"enabled": True}), Path("/srv"), ["node_exporter"])


def test_status_of_a_stack_that_never_ran(tmp_path: Path) -> None:
    rows = status(_config(run_dir=tmp_path / "run"), tmp_path)
    assert {r.name: r.health for r in rows} == {
        "redis": "stopped",
        "m1": "stopped",
        "m2": "stopped",
        "router": "stopped",
    }
