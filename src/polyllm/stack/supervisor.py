"""`polyllm up / down / status`: start the stack's processes, wait for health, stop them."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from polyllm.stack.config import StackConfig
from polyllm.stack.health import WarmUp, healthy, warm_up
from polyllm.stack.processes import (
    RunFiles,
    is_ours,
    log_tail,
    pid_alive,
    port_in_use,
    recorded_names,
    rss_bytes,
    start_detached,
    stop_pids,
)
from polyllm.stack.services import (
    ServiceSpec,
    StackError,
    marker_for,
    plan,
    probe_path_for,
    resolve,
)


class ServiceFailed(StackError):
    """A service exited or did not become healthy in time; carries the tail of its log."""

    def __init__(self, name: str, reason: str, log_path: Path, tail: list[str]) -> None:
        super().__init__(f"{name} {reason}")
        self.name = name
        self.log_path = log_path
        self.tail = tail


@dataclass
class Launch:
    """One service during `up`: its pid, its process when this run started it, its state."""

    spec: ServiceSpec
    files: RunFiles
    pid: int
    proc: subprocess.Popen[bytes] | None
    state: str = "starting"
    healthy_after_s: float | None = None

    @property
    def started_here(self) -> bool:
        return self.proc is not None


@dataclass
class UpResult:
    """What `up` did: every service (started or found running) and the warm-up answers."""

    launches: list[Launch]
    warm_ups: list[WarmUp] = field(default_factory=list)
    elapsed_s: float = 0.0


def run_dir_of(config: StackConfig, base: Path) -> Path:
    """The absolute run directory (pid, port and log files)."""
    return resolve(base, config.run_dir)


def _running_pid(spec: ServiceSpec, files: RunFiles) -> int | None:
    """The pid of ``spec`` when it already runs on its port; stale run files are removed."""
    recorded = files.read()
    if recorded is not None and is_ours(recorded.pid, spec.marker):
        if recorded.port != spec.port:
            raise StackError(
                f"{spec.name} already runs (pid {recorded.pid}) on port {recorded.port}, but the "
                f"config says {spec.port}: run `polyllm down` first"
            )
        return recorded.pid
    if files.pid_path.exists() or files.port_path.exists():
        files.clear()  # stale: the process is gone (or the pid now belongs to another program)
    return None


def _ports_free(specs: Sequence[ServiceSpec]) -> None:
    busy = [s for s in specs if port_in_use(s.host, s.port)]
    if busy:
        taken = "; ".join(f"port {s.port} (for {s.name})" for s in busy)
        raise StackError(
            f"already in use by another process: {taken}. Stop that process or change the "
            "port in the stack config; nothing was started"
        )


def start_services(specs: Sequence[ServiceSpec], run_dir: Path) -> list[Launch]:
    """Leave running services alone, check every other port is free, then start the rest."""
    run_dir.mkdir(parents=True, exist_ok=True)
    found = {s.name: _running_pid(s, RunFiles(run_dir, s.name)) for s in specs}
    _ports_free([s for s in specs if found[s.name] is None])
    launches: list[Launch] = []
    for spec in specs:
        files = RunFiles(run_dir, spec.name)
        pid = found[spec.name]
        if pid is not None:
            launches.append(Launch(spec, files, pid, None, "already running"))
            continue
        if spec.name == "redis":
            (run_dir / "redis").mkdir(exist_ok=True)
        proc = start_detached(spec.argv, files.log_path, spec.env, nice=spec.nice)
        files.record(proc.pid, spec.port)
        launches.append(Launch(spec, files, proc.pid, proc))
    return launches


def _exited(launch: Launch) -> str | None:
    if launch.proc is not None:
        code = launch.proc.poll()
        return None if code is None else f"exited with code {code} before it became healthy"
    return None if pid_alive(launch.pid) else f"(pid {launch.pid}) is no longer running"


def _failed(launch: Launch, reason: str) -> ServiceFailed:
    launch.state = "failed"
    path = launch.files.log_path
    return ServiceFailed(launch.spec.name, reason, path, log_tail(path, 20))


def wait_healthy(
    launches: Sequence[Launch],
    timeout_s: float,
    on_change: Callable[[], None] = lambda: None,
    poll_s: float = 0.25,
) -> None:
    """Probe every service until all are healthy; raise :class:`ServiceFailed` for the first one
    that exits, or for one still unhealthy after ``timeout_s``."""
    start = time.monotonic()
    pending = list(launches)
    with httpx.Client(timeout=2.0) as client:
        while pending:
            for launch in list(pending):
                if healthy(launch.spec, client):
                    launch.healthy_after_s = time.monotonic() - start
                    launch.state = "healthy" if launch.started_here else "already running"
                    pending.remove(launch)
                elif (reason := _exited(launch)) is not None:
                    on_change()
                    raise _failed(launch, reason)
            on_change()
            if pending and time.monotonic() - start > timeout_s:
                raise _failed(pending[0], f"did not become healthy within {timeout_s:g} s")
            if pending:
                time.sleep(poll_s)


def warm_up_models(launches: Sequence[Launch]) -> list[WarmUp]:
    """A short greedy prompt through every model service, one after the other."""
    with httpx.Client() as client:
        return [warm_up(launch.spec, client) for launch in launches if launch.spec.is_model]


def up(
    config: StackConfig,
    base: Path,
    only: Sequence[str] | None,
    timeout_s: float,
    on_start: Callable[[list[Launch]], None] = lambda _: None,
    on_change: Callable[[], None] = lambda: None,
) -> UpResult:
    """Start what is not running, wait until everything is healthy, warm every model up."""
    began = time.monotonic()
    specs = plan(config, base, only)
    launches = start_services(specs, run_dir_of(config, base))
    on_start(launches)
    wait_healthy(launches, timeout_s, on_change)
    result = UpResult(launches, warm_up_models(launches))
    result.elapsed_s = time.monotonic() - began
    return result


@dataclass(frozen=True)
class Stopped:
    """One service `down` dealt with and how."""

    name: str
    pid: int | None
    outcome: str


def down(config: StackConfig, base: Path, grace_s: float = 10.0) -> list[Stopped]:
    """Stop exactly the processes recorded in the run directory, then remove their run files."""
    run_dir = run_dir_of(config, base)
    ours: dict[str, int] = {}
    report: list[Stopped] = []
    for name in recorded_names(run_dir):
        files = RunFiles(run_dir, name)
        recorded = files.read()
        if recorded is None:
            report.append(Stopped(name, None, "unreadable pid file removed"))
        elif is_ours(recorded.pid, marker_for(name)):
            ours[name] = recorded.pid
        elif pid_alive(recorded.pid):
            report.append(Stopped(name, recorded.pid, "pid now belongs to another program; left"))
        else:
            report.append(Stopped(name, recorded.pid, "was not running"))
    outcomes = stop_pids(ours, grace_s)
    report += [Stopped(name, pid, outcomes[name]) for name, pid in ours.items()]
    for name in recorded_names(run_dir):
        RunFiles(run_dir, name).clear()
    return sorted(report, key=lambda s: s.name)


@dataclass(frozen=True)
class ServiceStatus:
    """One row of `polyllm status`."""

    name: str
    pid: int | None
    port: int
    health: str  # ok | unhealthy | stopped | dead (a pid file whose process is gone)
    rss_bytes: int | None
    url: str


def status(config: StackConfig, base: Path) -> list[ServiceStatus]:
    """Every configured service and every recorded one: pid, port, health, resident memory."""
    run_dir = run_dir_of(config, base)
    specs = {s.name: s for s in plan(config, base, check=False)}
    for name in recorded_names(run_dir):
        if name not in specs:
            recorded = RunFiles(run_dir, name).read()
            port = (recorded.port if recorded else None) or 0
            specs[name] = ServiceSpec(
                name, config.host, port, (), probe_path_for(name), marker_for(name)
            )
    rows: list[ServiceStatus] = []
    with httpx.Client(timeout=2.0) as client:
        for spec in specs.values():
            found = RunFiles(run_dir, spec.name).read()
            pid = found.pid if found else None
            port = (found.port if found else None) or spec.port
            probe = ServiceSpec(spec.name, spec.host, port, (), spec.probe_path, spec.marker)
            if pid is None:
                health, rss = "stopped", None
            elif not is_ours(pid, spec.marker):
                health, rss = "dead", None
            else:
                health = "ok" if healthy(probe, client) else "unhealthy"
                rss = rss_bytes(pid)
            rows.append(ServiceStatus(spec.name, pid, port, health, rss, probe.url))
    return rows
